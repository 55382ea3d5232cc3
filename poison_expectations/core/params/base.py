"""The parameter declaration types: `Param` (one key) and `FamilyParams`
(one expectation family's config section).

Each key is declared once, here in the GX-free core, with its default, type,
bounds, nullability and meaning. Everything else is derived from that
declaration: config validation (`core/config.py`), the signals' defaults and
parameter checks (`Signal.__init__`), the GX expectation fields
(`gx/expectations/fields.py`), the packaged YAML and docs/config.md
(`render.py`). So a default or a bound is changed in one place.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from poison_expectations.core.errors import ConfigError, InputError

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1


class _Inherit:
    """Marker: the config default is the declared default."""

    def __repr__(self) -> str:
        return "INHERIT"


INHERIT: Any = _Inherit()


@dataclass(frozen=True)
class Param:
    """One key: default, accepted type(s), bounds, nullability and meaning.

    Bounds are closed unless `low_open` / `high_open` (then the bound itself
    is refused). `note` is the short comment the packaged YAML shows next to
    the key. `config_default`, when set, is what the config writes instead of
    `default` (the Python API's default); only `sources.signals` needs it."""

    default: Any
    kind: type | tuple[type, ...]
    doc: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    nullable: bool = False
    item_kind: type | None = None  # for lists
    note: str = ""
    config_default: Any = INHERIT

    def __post_init__(self) -> None:
        for value in (self.default, self.config_value):
            problem = self.problem(value)[1]
            if problem is not None:
                raise ValueError(f"declared default {value!r} is invalid: {problem}")

    @property
    def kinds(self) -> tuple[type, ...]:
        return self.kind if isinstance(self.kind, tuple) else (self.kind,)

    @property
    def config_value(self) -> Any:
        """The default the config (and the packaged YAML) uses."""
        return self.default if self.config_default is INHERIT else self.config_default

    def problem(self, value: Any) -> tuple[Any, str | None]:
        """(normalised value, None) if `value` is acceptable, else (value, why not)."""
        if value is None:
            return None, None if self.nullable else "must not be null"
        if type(value).__module__ == "numpy" and hasattr(value, "item"):
            value = value.item()  # a numpy scalar, e.g. from a calibration run
        kinds = self.kinds
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if list in kinds and isinstance(value, tuple):
            value = list(value)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            return value, f"expected {' or '.join(k.__name__ for k in kinds)}, got {value!r}"
        if isinstance(value, float) and not math.isfinite(value):
            return value, f"must be a finite number, got {value!r}"
        if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
            return value, f"{value!r} is out of the 64-bit integer range"
        if self.choices is not None and value not in self.choices:
            return value, f"{value!r} is not one of {list(self.choices)}"
        if isinstance(value, (int, float)):
            return value, self._bounds_problem(value)
        if self.item_kind is not None and isinstance(value, list):
            for item in value:
                if not isinstance(item, self.item_kind):
                    return value, f"items must be {self.item_kind.__name__}, got {item!r}"
        return value, None

    def _bounds_problem(self, value: float) -> str | None:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return f"{value!r} is {'not above' if self.low_open else 'below'} the minimum {self.low}"
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return f"{value!r} is {'not below' if self.high_open else 'above'} the maximum {self.high}"
        return None

    def check(self, key: str, value: Any) -> Any:
        """The value, normalised; a ConfigError naming the config key otherwise."""
        value, problem = self.problem(value)
        if problem is not None:
            raise ConfigError(f"config key '{key}': {problem}")
        return value

    def range_text(self) -> str:
        """The accepted values, e.g. 'float (0.0, 0.5]', 'str in knn, model' (docs)."""
        text = "/".join(k.__name__ for k in self.kinds)
        if self.item_kind is not None:
            text += f" of {self.item_kind.__name__}"
        if self.choices:
            text += " in " + ", ".join(map(str, self.choices))
        if self.low is not None or self.high is not None:
            low = "" if self.low is None else self.low
            high = "" if self.high is None else self.high
            text += f" {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        if self.nullable:
            text += " or null"
        return text


def rate(default: float, doc: str, note: str = "") -> Param:
    """A share or probability: float in [0, 1]."""
    return Param(default, float, doc, low=0.0, high=1.0, note=note)


def switch(default: bool, doc: str, note: str = "") -> Param:
    return Param(default, bool, doc, note=note)


SWITCH, SIGNAL, LIMIT = "switch", "signal", "limit"


@dataclass(frozen=True)
class FamilyParams:
    """One expectation family's config section, by role:

    - `switches`: read by the runner only (`enabled`, hooks such as `record`);
    - `signal`: the signal's parameters (what `fit`/`score` use); a signal
      constructed without one gets the declared default;
    - `limits`: the expectations' success-rule parameters (thresholds).

    `shared` holds the shared keys the signal takes (`k`, `random_state`,
    declared in `shared.py`). `signal_name` is the `Signal.name` it runs."""

    section: str
    signal_name: str
    switches: Mapping[str, Param]
    signal: Mapping[str, Param]
    limits: Mapping[str, Param]
    shared: Mapping[str, Param] = field(default_factory=dict)
    needs_label: bool = True
    order: int = 100  # build/run order; families that aggregate others run last
    note: str = ""  # the YAML comment on the section
    params: Mapping[str, Param] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        merged = {**self.switches, **self.signal, **self.limits}
        if len(merged) != len(self.switches) + len(self.signal) + len(self.limits):
            raise ValueError(f"{self.section}: a key is declared twice")
        object.__setattr__(self, "params", merged)

    @property
    def signal_keys(self) -> tuple[str, ...]:
        return tuple(self.signal)

    def role(self, key: str) -> str:
        return SWITCH if key in self.switches else SIGNAL if key in self.signal else LIMIT

    def __getitem__(self, key: str) -> Param:
        return self.params[key]

    def signal_params(self, given: Mapping[str, Any], owner: str) -> dict[str, Any]:
        """The signal's full parameters: `given` over the declared defaults,
        each checked against its declaration (InputError naming the key)."""
        declared = {**self.shared, **self.signal}
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise TypeError(f"{owner}: unknown parameter(s) {unknown}; known: {sorted(declared)}")
        out = {}
        for key, param in declared.items():
            value, problem = param.problem(given[key] if key in given else copy.deepcopy(param.default))
            if problem is not None:
                raise InputError(f"{owner}: parameter '{key}': {problem}")
            out[key] = value
        return out
