"""Checkpoint config: a YAML file checked key by key against a typed spec.

Every key has a default, a type and a documented meaning; unknown keys and
wrong types are errors naming the key (exit code 2). Each expectation family
registers its own section spec (see `registry.py`), so this module knows the
shared keys only.
"""

from __future__ import annotations

import copy
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from poison_expectations.core.errors import ConfigError

DEFAULT_CONFIG_PATH = Path(__file__).parents[1] / "defaults" / "training_ingest.yml"


@dataclass(frozen=True)
class Param:
    """One config key: default, accepted type(s), bounds and meaning."""

    default: Any
    kind: type | tuple[type, ...]
    doc: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    nullable: bool = False
    item_kind: type | None = None  # for lists

    def check(self, key: str, value: Any) -> Any:
        if value is None:
            if self.nullable:
                return None
            raise ConfigError(f"config key '{key}': must not be null")
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in kinds:
            raise ConfigError(f"config key '{key}': expected {_kind_name(kinds)}, got {value!r}")
        if not isinstance(value, kinds):
            raise ConfigError(f"config key '{key}': expected {_kind_name(kinds)}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config key '{key}': must be a finite number, got {value!r}")
        if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
            raise ConfigError(f"config key '{key}': {value!r} is out of the 64-bit integer range")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"config key '{key}': {value!r} is not one of {list(self.choices)}")
        if self.low is not None and value < self.low:
            raise ConfigError(f"config key '{key}': {value!r} is below the minimum {self.low}")
        if self.high is not None and value > self.high:
            raise ConfigError(f"config key '{key}': {value!r} is above the maximum {self.high}")
        if self.item_kind is not None and isinstance(value, list):
            for item in value:
                if not isinstance(item, self.item_kind):
                    raise ConfigError(
                        f"config key '{key}': items must be {self.item_kind.__name__}, got {item!r}"
                    )
        return value


def _kind_name(kinds: tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in kinds)


RATE = dict(kind=float, low=0.0, high=1.0)
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1

# Shared sections. Expectation families add theirs under `expectations:`.
BASE_SPEC: dict[str, Any] = {
    "version": Param(1, int, "Config schema version.", choices=(1,)),
    "random_state": Param(0, int, "Seed for every random choice (folds, sampling, indexes).", low=0,
                          high=2 ** 32 - 1),
    "data": {
        "label_column": Param(None, str, "Column holding the training label.", nullable=True),
        "id_column": Param(None, str, "Unique row id; findings use row_index when absent.", nullable=True),
        "source_column": Param(None, str, "Contributor / provenance column, if any.", nullable=True),
        "feature_columns": Param(
            None, list, "Feature columns; default: all but label, id and source.", nullable=True, item_kind=str
        ),
        "embedding_columns": Param(
            [], list, "Columns holding embedding vectors (lists/arrays) to expand.", item_kind=str
        ),
        "reference": Param(None, str, "Trusted reference table (CSV/Parquet path).", nullable=True),
    },
    "features": {
        "nan_policy": Param(
            "impute", str, "impute: median/mode plus a missing indicator; reject: NaN/inf is an input error.",
            choices=("impute", "reject"),
        ),
        "max_onehot_categories": Param(
            20, int, "Categoricals with at most this many levels are one-hot encoded, others frequency-encoded.",
            low=1, high=10_000,
        ),
    },
    "neighbors": {
        "k": Param(10, int, "Neighbours per row for every neighbour-based signal.", low=1, high=200),
        "exact_max_rows": Param(
            50_000, int, "Up to this many indexed rows use exact search; above it an HNSW index.", low=0
        ),
    },
    "limits": {
        "max_rows": Param(
            5_000_000, int, "Refuse a batch or reference with more rows than this, before loading it whole "
            "(Parquet: from the footer; CSV: reads at most max_rows + 1 rows).", low=1
        ),
        "max_memory_mb": Param(
            None, int, "Memory budget (MiB) for each large allocation (loading a table, the encoded feature "
            "matrix, a neighbour graph), estimated beforehand; larger work is refused with exit 2. "
            "null: 75% of the memory free at that moment.", low=1, nullable=True
        ),
    },
    "expectations": {},
}


