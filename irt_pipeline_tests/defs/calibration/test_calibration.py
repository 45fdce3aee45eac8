"""The brief's 14 route tests (section 10, test_irt_routes.py), translated to this design.

POST /api/irt/calibrate  = run `calibration_job` for one item-bank partition (as the CLI and the
                           sensors launch it); the "response" is the audit row, the parameter
                           rows and the assets' values.
GET /api/irt/parameters  = storage.latest_parameters (through the IrtDatabase resource).
Status codes map to the brief's error codes in the failed step's message and the audit row.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from irt_pipeline import storage
from irt_pipeline.defs.calibration.values import EligibleItems, FitStatistics, ItemParameters
from irt_pipeline.defs.resources import IrtDatabase
from irt_pipeline_tests.defs.conftest import (
    failure_text,
    load_standard_bank,
    materialized_keys,
    parameter_rows,
    run_job,
    runs,
)
from irt_pipeline_tests.brief_fixtures import (
    CUSTOM_CALIBRATION_REQUEST,
    INSUFFICIENT_ITEM,
    VALID_CALIBRATION_REQUEST,
    item_uuid,
)

# Issue 10: the SE method and the flag thresholds are kept in every run's config snapshot.
DEFAULT_QUALITY_CONFIG = {"se_method": "block", "flags": {
    "mnsq_lower": 0.7, "mnsq_upper": 1.3, "miskey_item_rest": -0.05, "low_discrimination_item_rest": 0.1,
    "misfit_fdr": 0.01}}

pytestmark = pytest.mark.db

ALL_ASSETS = {"response_matrix", "eligible_items", "item_parameters", "scale_linking", "fit_statistics",
              "student_abilities", "supabase_writes"}


@pytest.fixture
def bank(database_url):
    return load_standard_bank(database_url)


@pytest.fixture
def calibrated(database_url, instance, calibration_job, bank):
    """One successful run of the standard bank with the brief's VALID_CALIBRATION_REQUEST."""
    result = run_job(calibration_job, instance, database_url, bank.name, VALID_CALIBRATION_REQUEST)
    assert result.success, failure_text(result)
    return result


@pytest.fixture(scope="module")
def shared(module_database_url, module_instance, calibration_job):
    """The same, once per module, for the tests that only read: (database url, bank, result)."""
    bank = load_standard_bank(module_database_url)
    result = run_job(calibration_job, module_instance, module_database_url, bank.name, VALID_CALIBRATION_REQUEST)
    assert result.success, failure_text(result)
    return module_database_url, bank, result


# -- describe POST /api/irt/calibrate ----------------------------------------------------------


def test_returns_calibrated_parameters_for_eligible_items(shared):
    database_url, bank, calibrated = shared
    assert materialized_keys(calibrated) == ALL_ASSETS
    stats = calibrated.output_for_node("fit_statistics")
    assert isinstance(stats, FitStatistics)
    assert set(stats.table["item_id"]) == bank.eligible_ids
    for row in stats.table.itertuples():
        assert 0.2 <= row.a <= 3.0 and 0.0 <= row.c <= 0.35 and math.isfinite(row.b)
        at_bound = "at_bound" in row.flag_reasons
        ses = np.array([row.a_se, row.b_se, row.c_se])
        assert (ses[np.isfinite(ses)] > 0).all() and (np.isnan(ses).any() == at_bound)  # NULL only at a bound
        assert row.response_count == bank.n_students


def test_returns_correct_calibration_run_id(shared):
    database_url, bank, calibrated = shared
    (run,) = runs(database_url, bank.name)
    run_id = str(run["id"])
    assert run["dagster_run_id"] == calibrated.run_id
    assert calibrated.output_for_node("item_parameters").calibration_run_id == run_id
    writes = [e for e in calibrated.get_asset_materialization_events()
              if e.asset_key.to_user_string() == "supabase_writes"]
    assert writes[0].materialization.metadata["calibration_run_id"].value == run_id
    assert {str(r["calibration_run_id"]) for r in parameter_rows(database_url)} == {run_id}


