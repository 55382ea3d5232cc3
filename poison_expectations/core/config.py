"""Checkpoint config: a YAML file checked key by key against a typed spec.

Every key has a default, a type and a documented meaning; unknown keys and
wrong types are errors naming the key (exit code 2). The spec is built from
the parameter declarations in `core/params` (the shared keys and every
expectation family's section), so config validation needs no GX import.
"""

from __future__ import annotations

import copy
import os
import stat
from pathlib import Path
from typing import Any, Mapping

import yaml

from poison_expectations.core.errors import ConfigError
from poison_expectations.core.params import FAMILIES, SHARED_SPEC, Param

__all__ = ["DEFAULT_CONFIG_PATH", "Param", "full_spec", "defaults", "validate", "load_config", "dump_config"]

DEFAULT_CONFIG_PATH = Path(__file__).parents[1] / "defaults" / "training_ingest.yml"


def full_spec() -> dict[str, Any]:
    """{section: {key: Param}}: the shared keys, then `expectations.<family>`."""
    spec = dict(SHARED_SPEC)
    spec["expectations"] = {family.section: dict(family.params) for family in FAMILIES}
    return spec


def defaults(spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
    spec = full_spec() if spec is None else spec
    return {
        key: defaults(value) if isinstance(value, dict) else copy.deepcopy(value.config_value)
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


if __name__ == "__main__":  # python -m poison_expectations.core.config > docs/config.md
    from poison_expectations.core.params.render import config_markdown

    print(config_markdown(), end="")
