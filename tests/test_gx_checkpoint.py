"""The expectations inside an ordinary GX checkpoint, as a GX user runs them."""

import great_expectations as gx
import pytest

import poison_expectations as pe


def _checkpoint(expectations, result_format=None):
    context = gx.get_context(mode="ephemeral")
    asset = context.data_sources.add_pandas("p").add_dataframe_asset("a")
    batch = asset.add_batch_definition_whole_dataframe("b")
    suite = context.suites.add(gx.ExpectationSuite(name="s"))
    for expectation in expectations:
        suite.add_expectation(expectation)
    validation = context.validation_definitions.add(gx.ValidationDefinition(name="v", data=batch, suite=suite))
    return context.checkpoints.add(gx.Checkpoint(
        name="c", validation_definitions=[validation],
        result_format=result_format or {"result_format": "COMPLETE"}))


def _results(checkpoint_result):
    return [r for v in checkpoint_result.run_results.values() for r in v.results]


def test_batch_expectation_passes_clean_and_fails_poisoned(separable):
    clean, _ = separable(n=1500, seed=1)
    poisoned, flipped = separable(n=1500, seed=1, flip_rate=0.15)
    checkpoint = _checkpoint([pe.ExpectLabelInconsistencyRateToBeAtMost(
        label_column="label", id_column="row_id", max_rate=0.1)])

    ok = checkpoint.run(batch_parameters={"dataframe": clean})
    assert ok.success

    bad = checkpoint.run(batch_parameters={"dataframe": poisoned})
    assert not bad.success
    (result,) = _results(bad)
    body = result.result
    assert body["observed_value"] > 0.1
    assert body["element_count"] == 1500
    assert body["unexpected_count"] == len(body["unexpected_index_list"])
    assert body["unexpected_percent"] == pytest.approx(100 * body["observed_value"])
    assert len(body["partial_unexpected_list"]) == 20
    flagged_ids = set(body["unexpected_index_list"])
    true_ids = set(poisoned.loc[flipped, "row_id"])
    assert len(flagged_ids & true_ids) / len(true_ids) >= 0.9
    assert {c["class"] for c in body["details"]["per_class"]} == {0, 1}


def test_row_level_variant_reports_ids_through_gx(separable):
    poisoned, flipped = separable(n=1200, seed=2, flip_rate=0.1)
    features = [c for c in poisoned.columns if c.startswith("f")]
    checkpoint = _checkpoint(
        [pe.ExpectRowLabelsToBeConsistent(column_list=features + ["label"], label_column="label", mostly=0.95)],
        {"result_format": "COMPLETE", "unexpected_index_column_names": ["row_id"]})
    outcome = checkpoint.run(batch_parameters={"dataframe": poisoned})
    assert not outcome.success
    (result,) = _results(outcome)
    ids = {row["row_id"] for row in result.result["unexpected_index_list"]}
    true_ids = set(poisoned.loc[flipped, "row_id"])
    assert len(ids & true_ids) / len(true_ids) >= 0.85


def test_thresholds_are_stored_explicitly():
    expectation = pe.ExpectLabelInconsistencyRateToBeAtMost(label_column="label")
    kwargs = expectation.configuration.kwargs
    assert kwargs["max_rate"] is None and kwargs["method"] == "both" and kwargs["k"] == 10  # null stored too
    assert kwargs["gate_alpha"] == 0.01 and kwargs["fdr_q"] == 0.1 and kwargs["min_effect"] == 0.005


def test_prescriptive_renderer_writes_a_sentence():
    expectation = pe.ExpectLabelInconsistencyRateToBeAtMost(label_column="label", max_rate=0.07)
    rendered = expectation._prescriptive_renderer(configuration=expectation.configuration)
    template = rendered[0].string_template
    assert "$max_rate" in template["template"] and template["params"]["max_rate"] == 0.07
