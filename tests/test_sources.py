"""Per-source statistics, source expectations, and the reputation acceptance runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from threadpoolctl import threadpool_limits

from click.testing import CliRunner

from poison_expectations.stores import ledger as ledger_mod
from poison_expectations.apps.cli import main
from poison_expectations.core.analysis import Options, Roles, build_analysis
from poison_expectations.core.config import load_config
from poison_expectations.testing import make_tabular
from poison_expectations.apps.console import verdict_text
from poison_expectations.core.errors import InputError
from poison_expectations.gx.expectations.sources import (ExpectSourceFlaggedRatesToNotExceedRest,
                                                      ExpectSourceReputationsToBeAtLeast, ExpectSourcesToBeAllowed)
from poison_expectations.gx.runner import run_checkpoint, run_validation
from poison_expectations.core.signals.base import Signal, SignalResult
from poison_expectations.core.signals.label_consistency import LabelConsistency
from poison_expectations.core.signals import source_tests
from poison_expectations.core.signals.source_tests import fisher_greater, js_divergence, stratified_fisher_greater
from poison_expectations.core.signals.sources import SourceStatistics, source_table

FLAGGED = "expect_source_flagged_rates_to_not_exceed_rest"
REPUTATION = "expect_source_reputations_to_be_at_least"
ALLOWED = "expect_sources_to_be_allowed"
BAD = ("partner_x", "vendor_c")  # about 4% and 2.5% of the rows of make_tabular(n_sources=12)
SHIFTED = ("vendor_b", "crowd_12", "crowd_03", "internal")
FEWER_ONES = ("crowd_07", "vendor_a")  # class mix: 70% of their class-1 rows dropped
FEWER_ZEROS = ("internal", "crowd_12")  # ... and of these sources' class-0 rows
CLASS_MIX = FEWER_ONES + FEWER_ZEROS


def sources_table(n=3000, seed=0, bad=(), flip=0.4):
    """12 heterogeneous honest sources: make_tabular's mild class mixes, four
    sources with 70% of one class dropped, four with a +0.5 sd calibration
    offset on every numeric column; `bad` sources get `flip` of their labels
    flipped (and hold every flipped label)."""
    frame = make_tabular(n, n_sources=12, random_state=seed)
    rng = np.random.default_rng(seed + 1000)
    numeric = [c for c in frame.columns if c.startswith("num_")]
    frame[numeric] = frame[numeric].astype(float)
    for source in SHIFTED:
        rows = frame["source"] == source
        frame.loc[rows, numeric] += 0.5 * frame[numeric].std()
    keep = np.ones(len(frame), dtype=bool)
    for sources, label in ((FEWER_ONES, 1), (FEWER_ZEROS, 0)):
        for source in sources:
            rows = np.flatnonzero((frame["source"] == source).to_numpy() & (frame["label"] == label).to_numpy())
            keep[rows[rng.random(len(rows)) < 0.7]] = False
    frame = frame[keep].reset_index(drop=True)
    flipped = np.zeros(len(frame), dtype=bool)
    for source in bad:
        rows = np.flatnonzero((frame["source"] == source).to_numpy())
        chosen = rows[rng.random(len(rows)) < flip]
        frame.loc[chosen, "label"] = 1 - frame.loc[chosen, "label"]
        flipped[chosen] = True
    return frame, flipped


def config(tmp_path, **sources):
    overrides = {"data.label_column": "label", "data.id_column": "row_id", "data.source_column": "source",
                 "expectations.label_consistency.method": "knn",
                 "expectations.sources.ledger": str(tmp_path / "ledger.db")}
    overrides.update({f"expectations.sources.{k}": v for k, v in sources.items()})
    return load_config(None, overrides)


def outcome_of(outcome, name):
    return next(e for e in outcome.expectations if e.expectation == name)


def offenders(outcome, name):
    return sorted(item["source"] for item in outcome_of(outcome, name).details["offending_sources"])


# -- acceptance: a batch ----------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_bad_sources_among_heterogeneous_honest_ones_are_named(tmp_path, seed):
    frame, flipped = sources_table(seed=seed, bad=BAD)
    shares = frame["source"].value_counts(normalize=True)
    assert all(shares[s] <= 0.08 for s in BAD) and frame["source"].nunique() == 12
    assert set(frame.loc[flipped, "source"]) == set(BAD)

    outcome = run_validation(frame, config(tmp_path))

    assert outcome.success is False
    assert offenders(outcome, FLAGGED) == sorted(BAD)
    assert outcome_of(outcome, FLAGGED).success is False
    summary = outcome.results["sources"].summary
    assert sorted(summary["suspicious_sources"]) == sorted(BAD)
    for item in outcome_of(outcome, FLAGGED).details["offending_sources"]:  # named with their numbers
        lc = item["signals"]["label_consistency"]
        assert lc["rate"] >= lc["rest_rate"] + 0.1 and lc["q_value"] <= 0.01 and item["rows"] >= 25
        assert lc["flagged"] == round(lc["rate"] * item["rows"])
    text = verdict_text(outcome)
    assert "FAIL  expect_source_flagged_rates_to_not_exceed_rest" in text
    assert all(s in text for s in BAD)
    # every row of a named source is flagged by the source signal; the findings say so
    findings = outcome.findings
    assert set(findings.loc[findings["source_verdict"] == "suspicious", "source"]) == set(BAD)


@pytest.mark.parametrize("seed", [0, 1, 2, 4])
def test_clean_heterogeneous_batch_passes(tmp_path, seed):
    frame, _ = sources_table(seed=seed)

    outcome = run_validation(frame, config(tmp_path))

    assert outcome.success is True, verdict_text(outcome)
    summary = outcome.results["sources"].summary
    assert summary["suspicious_sources"] == []
    assert summary["n_judged"] >= 8
    by_source = {r["source"]: r for r in summary["sources"]}
    assert max(by_source[s]["label_js_rest"] for s in CLASS_MIX) > 0.07  # reported, not judged


def test_default_config_without_source_column_skips_the_family(tmp_path, monkeypatch, separable):
    monkeypatch.chdir(tmp_path)
    frame, _ = separable(n=600)
    cfg = load_config(None, {"data.label_column": "label", "data.id_column": "row_id",
                             "expectations.label_consistency.method": "knn"})
    outcome = run_validation(frame, cfg)
    assert outcome.success is True
    assert outcome.expectations and not any("source" in e.expectation for e in outcome.expectations)
    assert "sources" not in outcome.results
    assert not (tmp_path / ".poison").exists()  # no ledger written without sources


def test_small_bad_source_is_reported_but_not_judged(tmp_path):
    frame, _ = sources_table(seed=3)
    small = frame["source"].value_counts()
    tiny = small[small < 25].index[0]
    rows = frame["source"] == tiny
    frame.loc[rows, "label"] = 1 - frame.loc[rows, "label"]  # every label of a tiny source flipped
    outcome = run_validation(frame, config(tmp_path))
    row = next(r for r in outcome.results["sources"].summary["sources"] if r["source"] == tiny)
    assert row["verdict"] == "unjudged" and row["signals"]["label_consistency"]["q_value"] is None
    assert tiny in outcome_of(outcome, FLAGGED).details["unjudged_sources"]
    assert outcome_of(outcome, FLAGGED).success is True


# -- the statistics ---------------------------------------------------------------

def test_fisher_matches_scipy_fisher_exact():
    cases = [(5, 20, 12, 400), (0, 30, 3, 100), (17, 17, 40, 300), (3, 50, 60, 1000)]
    k = np.array([c[0] for c in cases])
    n = np.array([c[1] for c in cases])
    for (ks, ns, kt, nt), p in zip(cases, [fisher_greater(np.array([c[0]]), np.array([c[1]]), c[2], c[3])[0]
                                           for c in cases], strict=True):
        table = [[ks, ns - ks], [kt - ks, nt - ns - (kt - ks)]]
        assert p == pytest.approx(stats.fisher_exact(table, alternative="greater")[1], rel=1e-9)
    assert fisher_greater(k, n, 0, 1000).tolist() == [1.0] * 4


def test_stratified_test_is_the_exact_tail_of_a_sum_of_hypergeometrics():
    n_c, K_c, N_c = np.array([30, 3, 12]), np.array([3, 1, 9]), np.array([47, 50, 40])
    pmfs = [stats.hypergeom.pmf(np.arange(n + 1), N, K, n) for n, K, N in zip(n_c, K_c, N_c, strict=True)]
    total = np.convolve(np.convolve(pmfs[0], pmfs[1]), pmfs[2])  # full support, independent of the code
    for k in range(0, 12):
        assert stratified_fisher_greater(k, n_c, K_c, N_c) == pytest.approx(total[k:].sum(), abs=1e-12)
    # one stratum: Fisher's exact test
    assert stratified_fisher_greater(5, np.array([20]), np.array([12]), np.array([400])) == pytest.approx(
        fisher_greater(np.array([5]), np.array([20]), 12, 400)[0])


def test_stratified_test_switches_to_the_cmh_normal_tail_for_large_counts(monkeypatch):
    n_c, K_c, N_c = np.array([3000, 2500]), np.array([600, 900]), np.array([20000, 9000])
    k = 3000 * 600 // 20000 + 2500 * 900 // 9000 + 35  # about 2.3 sd above the null mean (sd 15.4)
    monkeypatch.setattr(source_tests, "EXACT_MAX_COUNT", 10_000)
    exact = stratified_fisher_greater(k, n_c, K_c, N_c)
    monkeypatch.setattr(source_tests, "EXACT_MAX_COUNT", 10)
    approx = stratified_fisher_greater(k, n_c, K_c, N_c)
    assert 0.001 < exact < 0.05 and approx == pytest.approx(exact, rel=0.1)


def test_class_mix_alone_does_not_name_an_honest_source():
    """Class 1 rows are flagged at 20%, class 0 rows at 2%, whatever their source.
    An honest source with 90% class 1 has a pooled rate of about 18% against 4%
    for the rest: the pooled test names it, the class-stratified one does not."""
    rng = np.random.default_rng(3)
    sources = np.array(["skewed"] * 400 + ["other"] * 2000)
    y = np.concatenate([rng.random(400) < 0.9, rng.random(2000) < 0.1]).astype(np.int64)
    flags = {"label_consistency": rng.random(2400) < np.where(y == 1, 0.20, 0.02)}
    pooled = source_table(sources, None, None, None, flags, min_rows=25, alpha=0.01, min_excess=0.10)
    stratified = source_table(sources, y, np.array([0, 1]), None, flags, min_rows=25, alpha=0.01, min_excess=0.10)
    skewed = list(pooled["names"]).index("skewed")
    assert pooled["suspicious"][skewed] and pooled["excess"][skewed, 0] > 0.1
    assert not stratified["suspicious"].any() and abs(stratified["excess"][skewed, 0]) < 0.05
    # a truly bad source is still named when stratified: a further 30% of its rows flagged
    bad_flags = flags["label_consistency"] | ((sources == "skewed") & (rng.random(2400) < 0.3))
    bad = source_table(sources, y, np.array([0, 1]), None, {"lc": bad_flags}, min_rows=25, alpha=0.01,
                       min_excess=0.10)
    assert bad["suspicious"].tolist() == [s == "skewed" for s in bad["names"]]


def test_js_divergence_bounds():
    assert js_divergence(np.array([[5.0, 5.0]]), np.array([[50.0, 50.0]]))[0] == pytest.approx(0.0)
    assert js_divergence(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))[0] == pytest.approx(1.0)


def test_no_source_named_under_the_null_false_discovery_rate():
    """Flags independent of the source: BH at alpha names a source in at most
    about alpha of the batches (global null: FDR = family-wise error)."""
    rng = np.random.default_rng(0)
    named = 0
    trials = 300
    for _ in range(trials):
        sources = rng.choice([f"s{i}" for i in range(20)], size=4000)
        flags = {"a": rng.random(4000) < 0.05, "b": rng.random(4000) < 0.02}
        table = source_table(sources, None, None, None, flags, min_rows=25, alpha=0.05, min_excess=0.0)
        named += bool(table["suspicious"].any())
    assert named / trials <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / trials)


def test_min_excess_keeps_a_large_honest_source_with_slightly_harder_rows():
    rng = np.random.default_rng(1)
    sources = np.array(["big"] * 20_000 + ["other"] * 20_000)
    flags = {"label_consistency": np.concatenate([rng.random(20_000) < 0.03, rng.random(20_000) < 0.01])}
    strict = source_table(sources, None, None, None, flags, min_rows=25, alpha=0.01, min_excess=0.0)
    default = source_table(sources, None, None, None, flags, min_rows=25, alpha=0.01, min_excess=0.10)
    assert strict["q"][0, 0] < 1e-10 and strict["suspicious"].tolist() == [True, False]
    assert default["suspicious"].tolist() == [False, False]


class _FloodSignal(Signal):
    """Test double of a later signal: flags every row of one source."""

    name = "test_flood"

    def __init__(self, target: str = "vendor_b"):
        super().__init__(target=target)

    def fit(self, analysis) -> dict:
        return {}

    def score(self, state, analysis) -> SignalResult:
        flags = analysis.batch.sources == self.params["target"]
        return SignalResult(self.name, flags.astype(float), flags, np.where(flags, "flood", ""))

    score_fitted = score


def _analysis(frame):
    return build_analysis(frame, Roles("label", "row_id", "source"), Options())


def test_every_signal_of_the_run_is_aggregated_by_name():
    frame, _ = sources_table(n=2000, seed=4)
    analysis = _analysis(frame)
    analysis.result(LabelConsistency(method="knn"))
    analysis.result(_FloodSignal())
    summary = analysis.result(SourceStatistics(signals=["*"])).summary
    assert summary["signals"] == ["label_consistency", "test_flood"]
    assert summary["suspicious_sources"] == ["vendor_b"]
    row = next(r for r in summary["sources"] if r["source"] == "vendor_b")
    assert row["signals"]["test_flood"]["significant"] and row["signals"]["test_flood"]["rate"] == 1.0
    assert row["signals"]["label_consistency"]["significant"] is False

    excluded = analysis.result(SourceStatistics(signals=["*"], exclude_signals=["test_flood"])).summary
    assert excluded["signals"] == ["label_consistency"] and excluded["suspicious_sources"] == []
    # named signals run with their defaults; a name that is no signal is an input error
    named = analysis.result(SourceStatistics(signals=["test_flood"])).summary
    assert named["signals"] == ["test_flood"]
    with pytest.raises(InputError, match="unknown signal 'nope'"):
        analysis.result(SourceStatistics(signals=["nope"]))


def test_star_sees_the_latest_result_of_each_signal_not_a_stale_one():
    frame, _ = sources_table(n=1500, seed=5)
    analysis = _analysis(frame)
    analysis.result(_FloodSignal("vendor_b"))
    first = analysis.result(SourceStatistics(signals=["*"])).summary
    analysis.result(_FloodSignal("internal"))
    second = analysis.result(SourceStatistics(signals=["*"])).summary
    assert first["suspicious_sources"] == ["vendor_b"] and second["suspicious_sources"] == ["internal"]


def test_missing_source_column_is_an_input_error(separable):
    frame, _ = separable(n=300)
    analysis = build_analysis(frame, Roles("label", "row_id"), Options())
    with pytest.raises(InputError, match="source column"):
        analysis.result(SourceStatistics())


# -- pure GX suite -------------------------------------------------------------------

def test_hand_built_gx_suite_uses_label_consistency_deterministically(tmp_path):
    frame, _ = sources_table(n=1200, seed=6, bad=("crowd_12",), flip=0.5)
    kwargs = dict(label_column="label", id_column="row_id", source_column="source")
    expectations = [
        ExpectSourceFlaggedRatesToNotExceedRest(**kwargs),
        ExpectSourceReputationsToBeAtLeast(**kwargs, ledger=str(tmp_path / "none.db")),
        ExpectSourcesToBeAllowed(**kwargs, denylist=["web_*"]),
    ]
    with threadpool_limits(1):  # the default label-consistency model; one thread on a shared machine
        result = run_checkpoint(frame, expectations)
    by_type = {r.expectation_config.type: r for r in next(iter(result.run_results.values())).results}
    flagged = by_type[FLAGGED]
    assert flagged.success is False
    assert [o["source"] for o in flagged.result["details"]["offending_sources"]] == ["crowd_12"]
    assert flagged.result["details"]["signals"] == ["label_consistency"]
    assert by_type[REPUTATION].success is True  # no ledger yet: every source new, policy allow
    assert not (tmp_path / "none.db").exists()  # reading never creates a ledger
    allowed = by_type[ALLOWED]
    assert allowed.success is False and allowed.result["observed_value"] == {"web_scrape": "denied"}


def test_allowlist_and_denylist(tmp_path):
    frame, _ = sources_table(n=800, seed=7)
    kwargs = dict(label_column="label", id_column="row_id", source_column="source", signals=[])
    result = run_checkpoint(frame, [ExpectSourcesToBeAllowed(**kwargs, allowlist=["vendor_*", "crowd_*"],
                                                             denylist=["crowd_07"])])
    r = next(iter(result.run_results.values())).results[0]
    observed = r.result["observed_value"]
    assert observed["crowd_07"] == "denied"
    assert {s for s, v in observed.items() if v == "not_allowed"} == {"internal", "partner_x", "partner_y",
                                                                         "web_scrape"}
    assert r.result["unexpected_count"] == int(frame["source"].isin(list(observed)).sum())


@pytest.mark.parametrize("policy, fails", [("allow", False), ("cap", True), ("fail", True)])
def test_new_source_policies(tmp_path, policy, fails):
    frame, _ = sources_table(n=1500, seed=8)
    newbie = "crowd_12"  # about 6% of the batch: over a 5% cap
    url = str(tmp_path / "ledger.db")
    with ledger_mod.Ledger(url) as store:
        store.record_run("old", [ledger_mod.SourceRecord(s, 500, 5, "ok") for s in frame["source"].unique()
                                 if s != newbie], success=True)
    kwargs = dict(label_column="label", id_column="row_id", source_column="source", signals=[])
    expectation = ExpectSourceReputationsToBeAtLeast(**kwargs, ledger=url, new_source_policy=policy)
    r = next(iter(run_checkpoint(frame, [expectation]).run_results.values())).results[0]
    assert r.success is (not fails)
    assert r.result["details"]["new_sources"] == [newbie]
    if fails:
        assert list(r.result["observed_value"]) == [newbie]


# -- acceptance: reputation over runs ----------------------------------------------

def test_reputation_falls_over_five_bad_runs_and_a_small_later_batch_fails(tmp_path):
    bad = "crowd_12"
    cfg = config(tmp_path)
    reputations = []
    for run in range(5):
        frame, _ = sources_table(n=1500, seed=20 + run, bad=(bad,), flip=0.4)
        outcome = run_validation(frame, cfg)
        assert offenders(outcome, FLAGGED) == [bad]
        assert offenders(outcome, REPUTATION) in ([], [bad])  # never an honest source
        with ledger_mod.Ledger(cfg["expectations"]["sources"]["ledger"]) as store:
            history = store.history()
        assert sum(h.runs for h in history.values()) == 12 * (run + 1) - 0  # every source, every run
        h = history[bad]
        reputations.append(ledger_mod.reputation(h.rows, h.bad_rows).reputation)
        honest = [ledger_mod.reputation(x.rows, x.bad_rows).reputation for s, x in history.items()
                  if s != bad and x.rows >= 100]
        assert min(honest) >= 0.8
    assert reputations[-1] < 0.8 < reputations[0] + 0.2
    assert history[bad].rows >= 100

    later, _ = sources_table(n=1500, seed=40)  # clean labels everywhere...
    keep = (later["source"] != bad) | (later.groupby("source").cumcount() < 8)
    later = later[keep].reset_index(drop=True)  # ...and only 8 rows from the bad source
    outcome = run_validation(later, cfg)
    assert outcome.success is False
    assert outcome_of(outcome, FLAGGED).success is True  # 8 rows: not judged in the batch
    assert offenders(outcome, REPUTATION) == [bad]
    detail = outcome_of(outcome, REPUTATION).details["offending_sources"][0]
    assert detail["reason"] == "low_reputation" and detail["reputation"] < 0.8 and detail["rows"] == 8
    with ledger_mod.Ledger(cfg["expectations"]["sources"]["ledger"]) as store:
        last = store.records(bad)[-1]
    assert last["verdict"] == "low_reputation" and last["rows"] == 8


def test_cli_validate_names_sources_and_records_the_ledger(tmp_path, cli):
    frame, _ = sources_table(n=1500, seed=9, bad=BAD)
    data = tmp_path / "batch.csv"
    frame.to_csv(data, index=False)
    cfg = tmp_path / "cfg.yml"
    cfg.write_text("expectations:\n  label_consistency:\n    method: knn\n")
    run = cli("validate", data, "--label", "label", "--id-column", "row_id", "--source-column", "source",
              "--config", cfg, "--format", "json", cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    summary = json.loads(run.stdout)
    assert sorted(summary["signals"]["sources"]["summary"]["suspicious_sources"]) == sorted(BAD)
    shown = CliRunner().invoke(main, ["reputation", "show", "--config", str(cfg), "--ledger",
                                      str(tmp_path / ".poison" / "reputation.db")])
    assert shown.exit_code == 0, shown.output
    lines = {line.split()[0]: line for line in shown.output.splitlines()[3:]}
    assert set(lines) == set(frame["source"].unique())
    assert all("suspicious" in lines[s] for s in BAD) and "suspicious" not in lines["vendor_a"]
    assert (tmp_path / ".poison" / "reputation.db").is_file()  # $POISON_EXPECTATIONS_LEDGER (set by `cli`)


def test_each_source_expectation_renders_its_limits():
    kwargs = dict(source_column="vendor")
    cases = [
        (ExpectSourceFlaggedRatesToNotExceedRest(**kwargs, alpha=0.02, min_excess=0.2),
         {"alpha": 0.02, "min_excess": 0.2}),
        (ExpectSourceReputationsToBeAtLeast(**kwargs, min_reputation=0.9, new_source_policy="cap", prior_good=29.0),
         {"min_reputation": 0.9, "new_source_policy": "cap", "prior_good": 29.0}),
        (ExpectSourcesToBeAllowed(**kwargs, denylist=["bad_*"]), {"denylist": ["bad_*"]}),
    ]
    for expectation, expected in cases:
        (block,) = type(expectation)._prescriptive_renderer(configuration=expectation.configuration)
        template = block.to_json_dict()["string_template"]
        assert "$source_column" in template["template"] and template["params"]["source_column"] == "vendor"
        for key, value in expected.items():
            assert f"${key}" in template["template"] and template["params"][key] == value
    with pytest.raises(Exception, match="new_source_policy"):
        ExpectSourceReputationsToBeAtLeast(**kwargs, new_source_policy="sometimes")


def test_record_false_writes_no_ledger(tmp_path):
    frame, _ = sources_table(n=800, seed=11)
    outcome = run_validation(frame, config(tmp_path, record=False))
    assert outcome.results["sources"].summary["n_sources"] == 12
    assert not (tmp_path / "ledger.db").exists()


def test_every_signal_means_every_family_the_validation_requests_in_any_metric_order():
    """signals ["*"] in a hand-built suite: the families this validation requests of the batch (noted
    while GX builds the metric graph) are computed first, so the sources result does not depend on
    which metrics GX happened to resolve before it (a flood's source was named in some runs only)."""
    from types import SimpleNamespace

    from poison_expectations.gx.metrics.base import SHARED_KEYS
    from poison_expectations.gx.metrics.requests import note
    from poison_expectations.gx.metrics.sources import SourceStatisticsMetric, metric_classes

    class Engine:  # a stand-in execution engine: only its identity keys the requests
        pass

    frame = make_tabular(600, n_classes=2, random_state=3)
    analysis = build_analysis(frame, Roles(label_column="label", id_column="row_id", source_column="source"),
                              Options())
    shared = {key: None for key in SHARED_KEYS} | {"label_column": "label", "id_column": "row_id",
                                                   "source_column": "source"}
    domain = {"batch_id": "batch"}
    engine = Engine()
    for number, name in enumerate(("outlier", "near_duplicate")):
        note(engine, metric_classes()[name], SimpleNamespace(id=f"m{number}", metric_value_kwargs=dict(shared)),
             SimpleNamespace(metric_domain_kwargs=domain, metric_value_kwargs=shared))
    result = SourceStatisticsMetric._pandas(SourceStatisticsMetric, engine, domain,  # as GX calls it
                                            shared | {"signals": ["*"]}, {"poison.analysis": analysis}, None)
    assert {"outlier", "near_duplicate"} <= set(result.summary["signals"])
    assert {r.signal for r in analysis.results()} >= {"outlier", "near_duplicate", "sources"}
