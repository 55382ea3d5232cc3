"""Generate the packaged default config and docs/config.md from the
declarations, so neither restates a default, a bound or a meaning.

    python -m poison_expectations.core.params.render --write   # rewrite the three files
    python -m poison_expectations.core.params.render --check   # exit 1 if one is stale

tests/test_params.py checks that the shipped files equal what this writes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator

import yaml

from poison_expectations.core.params import FAMILIES, SHARED_SPEC, FamilyParams, Param

PACKAGE = Path(__file__).resolve().parents[2]
REPO = PACKAGE.parent
COMMENT_COLUMN = 30

YAML_HEADER = """\
# Default poisoning checkpoint for a training-data ingest (the packaged default).
# Generated from the parameter declarations in poison_expectations/core/params by
# `python -m poison_expectations.core.params.render --write`. Every key, its type,
# range and meaning: docs/config.md. CLI flags (--label, --id-column,
# --source-column, --features, --reference) override the `data:` keys.
"""

MARKDOWN_HEADER = """\
# Config reference

Every key of a checkpoint config, with its default. Generated from the parameter declarations in
`poison_expectations/core/params` by `python -m poison_expectations.core.params.render --write`; unknown keys and
wrong types are errors (exit 2). Role: `signal` keys are the signal's parameters (what it fits and scores with),
`limit` keys the expectation's success rule, `switch` keys what the runner does; `shared` keys apply to every
family. Ranges: `[a, b]` includes the bound, `(a, b)` excludes it.
"""


def _entries(spec: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Param]]:
    for key, entry in spec.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(entry, dict):
            yield from _entries(entry, path)
        else:
            yield path, entry


def _default_text(param: Param) -> str:
    text = f"`{param.config_value!r}`"
    if param.config_value != param.default:
        text += f" (Python API: `{param.default!r}`)"
    return text


def config_markdown() -> str:
    """docs/config.md: one row per key, shared keys first, then each family."""
    rows = [MARKDOWN_HEADER, "| key | default | type / range | role | meaning |", "|---|---|---|---|---|"]
    for path, param in _entries(SHARED_SPEC):
        rows.append(f"| `{path}` | {_default_text(param)} | {param.range_text()} | shared | {param.doc} |")
    for family in FAMILIES:
        for key, param in family.params.items():
            rows.append(f"| `expectations.{family.section}.{key}` | {_default_text(param)} | {param.range_text()} "
                        f"| {family.role(key)} | {param.doc} |")
    return "\n".join(rows) + "\n"


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1_000)
    return text.removesuffix("\n").removesuffix("\n...")


def _line(indent: int, key: str, value: str | None, note: str) -> str:
    text = " " * indent + f"{key}:" + ("" if value is None else f" {value}")
    if note:
        text = text.ljust(max(COMMENT_COLUMN, len(text) + 1)) + f" # {note}"
    return text


def _yaml_section(spec: dict[str, Any], indent: int) -> list[str]:
    lines = []
    for key, entry in spec.items():
        if isinstance(entry, dict):
            lines.append(_line(indent, key, None, ""))
            lines.extend(_yaml_section(entry, indent + 2))
        else:
            lines.append(_line(indent, key, _scalar(entry.config_value), entry.note))
    return lines


def _yaml_family(family: FamilyParams) -> list[str]:
    lines = [_line(2, family.section, None, family.note)]
    for key, param in family.params.items():
        lines.append(_line(4, key, _scalar(param.config_value), param.note))
    return lines


def default_yaml() -> str:
    """The packaged default config: every key with its default and its note."""
    lines = _yaml_section(SHARED_SPEC, 0) + ["expectations:"]
    for family in FAMILIES:
        lines.extend(_yaml_family(family))
    return YAML_HEADER + "\n".join(lines) + "\n"


def generated_files() -> dict[Path, str]:
    """Each generated file (in a source checkout) and the text it must hold."""
    config = default_yaml()
    return {
        PACKAGE / "defaults" / "training_ingest.yml": config,
        REPO / "checkpoints" / "training_ingest.yml": config,
        REPO / "docs" / "config.md": config_markdown(),
    }


def main(argv: list[str]) -> int:
    if argv not in (["--write"], ["--check"]):
        print(__doc__, file=sys.stderr)
        return 2
    stale = [path for path, text in generated_files().items()
             if not path.exists() or path.read_text(encoding="utf-8") != text]
    if argv == ["--check"]:
        for path in stale:
            print(f"{path}: stale, run python -m poison_expectations.core.params.render --write", file=sys.stderr)
        return 1 if stale else 0
    for path, text in generated_files().items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