def test_skips_items_below_min_responses_with_reason(shared):
    database_url, bank, calibrated = shared
    eligible = calibrated.output_for_node("eligible_items")
    assert isinstance(eligible, EligibleItems)
    skipped = {s.item_id: (s.reason, s.response_count) for s in eligible.skipped}
    low = item_uuid(INSUFFICIENT_ITEM["item_id"])
    assert skipped[low] == ("insufficient_responses", INSUFFICIENT_ITEM["response_count"])
    assert skipped[item_uuid("item-unanswered-001")] == ("insufficient_responses", 0)
    assert skipped[item_uuid("item-easy-001")] == ("no_variance", bank.n_students)
    assert len(skipped) == 3
    (run,) = runs(database_url, bank.name)
    assert run["items_skipped"] == 3
    assert low not in {str(r["item_id"]) for r in parameter_rows(database_url)}


def test_flags_items_with_mnsq_outside_range(shared):
    database_url, bank, calibrated = shared
    rows = parameter_rows(database_url)
    by_item = {str(r["item_id"]): r for r in rows}
    assert by_item[item_uuid(bank.misfit)]["is_flagged"] is True
    for r in rows:
        outside = not (0.7 <= r["infit_mnsq"] <= 1.3 and 0.7 <= r["outfit_mnsq"] <= 1.3)
        assert r["is_flagged"] is bool(r["flag_reasons"])
        assert outside == bool({"infit", "outfit"} & set(r["flag_reasons"]))
    (run,) = runs(database_url, bank.name)
    assert run["items_flagged"] == sum(r["is_flagged"] for r in rows) >= 1


def test_stores_parameters_in_irt_item_parameters(shared):
    database_url, bank, calibrated = shared
    rows = parameter_rows(database_url)
    assert len(rows) == len(bank.eligible)
    stats = calibrated.output_for_node("fit_statistics")
    table = stats.table.set_index("item_id")
    for r in rows:
        expected = table.loc[str(r["item_id"])]
        for col in ("a", "b", "c", "a_se", "b_se", "c_se", "infit_mnsq", "outfit_mnsq", "item_rest_corr", "q1_p_value"):
            if math.isnan(float(expected[col])):
                assert r[col] is None, col  # NULL: e.g. no SE at a bound
            else:
                assert r[col] == pytest.approx(float(expected[col]))
        assert r["flag_reasons"] == list(expected["flag_reasons"])
        assert r["response_count"] == int(expected["response_count"])
        assert r["calibrated_at"] is not None


def test_stores_calibration_run_in_irt_calibration_runs(shared):
    database_url, bank, calibrated = shared
    (run,) = runs(database_url, bank.name)
    assert run["status"] == "completed"
    assert run["completed_at"] is not None and run["error"] is None
    assert run["items_calibrated"] == len(bank.eligible)
    assert run["convergence_achieved"] is True
    assert 1 <= run["iterations_used"] <= 100
    assert run["elapsed_seconds"] > 0
    assert run["config"] == {**VALID_CALIBRATION_REQUEST, "model": "3pl", "linking": "stocking_lord",
                             **DEFAULT_QUALITY_CONFIG}


@pytest.mark.parametrize(
    ("field", "value"), [("min_responses", -1), ("convergence_threshold", 1.0)], ids=["negative-min", "threshold-1"]
)
def test_invalid_config_fails_before_any_write(database_url, instance, calibration_job, bank, field, value):
    """returns 400 for negative min_responses / for convergence_threshold >= 1"""
    result = run_job(calibration_job, instance, database_url, bank.name, {field: value})
    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert failure.step_key == "response_matrix"  # the first step: nothing read or computed
    text = failure_text(result)
    assert field in text and "ValidationError" in text
    assert materialized_keys(result) == set()
    assert runs(database_url) == [] and parameter_rows(database_url) == []


def test_no_item_meets_min_responses_fails_with_insufficient_data(database_url, instance, calibration_job, bank):
    result = run_job(calibration_job, instance, database_url, bank.name, {"min_responses": 100_000})
    assert not result.success
    assert "INSUFFICIENT_DATA" in failure_text(result)
    assert [e.step_key for e in result.get_step_failure_events()] == ["eligible_items"]
    (run,) = runs(database_url, bank.name)
    assert run["status"] == "failed" and run["error"].startswith("INSUFFICIENT_DATA: ")
    assert run["dagster_run_id"] == result.run_id and run["completed_at"] is not None
    assert parameter_rows(database_url) == []


