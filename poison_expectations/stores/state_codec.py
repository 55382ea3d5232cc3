"""A signal's fitted state as JSON plus binary members, and back, with no pickle.

A state is plain data (see `core/signals/base.py`): dicts with text keys,
lists, text, numbers, booleans, None, numeric numpy arrays and fitted
scikit-learn estimators. Arrays become `.npy` members (read with
allow_pickle=False); estimators become skops members, loaded only when every
type they need comes from scikit-learn or numpy, so loading a profile never
runs code from the file. Anything else is refused when the state is written,
naming where it sits in the state.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from poison_expectations.core.errors import InputError

ALLOWED_MODEL_MODULES = ("sklearn.", "numpy.")


def encode_state(state: Any, prefix: str = "") -> tuple[Any, dict[str, bytes]]:
    """(JSON tree, binary members by name) for a state."""
    members: dict[str, bytes] = {}
    tree = _encode(state, "state", prefix, members)
    return tree, members


def decode_state(tree: Any, members: dict[str, bytes]) -> Any:
    """The state written by `encode_state`, from its tree and members."""
    if isinstance(tree, dict):
        if "array" in tree:
            return np.load(io.BytesIO(members[tree["array"]]), allow_pickle=False)
        if "model" in tree:
            return _load_model(members[tree["model"]], tree["model"])
        if "dict" in tree:
            return {key: decode_state(value, members) for key, value in tree["dict"].items()}
        if "list" in tree:
            return [decode_state(value, members) for value in tree["list"]]
        if "float" in tree:
            return float(tree["float"])
        raise ValueError(f"unknown state node {sorted(tree)}")
    return tree


def plain_data_problems(value: Any, path: str = "state") -> list[str]:
    """Where a state holds anything but plain data as `core/signals/base.py`
    defines it (text-keyed dicts, lists, text, Python numbers, booleans, None,
    numeric numpy arrays, scikit-learn estimators): the contract signals are
    tested against. `encode_state` also takes tuples and numpy scalars."""
    if value is None or type(value) in (str, bool, int, float) or _is_estimator(value):
        return []
    if isinstance(value, np.ndarray):
        return [] if value.dtype.kind in "biuf" else [f"{path}: {value.dtype} array"]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in plain_data_problems(v, f"{path}[{i}]")]
    if isinstance(value, dict):
        bad = [f"{path}: key {k!r} is not text" for k in value if not isinstance(k, str)]
        return bad + [p for k, v in value.items() for p in plain_data_problems(v, f"{path}.{k}")]
    return [f"{path}: {type(value).__name__}"]


def roundtrip(state: Any) -> Any:
    """Encode and decode a state (what a stored profile gives back)."""
    tree, members = encode_state(state)
    return decode_state(tree, members)


def _encode(value: Any, where: str, prefix: str, members: dict[str, bytes]) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f"{where}: dict keys must be text, got {bad[0]!r}")
        return {"dict": {k: _encode(v, f"{where}.{k}", prefix, members) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"list": [_encode(v, f"{where}[{i}]", prefix, members) for i, v in enumerate(value)]}
    if isinstance(value, np.ndarray):
        if value.dtype == object or value.dtype.hasobject:
            raise TypeError(f"{where}: object arrays need pickle; store a list or a numeric array")
        name = f"{prefix}{len(members)}.npy"
        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        members[name] = buffer.getvalue()
        return {"array": name}
    if _is_estimator(value):
        import skops.io as sio

        name = f"{prefix}{len(members)}.skops"
        members[name] = sio.dumps(value)
        return {"model": name}
    raise TypeError(f"{where}: {type(value).__name__} is not plain data (arrays, JSON values, "
                    "scikit-learn estimators)")


def _is_estimator(value: Any) -> bool:
    try:
        from sklearn.base import BaseEstimator
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return False
    return isinstance(value, BaseEstimator)


def _load_model(data: bytes, name: str) -> Any:
    import skops.io as sio

    untrusted = sio.get_untrusted_types(data=data)
    foreign = [t for t in untrusted if not t.startswith(ALLOWED_MODEL_MODULES)]
    if foreign:
        raise InputError(f"profile member {name}: refuses to load type {foreign[0]} (only scikit-learn and numpy)")
    return sio.loads(data, trusted=untrusted)
