"""One declaration per parameter (core/params): the packaged config, the docs,
the GX expectation fields and the signals all follow it, and the core knows
every family without importing Great Expectations."""

from __future__ import annotations

import subprocess
import sys
import typing

import pytest
import yaml

from conftest import REPO
from poison_expectations.core.config import DEFAULT_CONFIG_PATH, defaults, full_spec, load_config
from poison_expectations.core.errors import InputError
from poison_expectations.core.params import FAMILIES, EXPECTATION_KEYS, LABEL_CONSISTENCY, shared_param
from poison_expectations.core.params.render import default_yaml, generated_files
from poison_expectations.core.signals.base import Signal

import poison_expectations.gx.expectations as gx_expectations
from poison_expectations.core import registry
from poison_expectations.gx.metrics.sources import metric_classes
from poison_expectations.gx.runner import build_expectations


def test_generated_files_equal_what_the_declarations_generate():
    stale = [str(path.relative_to(REPO)) for path, text in generated_files().items()
             if path.read_text(encoding="utf-8") != text]
    assert stale == [], f"stale: {stale}; run python -m poison_expectations.core.params.render --write"


def test_the_packaged_yaml_is_every_key_with_its_declared_default():
    assert DEFAULT_CONFIG_PATH.read_text(encoding="utf-8") == default_yaml()
    assert yaml.safe_load(default_yaml()) == defaults()
    assert load_config(None) == defaults()


# -- the GX expectation fields ---------------------------------------------------------

def expectation_classes() -> list[type]:
    return [getattr(gx_expectations, name) for name in gx_expectations.__all__]


def declaration_of(cls):
    metric = getattr(cls, "metric_class", None)
    return metric.signal_class.declaration if metric is not None else LABEL_CONSISTENCY


def declared_param(cls, key):
    family = declaration_of(cls)
    if key in family.params:
        return family.params[key]
    return shared_param(key) if key in EXPECTATION_KEYS else None


def bounds(field) -> dict:
    info = field.field_info
    return {name: getattr(info, name) for name in ("ge", "gt", "le", "lt") if getattr(info, name) is not None}


def declared_bounds(param) -> dict:
    out = {}
    if param.low is not None:
        out["gt" if param.low_open else "ge"] = param.low
    if param.high is not None:
        out["lt" if param.high_open else "le"] = param.high
    return out


@pytest.mark.parametrize("cls", expectation_classes(), ids=lambda c: c.__name__)
def test_every_expectation_field_has_its_declared_default_bounds_and_choices(cls):
    checked = 0
    for key, field in cls.__fields__.items():
        param = declared_param(cls, key)
        if param is None:
            continue  # GX's own fields (mostly, batch_id, ...)
        if field.required:  # the row-level check requires its label column
            assert key == "label_column", key
            continue
        assert field.default == param.default, key
        assert field.allow_none == param.nullable, key
        assert bounds(field) == declared_bounds(param), key
        if param.choices is not None:
            assert typing.get_args(field.outer_type_) == tuple(param.choices), key
        checked += 1
    assert checked >= 3  # the row-level check: method, k, random_state


@pytest.mark.parametrize("cls", expectation_classes(), ids=lambda c: c.__name__)
def test_every_success_key_is_declared(cls):
    undeclared = [key for key in cls.success_keys if key != "mostly" and declared_param(cls, key) is None]
    assert undeclared == []


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.section)
def test_every_signal_and_limit_key_is_a_field_of_one_of_the_familys_expectations(family):
    fields = set()
    for cls in expectation_classes():
        if declaration_of(cls) is family:
            fields |= set(cls.__fields__)
    assert set(family.signal) | set(family.limits) <= fields


def test_stored_suites_get_every_threshold_even_at_its_default():
    config = load_config(None, {"data.label_column": "y", "data.source_column": "s"})
    built = build_expectations(config)
    batch_level = {c for c in expectation_classes() if c.__name__ != "ExpectRowLabelsToBeConsistent"}
    assert {type(e) for e in built} == batch_level
    for expectation in built:
        stored = expectation.configuration.kwargs
        missing = [key for key in expectation.success_keys
                   if getattr(expectation, key) is not None and key not in stored]
        assert missing == [], (type(expectation).__name__, missing)


def test_none_for_a_key_that_is_not_nullable_means_its_declared_default():
    expectation = gx_expectations.ExpectSourcesToBeAllowed(source_column="s", allowlist=None, embedding_columns=None)
    assert expectation.allowlist == [] and expectation.embedding_columns == []
    with pytest.raises(Exception, match="radius_quantile"):
        gx_expectations.ExpectLargestNearDuplicateClusterToBeAtMost(radius_quantile=0.7)