def test_calibration_in_progress_fails_and_writes_nothing(database_url, instance, calibration_job, bank):
    with storage.connect(database_url) as conn:  # open: its session holds the other run's lease
        other = storage.start_run(conn, item_bank=bank.name, config={"model": "3pl"}, dagster_run_id="another-run")
        result = run_job(calibration_job, instance, database_url, bank.name)
    assert not result.success
    assert "CALIBRATION_IN_PROGRESS" in failure_text(result)
    assert [e.step_key for e in result.get_step_failure_events()] == ["item_parameters"]
    assert {"fit_statistics", "supabase_writes"}.isdisjoint(materialized_keys(result))
    (row,) = runs(database_url, bank.name)
    assert str(row["id"]) == other and row["status"] == "running"  # the other run is untouched
    assert parameter_rows(database_url) == []


def test_uses_default_config_when_none_given(database_url, instance, calibration_job, bank):
    result = run_job(calibration_job, instance, database_url, bank.name)
    assert result.success, failure_text(result)
    (run,) = runs(database_url, bank.name)
    assert run["config"] == {"min_responses": 100, "max_iterations": 100, "convergence_threshold": 0.001,
                             "model": "3pl", "linking": "stocking_lord",
                             **DEFAULT_QUALITY_CONFIG}
    assert run["status"] == "completed"


def test_filters_to_specific_item_ids(database_url, instance, calibration_job, bank):
    requested = [item_uuid(i) for i in CUSTOM_CALIBRATION_REQUEST["item_ids"]]
    unknown = item_uuid("item-from-another-bank")
    config = {**CUSTOM_CALIBRATION_REQUEST, "item_ids": requested + [unknown]}
    result = run_job(calibration_job, instance, database_url, bank.name, config)
    assert result.success, failure_text(result)
    assert {str(r["item_id"]) for r in parameter_rows(database_url)} == set(requested)
    eligible = result.output_for_node("eligible_items")
    assert [(s.item_id, s.reason, s.response_count) for s in eligible.skipped] == [(unknown, "not_in_bank", 0)]
    (run,) = runs(database_url, bank.name)
    assert run["items_calibrated"] == 2 and run["items_skipped"] == 1
    assert run["config"]["item_ids"] == requested + [unknown]
    assert run["config"]["max_iterations"] == 200 and run["config"]["convergence_threshold"] == 0.0001
    assert result.output_for_node("item_parameters").settings.min_responses == 50


# -- describe GET /api/irt/parameters/:item_id ------------------------------------------------


def test_latest_parameters_of_a_calibrated_item(database_url, instance, calibration_job, bank, calibrated):
    second = run_job(calibration_job, instance, database_url, bank.name, {"max_iterations": 5})
    assert second.success, failure_text(second)
    latest_run = second.output_for_node("item_parameters").calibration_run_id
    item = item_uuid("item-001")
    params = IrtDatabase(url=database_url).latest_parameters(item)
    assert params is not None
    assert params.item_id == item and params.calibration_run_id == latest_run
    (row,) = [r for r in parameter_rows(database_url, latest_run) if str(r["item_id"]) == item]
    assert params.a == pytest.approx(row["a"]) and params.is_flagged == row["is_flagged"]
    assert params.model_dump(mode="json")["calibrated_at"].endswith("Z")


def test_latest_parameters_of_an_uncalibrated_item_is_not_found(shared):
    database_url, bank, calibrated = shared
    db = IrtDatabase(url=database_url)
    assert db.latest_parameters(item_uuid(INSUFFICIENT_ITEM["item_id"])) is None   # skipped item
    assert db.latest_parameters(item_uuid("never-existed")) is None
    assert db.latest_parameters(item_uuid("item-001")) is not None


def test_parameters_come_only_from_completed_runs(database_url, instance, calibration_job, bank, calibrated,
                                                  monkeypatch):
    """A later failed calibration leaves the previous parameters as the latest."""
    first_run = calibrated.output_for_node("item_parameters").calibration_run_id

    def boom(*args, **kwargs):
        raise ValueError("simulated engine failure")

    monkeypatch.setattr("irt_pipeline.defs.calibration.assets.item_fit", boom)
    failed = run_job(calibration_job, instance, database_url, bank.name)
    assert not failed.success
    params = IrtDatabase(url=database_url).latest_parameters(item_uuid("item-002"))
    assert params is not None and params.calibration_run_id == first_run


def test_item_parameters_value_carries_the_engine_result(shared):
    database_url, bank, calibrated = shared
    value = calibrated.output_for_node("item_parameters")
    assert isinstance(value, ItemParameters)
    assert value.result.n_items == len(bank.eligible)
    assert list(value.item_ids) == sorted(bank.eligible_ids)
