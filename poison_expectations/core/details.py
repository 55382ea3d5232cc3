"""Result details as facts and tables, for any expectation family.

An expectation's `result["details"]` is free-form JSON: scalars, nested
mappings (a reference gate), lists of records (per class, per source,
clusters) or mappings of records (per source keyed by name). Data Docs and
the HTML report both lay details out through `detail_blocks`, so a new
family's details show up without renderer changes. No GX import here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_TABLE_ROWS = 20  # rows shown per detail table; the rest is counted
MAX_LIST_ITEMS = 20  # items shown of a list of plain values
HIDDEN_KEYS = ("signal", "limit", "console_lines")  # shown elsewhere


@dataclass
class DetailTable:
    title: str
    header: list[str]
    rows: list[list[str]]
    hidden_rows: int = 0  # rows left out (beyond MAX_TABLE_ROWS)


@dataclass
class DetailBlocks:
    facts: list[tuple[str, str]] = field(default_factory=list)
    tables: list[DetailTable] = field(default_factory=list)


def fmt(value: Any) -> str:
    """A compact, human string: 4 significant digits for floats."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list, tuple)):
        return _readable(value)[:300]
    return str(value)


def _readable(value: Any, nested: bool = False) -> str:
    """Mappings and lists for a reader, not JSON: `0: 1; 1: 4`, nested parts in
    parentheses, floats rounded, `none` when empty."""
    if isinstance(value, dict):
        if not value:
            return "none"
        text = ", ".join(f"{k}: {_readable(v, True)}" for k, v in value.items()) if nested else \
            "; ".join(f"{k}: {_readable(v, True)}" for k, v in value.items())
        return f"({text})" if nested else text
    if isinstance(value, (list, tuple)):
        return ", ".join(_readable(v, True) for v in value) if value else "none"
    return fmt(value)


def title(key: str) -> str:
    return str(key).replace("_", " ")


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _records_table(name: str, records: list[dict], key_column: str | None = None) -> DetailTable:
    header: list[str] = [key_column] if key_column else []
    for record in records:
        for key in record:
            if key not in header:
                header.append(str(key))
    rows = [[fmt(record.get(column)) for column in header] for record in records[:MAX_TABLE_ROWS]]
    return DetailTable(title(name), [title(h) for h in header], rows, max(0, len(records) - MAX_TABLE_ROWS))


def detail_blocks(details: dict | None) -> DetailBlocks:
    """Facts (key, value) and tables from one expectation's result details."""
    blocks = DetailBlocks()
    for key, value in (details or {}).items():
        if key in HIDDEN_KEYS:
            continue
        if _is_scalar(value):
            blocks.facts.append((title(key), fmt(value)))
        elif isinstance(value, dict) and value and all(_is_scalar(v) for v in value.values()):
            rows = [[title(k), fmt(v)] for k, v in value.items()]
            blocks.tables.append(DetailTable(title(key), ["", "value"], rows[:MAX_TABLE_ROWS],
                                             max(0, len(rows) - MAX_TABLE_ROWS)))
        elif isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            records = [{"key": k, **v} for k, v in value.items()]
            table = _records_table(key, records)
            table.header[0] = ""
            blocks.tables.append(table)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            blocks.tables.append(_records_table(key, value))
        elif isinstance(value, list) and all(_is_scalar(v) for v in value):
            shown = ", ".join(fmt(v) for v in value[:MAX_LIST_ITEMS])
            more = f" … and {len(value) - MAX_LIST_ITEMS} more" if len(value) > MAX_LIST_ITEMS else ""
            blocks.facts.append((title(key), (shown + more) or "none"))
        else:
            blocks.facts.append((title(key), fmt(value)))
    return blocks


def limit_text(limit: dict | None) -> str:
    return ", ".join(f"{k}={fmt(v)}" for k, v in (limit or {}).items()) or "–"