def full_spec() -> dict[str, Any]:
    from poison_expectations.core.registry import families  # late: families register on import

    spec = copy.deepcopy(BASE_SPEC)
    for family in families():
        spec["expectations"][family.section] = family.params
    return spec


def defaults(spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
    spec = full_spec() if spec is None else spec
    return {
        key: defaults(value) if isinstance(value, dict) else copy.deepcopy(value.default)
        for key, value in spec.items()
    }


def validate(raw: Mapping[str, Any], spec: Mapping[str, Any] | None = None, prefix: str = "") -> dict[str, Any]:
    """Merge `raw` over the defaults, checking every key and value."""
    spec = full_spec() if spec is None else spec
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config key '{prefix or '<root>'}': expected a mapping, got {raw!r}")
    merged = defaults(spec)
    for key, value in raw.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in spec:
            raise ConfigError(f"config key '{path}' is unknown")
        entry = spec[key]
        if isinstance(entry, dict):
            merged[key] = validate(value if value is not None else {}, entry, path)
        else:
            merged[key] = entry.check(path, value)
    return merged


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A YAML mapping names the same key twice (YAML would keep the last silently)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (PyYAML keeps
    the last silently, so `max_rate` written twice would hide the first)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key; the default constructor reports it
                break
            if duplicate:
                raise DuplicateKeyError(None, None, f"key '{key}' is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


MAX_CONFIG_BYTES = 1 << 20  # a config is a page of YAML; 1 MiB is far beyond any real one


def _read_config_text(path: Path) -> str:
    """The config's text: a regular file (a FIFO would block forever, a device
    such as /dev/zero never ends) of at most MAX_CONFIG_BYTES."""
    try:
        with open(path, "rb", opener=_nonblocking) as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ConfigError(f"{path}: not a regular file; give a YAML config file")
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: the config is over {MAX_CONFIG_BYTES // (1 << 20)} MiB; is this a config file?")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from None


def _nonblocking(path, flags: int) -> int:
    """open() without waiting for a FIFO's writer; fstat then refuses it."""
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML config (the packaged default when `path` is None) and apply
    dotted-key overrides such as {"data.label_column": "y"}."""
    path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    text = _read_config_text(path)
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = f" ({exc.problem})" if isinstance(exc, DuplicateKeyError) else ""
        raise ConfigError(f"{path}: invalid YAML{where}{problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config must be a mapping of keys, got {type(raw).__name__}")
    raw = copy.deepcopy(raw)
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for part in parents:
            if node.get(part) is None:  # an empty YAML section (`data:`) is null
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise ConfigError(f"config key '{dotted}': parent is not a mapping")
        node[leaf] = value
    try:
        return validate(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def dump_config(config: Mapping[str, Any]) -> str:
    """YAML with every key written out (GX drops defaults; we never rely on them)."""
    return yaml.safe_dump(dict(config), sort_keys=False)


def reference_markdown() -> str:
    """The config reference table (docs/config.md is generated from this)."""
    rows = ["| key | default | type / range | meaning |", "|---|---|---|---|"]

    def walk(spec, prefix):
        for key, entry in spec.items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(entry, dict):
                walk(entry, path)
                continue
            kinds = entry.kind if isinstance(entry.kind, tuple) else (entry.kind,)
            kind = "/".join(k.__name__ for k in kinds)
            if entry.choices:
                kind += " in " + ", ".join(map(str, entry.choices))
            if entry.low is not None or entry.high is not None:
                kind += f" [{entry.low if entry.low is not None else ''}, {entry.high if entry.high is not None else ''}]"
            if entry.nullable:
                kind += " or null"
            rows.append(f"| `{path}` | `{entry.default!r}` | {kind} | {entry.doc} |")

    walk(full_spec(), "")
    return "\n".join(rows)


if __name__ == "__main__":  # python -m poison_expectations.core.config > docs/config.md
    print("# Config reference\n\nEvery key of a checkpoint config, with its default. Generated by "
          "`python -m poison_expectations.core.config`; unknown keys and wrong types are errors (exit 2).\n")
    print(reference_markdown())
