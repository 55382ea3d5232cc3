"""The poison expectations' pydantic fields, generated from the parameter
declarations (`core/params`): type, default, bounds and nullability come
from there, so an expectation cannot drift from the config or the signal.

Each expectation class inherits one or more field models:

    class ExpectX(PoisonBatchExpectation, family_fields(OUTLIERS, "max_rate")):

GX uses pydantic's v1 API (via great_expectations.compatibility.pydantic).
An explicit None for a key that is not nullable means its declared default
(as the metrics have always read None), so `embedding_columns=None` works.
"""

from __future__ import annotations

import copy
from typing import Any, List, Literal, Mapping, Optional, Union

from great_expectations.compatibility import pydantic

from poison_expectations.core.params import EXPECTATION_KEYS, FamilyParams, Param, shared_param


def annotation(param: Param) -> Any:
    """The field type of a declared key."""
    if param.choices is not None:
        kind: Any = Literal[tuple(param.choices)]  # type: ignore[valid-type]
    else:
        kinds = [List[param.item_kind] if k is list and param.item_kind is not None else k  # type: ignore[name-defined]
                 for k in param.kinds]
        kind = kinds[0] if len(kinds) == 1 else Union[tuple(kinds)]
    return Optional[kind] if param.nullable else kind


def field(param: Param) -> Any:
    """The field's default and bounds (pydantic ge/gt/le/lt)."""
    bounds = {}
    if param.low is not None:
        bounds["gt" if param.low_open else "ge"] = param.low
    if param.high is not None:
        bounds["lt" if param.high_open else "le"] = param.high
    return pydantic.Field(copy.deepcopy(param.default), **bounds)


def _none_is_default(cls, value, field):
    return copy.deepcopy(field.default) if value is None else value


def declared_fields(name: str, params: Mapping[str, Param]) -> type:
    """A pydantic model with one field per declared key, for expectations to inherit."""
    validators = {}
    not_null = [key for key, param in params.items() if not param.nullable]
    if not_null:
        validators["none_is_default"] = pydantic.validator(*not_null, pre=True, allow_reuse=True)(_none_is_default)
    definitions: dict[str, Any] = {key: (annotation(param), field(param)) for key, param in params.items()}
    return pydantic.create_model(name, __validators__=validators, **definitions)


def family_fields(family: FamilyParams, *limits: str, signal: bool = True) -> type:
    """The fields of `family`: its signal keys (unless signal=False) and the given limit keys."""
    keys = (family.signal_keys if signal else ()) + limits
    title = "".join(part.title() for part in family.section.split("_"))
    return declared_fields(f"{title}Fields", {key: family.params[key] for key in keys})


def shared_fields(*names: str) -> type:
    """The shared keys' fields (all of EXPECTATION_KEYS by default)."""
    return declared_fields("SharedFields", {name: shared_param(name) for name in names or EXPECTATION_KEYS})
