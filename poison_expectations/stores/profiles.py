"""Reference profiles on disk: a zip archive that loads without running code.

Members: `manifest.json` (format, versions, roles, config, schema, rows, the
trusted data's hash, each member's SHA-256), `seal` (SHA-256 of the
manifest, or its HMAC when POISON_EXPECTATIONS_PROFILE_KEY is set), numpy
arrays as `.npy` (read with allow_pickle=False), the encoder and the states'
structure as JSON, scikit-learn models as skops files (loaded only when
every type they need is from scikit-learn or numpy), and the HNSW graph as
faiss' own bytes. A profile that was tampered with, truncated, written by
another major format version or by a newer minor one is refused with one
line (InputError, exit 2).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from poison_expectations.core.analysis import Table
from poison_expectations.core.errors import InputError
from poison_expectations.core.features import FeatureEncoder
from poison_expectations.core.neighbors import NeighborIndex, Neighbors
from poison_expectations.core.profile import FORMAT, FORMAT_VERSION, Profile
from poison_expectations.stores.io import write_bytes_atomic
from poison_expectations.stores.state_codec import decode_state, encode_state

KEY_ENV = "POISON_EXPECTATIONS_PROFILE_KEY"
MANIFEST, SEAL = "manifest.json", "seal"


def save_profile(profile: Profile, path: str | Path) -> Path:
    """Write the profile atomically (a temporary file renamed into place)."""
    members: dict[str, bytes] = {}
    table = profile.table
    arrays = {"reference/X": table.X, "reference/ids": _plain_ids(table.ids)}
    if table.y is not None:
        arrays["reference/y"] = table.y
    for k, graph in profile.graphs.items():
        arrays[f"graphs/{k}/indices"] = graph.indices.astype(np.int32 if table.n < 2**31 else np.int64)
        arrays[f"graphs/{k}/distances"] = graph.distances
    hnsw = profile.index.to_bytes()
    if hnsw is not None:
        arrays["index/hnsw"] = hnsw
    for name, array in arrays.items():
        members[f"{name}.npy"] = _npy(array)
    states = []
    for number, (key, state) in enumerate(profile.states.items()):
        tree, parts = encode_state(state, prefix=f"states/{number}/")
        members.update(parts)
        states.append({"key": key, "state": tree})
    body = {
        "encoder": profile.encoder.to_state(),
        "classes": None if profile.classes is None else [_json_scalar(c) for c in profile.classes],
        "sources": None if table.sources is None else [str(s) for s in table.sources],
        "graphs": {str(k): {"exact": g.exact, "recall_estimate": g.recall_estimate} for k, g in profile.graphs.items()},
        "index_exact": profile.index.exact,
        "states": states,
        "fitted_results": profile.fitted_results,
    }
    members["profile.json"] = json.dumps(body, allow_nan=False).encode()
    manifest = {**profile.meta, "members": {name: _sha(data) for name, data in sorted(members.items())}}
    manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True, default=str).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(MANIFEST, manifest_bytes)
        archive.writestr(SEAL, _seal(manifest_bytes))
        for name, data in members.items():
            archive.writestr(name, data)
    target = Path(path)
    write_bytes_atomic(target, buffer.getvalue())
    return target


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The checked manifest alone (for `profile show`)."""
    with _open(path) as archive:
        return _checked_manifest(archive, path)


def load_profile(path: str | Path) -> Profile:
    """Read and verify a profile; refuse one that is not intact or not ours."""
    with _open(path) as archive:
        manifest = _checked_manifest(archive, path)
        members = {name: _member(archive, name, digest, path) for name, digest in manifest["members"].items()}
    try:
        return _assemble(manifest, members)
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: not a valid profile ({type(exc).__name__}: {exc})") from None


def _assemble(manifest: dict, members: dict[str, bytes]) -> Profile:
    body = json.loads(members["profile.json"])
    array = lambda name: np.load(io.BytesIO(members[f"{name}.npy"]), allow_pickle=False)  # noqa: E731
    X = array("reference/X")
    y = array("reference/y") if "reference/y.npy" in members else None
    sources = np.asarray(body["sources"], dtype=object) if body["sources"] is not None else None
    table = Table(None, X, y, array("reference/ids"), sources)
    hnsw = None if body["index_exact"] else array("index/hnsw")
    graphs = {int(k): Neighbors(array(f"graphs/{k}/indices").astype(np.int64), array(f"graphs/{k}/distances"),
                                info["exact"], info["recall_estimate"]) for k, info in body["graphs"].items()}
    states = {_freeze(entry["key"]): decode_state(entry["state"], members) for entry in body["states"]}
    classes = np.asarray(body["classes"], dtype=object) if body["classes"] is not None else None
    meta = {k: v for k, v in manifest.items() if k != "members"}
    return Profile(meta=meta, encoder=FeatureEncoder.from_state(body["encoder"]), classes=classes, table=table,
                   index=NeighborIndex.from_bytes(X, hnsw), graphs=graphs, states=states,
                   fitted_results=body.get("fitted_results", {}))


# -- integrity -----------------------------------------------------------------

def _open(path: str | Path) -> zipfile.ZipFile:
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{path}: profile not found" if not file.exists() else f"{path}: not a regular file")
    try:
        return zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path}: not a profile, or truncated ({exc})") from None


def _checked_manifest(archive: zipfile.ZipFile, path) -> dict[str, Any]:
    try:
        manifest_bytes, seal = archive.read(MANIFEST), archive.read(SEAL)
    except (KeyError, zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path}: not a profile, or truncated ({exc})") from None
    if not hmac.compare_digest(seal, _seal(manifest_bytes)):
        keyed = " (or made with another POISON_EXPECTATIONS_PROFILE_KEY)" if os.environ.get(KEY_ENV) else ""
        raise InputError(f"{path}: the profile's manifest was altered{keyed}")
    manifest = json.loads(manifest_bytes)
    if manifest.get("format") != FORMAT:
        raise InputError(f"{path}: not a poison-expectations profile")
    version = int(manifest.get("format_version", 0))
    if version != FORMAT_VERSION:
        raise InputError(f"{path}: profile format version {version}, this plugin reads version {FORMAT_VERSION}; "
                         "refit the profile with `poison-check fit`")
    return manifest


def _member(archive: zipfile.ZipFile, name: str, digest: str, path) -> bytes:
    try:
        data = archive.read(name)
    except (KeyError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InputError(f"{path}: profile member {name} is missing or damaged ({exc})") from None
    if _sha(data) != digest:
        raise InputError(f"{path}: profile member {name} was altered (checksum differs)")
    return data


def _seal(manifest_bytes: bytes) -> bytes:
    key = os.environ.get(KEY_ENV)
    if key:
        return hmac.new(key.encode(), manifest_bytes, hashlib.sha256).hexdigest().encode()
    return hashlib.sha256(manifest_bytes).hexdigest().encode()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- plain values ----------------------------------------------------------------

def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def _plain_ids(ids: np.ndarray) -> np.ndarray:
    """Row ids as a numeric or unicode array (never object dtype, which needs pickle)."""
    ids = np.asarray(ids)
    if ids.dtype != object:
        return ids
    try:
        return ids.astype(np.int64)
    except (TypeError, ValueError):
        return ids.astype(str)


def _json_scalar(value: Any) -> Any:
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _freeze(value: Any) -> Any:
    """JSON lists back to the tuples of a signal's cache key."""
    return tuple(_freeze(v) for v in value) if isinstance(value, list) else value