# -- the signals -------------------------------------------------------------------------

SIGNALS = {family.section: metric_classes()[family.signal_name].signal_class for family in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.section)
def test_a_signal_takes_its_defaults_and_checks_from_the_declaration(family):
    cls = SIGNALS[family.section]
    assert cls.declaration is family and cls.__init__ is Signal.__init__  # no second default in a signature
    expected = {key: param.default for key, param in {**family.shared, **family.signal}.items()}
    assert cls().params == expected
    for key, param in family.signal.items():
        if param.low is not None:
            bad = param.low if param.low_open else param.low - (1 if param.kinds == (int,) else 1e-6)
            with pytest.raises(InputError, match=f"'{key}'"):
                cls(**{key: bad})
        if param.choices is not None:
            with pytest.raises(InputError, match=f"'{key}'"):
                cls(**{key: "not-a-choice"})
    with pytest.raises(TypeError, match="unknown"):
        cls(no_such_parameter=1)


def test_the_bounds_the_signal_and_the_config_check_are_the_same():
    """radius_quantile was (0, 1) in the signal but [1e-6, 0.5] in the config."""
    from poison_expectations.core.signals.near_duplicates import NearDuplicates

    for value in (0.0, 0.6):
        with pytest.raises(InputError, match="radius_quantile"):
            NearDuplicates(radius_quantile=value)
        with pytest.raises(Exception, match="radius_quantile"):
            load_config(None, {"expectations.near_duplicates.radius_quantile": value})
    assert NearDuplicates(radius_quantile=0.5).params["radius_quantile"] == 0.5


# -- layers --------------------------------------------------------------------------------

GX_FREE = """
import importlib, pkgutil, sys, types
from pathlib import Path
root = Path({root!r}) / "poison_expectations"
stub = types.ModuleType("poison_expectations"); stub.__path__ = [str(root)]  # skip the package __init__ (imports GX)
sys.modules["poison_expectations"] = stub
from poison_expectations.core import config, registry
assert "poison_expectations.core.registry" in sys.modules
config.load_config(None, {{"data.label_column": "y"}})
assert len(config.full_spec()["expectations"]) == {n}
import poison_expectations.core.signals as signals
for info in pkgutil.iter_modules(signals.__path__):
    importlib.import_module("poison_expectations.core.signals." + info.name)
gx = sorted(m for m in sys.modules if m.startswith(("great_expectations", "poison_expectations.gx")))
print(gx)
"""


def test_config_validation_and_the_signals_import_no_gx():
    code = GX_FREE.format(root=str(REPO), n=len(FAMILIES))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_config_does_not_import_the_registry():
    code = ("import sys, types; from pathlib import Path; root = Path(%r) / 'poison_expectations'; "
            "stub = types.ModuleType('poison_expectations'); stub.__path__ = [str(root)]; "
            "sys.modules['poison_expectations'] = stub; import poison_expectations.core.config; "
            "print('poison_expectations.core.registry' in sys.modules)") % str(REPO)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"


def test_families_names_a_family_without_its_gx_binding(monkeypatch):
    monkeypatch.delitem(registry._FAMILIES, "outliers")
    with pytest.raises(RuntimeError, match="outliers"):
        registry.families()


def test_every_declared_family_has_a_config_section_and_a_binding():
    assert [f.section for f in registry.families()] == [f.section for f in FAMILIES]
    assert list(full_spec()["expectations"]) == [f.section for f in FAMILIES]


def test_named_signals_of_the_sources_family_get_the_runs_k_and_seed():
    from types import SimpleNamespace

    from poison_expectations.core.analysis import Options
    from poison_expectations.gx.metrics.sources import default_signal

    signal = default_signal("label_consistency", SimpleNamespace(options=Options(k=5, random_state=7)))
    assert signal.params["k"] == 5 and signal.params["random_state"] == 7


def test_a_size_alpha_the_size_model_cannot_sum_to_is_refused():
    """A size_alpha far below 1e-12 ran the size model's tail sum out of memory
    (24 GB on an 80-row table, found by the config fuzz test); the config refuses it."""
    from poison_expectations.core.config import validate
    from poison_expectations.core.errors import ConfigError

    with pytest.raises(ConfigError, match="size_alpha': 3e-46 is below the minimum 1e-12"):
        validate({"expectations": {"near_duplicates": {"size_alpha": 3e-46}}})
