"""Shared plumbing of the poison expectations: data-role fields, the result
fields GX's Data Docs show, a prescriptive renderer built from one sentence
template per class, and a diagnostic renderer that lays out any family's
result details. Thin: the science lives in `signals/`."""

from __future__ import annotations

from typing import Any, ClassVar, Optional

import numpy as np
from great_expectations.expectations.expectation import BatchExpectation
from great_expectations.render import (
    LegacyDiagnosticRendererType,
    LegacyRendererType,
    RenderedStringTemplateContent,
    RenderedTableContent,
)
from great_expectations.render.renderer.renderer import renderer
from great_expectations.render.util import substitute_none_for_missing

from poison_expectations.core.details import detail_blocks, fmt, limit_text
from poison_expectations.core.params import EXPECTATION_KEYS
from poison_expectations.core.signals.base import Signal, SignalResult
from poison_expectations.core.verdicts.gate import family_verdict
from poison_expectations.gx.expectations.fields import shared_fields

PARTIAL_LIST_MAX = 20
# The Data Docs sentence of every expectation that gates against a reference or profile
GATE_SENTENCE = (" Against a reference or profile the batch fails when Higher Criticism over its rows' conformal "
                 "p-values rejects exchangeability with the reference at $gate_alpha and the lower confidence "
                 "bound of its poisoned share exceeds $min_effect; rows are flagged at FDR $fdr_q.")
GATE_PARAMS = ("gate_alpha", "min_effect", "fdr_q")


def jsonable(value: Any) -> Any:
    """numpy scalars/arrays to plain Python, recursively (GX stores results as JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class ExplicitParams:
    """Write every success key into the stored configuration.

    GX serialises expectations with `exclude_defaults=True`, so a threshold
    left at its default would not be stored, and a later plugin version with
    another default would silently change a saved suite. Renderers also only
    see stored kwargs."""

    def dict(self, *args, **kwargs):  # pydantic v1 API, as GX uses it
        data = super().dict(*args, **kwargs)
        if kwargs.get("exclude_defaults"):
            for key in self.success_keys:
                value = getattr(self, key, None)
                if key not in data and key in self.__fields__:  # null too: "no limit" is a setting
                    data[key] = value
        return data


class PoisonRendering:
    """Data Docs for every poison expectation: the prescriptive sentence
    (`renderer_template` with the stored kwargs) and, in the diagnostic
    view, the flagged ids plus the result details laid out generically
    (facts, per-class / per-source / cluster tables; see `details.py`)."""

    renderer_template: ClassVar[str] = ""
    renderer_params: ClassVar[tuple[str, ...]] = ()

    @classmethod
    @renderer(renderer_type=LegacyRendererType.PRESCRIPTIVE)
    def _prescriptive_renderer(cls, configuration=None, result=None, runtime_configuration=None, **kwargs):
        runtime_configuration = runtime_configuration or {}
        if configuration is None and result is not None:
            configuration = result.expectation_config
        params = substitute_none_for_missing(configuration.kwargs if configuration else {},
                                             list(cls.renderer_params))
        params = {k: ("–" if v is None else v) for k, v in params.items()}  # an unset limit reads as a dash
        return [
            RenderedStringTemplateContent(
                content_block_type="string_template",
                string_template={
                    "template": cls.renderer_template,
                    "params": params,
                    "styling": runtime_configuration.get("styling", {}),
                },
            )
        ]

    @classmethod
    @renderer(renderer_type=LegacyDiagnosticRendererType.UNEXPECTED_TABLE)
    def _diagnostic_unexpected_table_renderer(cls, configuration=None, result=None, runtime_configuration=None):
        body = (result.result if result is not None else None) or {}
        if "details" not in body:  # not one of our batch results (e.g. the row-level variant): GX's table
            return super()._diagnostic_unexpected_table_renderer(
                configuration=configuration, result=result, runtime_configuration=runtime_configuration)
        return diagnostic_blocks(body)


def _text(template: str, params: dict | None = None, classes: tuple[str, ...] = ()) -> RenderedStringTemplateContent:
    return RenderedStringTemplateContent(content_block_type="string_template", string_template={
        "template": template, "params": params or {}, "tag": "div",
        "styling": {"classes": list(classes)} if classes else {}})


def _table(title: str, header: list[str], rows: list[list[str]]) -> RenderedTableContent:
    return RenderedTableContent(
        content_block_type="table", header=_text(title, classes=("mt-2", "font-weight-bold")),
        header_row=header, table=rows,
        styling={"body": {"classes": ["table-bordered", "table-sm", "mt-1"]}})


def diagnostic_blocks(body: dict) -> list:
    """Observed value and counts, flagged ids, limit, then the detail tables."""
    details = body.get("details") or {}
    flagged = int(body.get("unexpected_count") or 0)
    total = int(body.get("element_count") or 0)
    ids = body.get("unexpected_index_list") or body.get("partial_unexpected_list") or []
    facts = [["observed value", fmt(body.get("observed_value"))],
             ["flagged rows", f"{flagged} of {total} ({fmt(body.get('unexpected_percent'))}%)"],
             ["limit", limit_text(details.get("limit"))]]
    if flagged:
        shown = ", ".join(map(str, ids[:PARTIAL_LIST_MAX]))
        facts.append([f"flagged ids ({min(len(ids), PARTIAL_LIST_MAX)} of {flagged})", shown])
    blocks = detail_blocks(details)
    facts.extend([list(fact) for fact in blocks.facts])
    out = [_table(f"Result ({details.get('signal', 'signal')})", ["", "value"], facts)]
    for table in blocks.tables:
        rows = table.rows + ([[f"… {table.hidden_rows} more"] + [""] * (len(table.header) - 1)]
                             if table.hidden_rows else [])
        out.append(_table(table.title, table.header, rows))
    return out


class PoisonBatchExpectation(ExplicitParams, PoisonRendering, BatchExpectation, shared_fields()):
    """Base of every batch-level poison expectation (abstract: not registered).
    Its fields are the shared keys (data roles, features, neighbours, seed),
    generated from their declarations; each family adds its own."""

    metric_class: ClassVar[type] = None  # the PoisonSignalMetric subclass
    limit_keys: ClassVar[tuple[str, ...]] = ()
    # ClassVar here too: pydantic only honours ClassVar annotations of model classes
    renderer_template: ClassVar[str] = ""
    renderer_params: ClassVar[tuple[str, ...]] = ()

    # -- the signal ----------------------------------------------------------
    def metric_kwargs(self) -> dict[str, Any]:
        return {key: getattr(self, key, None) for key in self.metric_class.value_keys}

    def signal(self) -> Signal:
        """The exact signal the metric will run (same cache key)."""
        return self.metric_class.make_signal(self.metric_kwargs())

    def signal_result(self, metrics: dict) -> SignalResult:
        return metrics[self.metric_class.metric_name]

    def limit(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.limit_keys}

    # -- the batch gate (against a reference or profile) ----------------------
    def gates_against_reference(self) -> bool:
        """Whether this expectation can fail a run against a reference or
        profile (the runner splits the checkpoint's alpha over those)."""
        return True

    def counts_in_alpha(self) -> bool:
        """A statistical gate: one of the F tests the checkpoint's alpha is split
        over. Policies (allow/deny lists, ledger reputations) fail by rule, not
        by chance, and do not count."""
        return self.gates_against_reference()

    def test_level(self, own_alpha: float) -> float:
        """The level of a test the signal runs itself (trigger patterns,
        sources): against a reference or profile its own alpha or the
        checkpoint's share, whichever is smaller; in a self-check (no stated
        false-alarm rate for the checkpoint) its own alpha."""
        trusted = getattr(self, "reference", None) or getattr(self, "profile", None)
        return min(own_alpha, self.gate_alpha) if trusted else own_alpha

    def judges(self, result: SignalResult) -> bool:
        """False when this run has a trusted side and the expectation does not
        gate against one (it then reports, and passes)."""
        return self.gates_against_reference() or not against_reference(result)

    def verdict(self, result: SignalResult) -> dict | None:
        """The family's exchangeability gate at this expectation's level
        (`gate_alpha`: the checkpoint's alpha / F), or None in a self-check
        (no reference scores to rank the batch against)."""
        return family_verdict(result, alpha=self.gate_alpha, min_effect=self.min_effect,
                              seed=self.random_state or 0)

    def verdict_result(self, result: SignalResult, verdict: dict, runtime_configuration: Optional[dict],
                       details: Optional[dict] = None) -> dict:
        """The GX result of a gated expectation: observed value = the gate's
        p-value; flagged rows = the signal's rows at FDR q (Benjamini-Hochberg)."""
        out = self.build_result(success=not verdict["failed"], observed_value=verdict["p_value"],
                                flags=result.flags, result=result, runtime_configuration=runtime_configuration,
                                details={**(details or {}), "verdict": verdict,
                                         "fdr": result.summary.get("fdr")})
        out["result"]["details"]["limit"] = {"gate_alpha": self.gate_alpha, "min_effect": self.min_effect,
                                             "fdr_q": self.fdr_q}
        return out

    # -- result fields -----------------------------------------------------
    def build_result(self, *, success: bool, observed_value: Any, flags: np.ndarray, result: SignalResult,
                     runtime_configuration: Optional[dict], details: Optional[dict] = None) -> dict:
        """GX result dict with the fields Data Docs' diagnostic view shows."""
        flagged = np.flatnonzero(flags)
        ids = result.ids if result.ids is not None else np.arange(result.n_rows)
        n = result.n_rows
        body = {
            "observed_value": jsonable(observed_value),
            "element_count": n,
            "unexpected_count": int(len(flagged)),
            "unexpected_percent": 100.0 * len(flagged) / n if n else 0.0,
            "partial_unexpected_list": jsonable(ids[flagged[:PARTIAL_LIST_MAX]]),
            "details": jsonable({"signal": result.signal, "limit": self.limit(), **(details or {})}),
        }
        requested = (runtime_configuration or {}).get("result_format", {})
        fmt_name = requested.get("result_format") if isinstance(requested, dict) else requested
        if str(fmt_name).upper().endswith("COMPLETE"):
            body["unexpected_index_list"] = jsonable(ids[flagged])
        return {"success": bool(success), "result": body}


def against_reference(result: SignalResult) -> bool:
    """The result was scored against a reference or profile (it carries row p-values or a batch test)."""
    return result.pvalues is not None or result.batch_test is not None


def shared_success_keys(*family_keys: str) -> tuple[str, ...]:
    return tuple(EXPECTATION_KEYS) + tuple(family_keys)
