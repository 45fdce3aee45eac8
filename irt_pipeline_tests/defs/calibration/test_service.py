"""The brief's 8 service tests (section 10, test_irt_calibration.py) on the asset chain."""

from __future__ import annotations

import time

import dagster as dg
import numpy as np
import pytest

from irt_pipeline.defs.calibration import assets as assets_module
from irt_pipeline.defs.calibration.assets import ASSETS, response_matrix
from irt_pipeline.defs.calibration.checks import CHECK_ITEM_QUALITY
from irt_pipeline.defs.calibration.values import ResponseMatrix
from irt_pipeline.defs.resources import RESOURCE_KEY, IrtDatabase
from irt_pipeline_tests.defs.conftest import (
    add_bank_partition,
    failure_text,
    insert_attempts,
    load_matrix,
    load_standard_bank,
    materialized_keys,
    parameter_rows,
    query,
    run_job,
    runs,
)
from irt_pipeline_tests.brief_fixtures import (
    SMALL_ITEM_IDS,
    SMALL_RESPONSE_MATRIX,
    generate_large_response_matrix,
    item_uuid,
    student_uuid,
)

pytestmark = pytest.mark.db


def test_builds_response_matrix_from_student_attempts(database_url, instance):
    """SMALL_RESPONSE_MATRIX in the database; a later retry of one attempt is ignored."""
    students = [f"student-{i:03d}" for i in range(1, 11)]
    load_matrix(database_url, "small", SMALL_RESPONSE_MATRIX, SMALL_ITEM_IDS, students,
                attempted_at="2026-01-05T10:00:00Z")
    # student-002 retries item-002 later and gets it right: the first attempt (wrong) counts
    insert_attempts(database_url, [(student_uuid("student-002"), item_uuid("item-002"), True,
                                    "2026-01-06T10:00:00Z")])
    add_bank_partition(instance, "small")
    result = dg.materialize(
        [response_matrix], partition_key="small", instance=instance,
        resources={RESOURCE_KEY: IrtDatabase(url=database_url)},
    )
    rm = result.output_for_node("response_matrix")
    assert isinstance(rm, ResponseMatrix)
    assert rm.matrix.shape == (10, 5) and rm.n_responses == 50
    dense = rm.matrix.toarray()
    rows = [rm.student_ids.index(student_uuid(s)) for s in students]
    cols = [rm.item_ids.index(item_uuid(i)) for i in SMALL_ITEM_IDS]
    expected = np.where(SMALL_RESPONSE_MATRIX == 1, 1.0, -1.0)
    assert np.array_equal(dense[np.ix_(rows, cols)], expected)
    (event,) = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    assert meta["students"].value == 10 and meta["items"].value == 5 and meta["responses"].value == 50
    assert meta["dagster/row_count"].value == 50 and meta["density"].value == pytest.approx(1.0)


def test_excludes_items_below_min_responses_from_matrix(database_url, instance, calibration_job):
    bank = load_standard_bank(database_url)
    result = run_job(calibration_job, instance, database_url, bank.name, {"min_responses": 100})
    assert result.success, failure_text(result)
    eligible = result.output_for_node("eligible_items")
    assert set(eligible.item_ids) == bank.eligible_ids
    assert eligible.matrix.shape == (bank.n_students, len(bank.eligible))
    assert eligible.response_counts.min() >= 100
    low = item_uuid("item-low-001")
    assert low not in eligible.item_ids
    assert low in result.output_for_node("response_matrix").item_ids


def test_computes_infit_and_outfit_per_item(database_url, instance, calibration_job):
    bank = load_standard_bank(database_url)
    result = run_job(calibration_job, instance, database_url, bank.name)
    assert result.success, failure_text(result)
    table = result.output_for_node("fit_statistics").table
    assert len(table) == len(bank.eligible)
    assert np.isfinite(table["infit_mnsq"]).all() and np.isfinite(table["outfit_mnsq"]).all()
    assert (table["infit_mnsq"] > 0).all() and (table["outfit_mnsq"] > 0).all()
    good = table[table["item_id"] != item_uuid(bank.misfit)]
    assert 0.7 < float(np.median(good["infit_mnsq"])) < 1.3  # the model fits the simulated items


def test_flags_misfit_items_and_the_warn_check_lists_them(database_url, instance, calibration_job):
    bank = load_standard_bank(database_url)
    result = run_job(calibration_job, instance, database_url, bank.name)
    assert result.success, failure_text(result)  # a failing WARN check never fails the run
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == CHECK_ITEM_QUALITY]
    assert evaluation.passed is False
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    flagged = {str(r["item_id"]) for r in parameter_rows(database_url) if r["is_flagged"]}
    assert item_uuid(bank.misfit) in flagged
    listed = {i for ids in evaluation.metadata["items_by_reason"].value.values() for i in ids}
    assert listed == flagged
    assert evaluation.metadata["flagged_count"].value == len(flagged)
    assert "supabase_writes" in materialized_keys(result)


def test_writes_all_parameters_in_a_single_transaction(database_url, instance, calibration_job):
    bank = load_standard_bank(database_url)
    result = run_job(calibration_job, instance, database_url, bank.name)
    assert result.success, failure_text(result)
    (run,) = runs(database_url, bank.name)
    stamps = query(database_url, "SELECT DISTINCT calibrated_at FROM irt_item_parameters")
    # now() is the transaction's start: one transaction gives one timestamp for every row,
    # the same as the run row's completion
    assert [s["calibrated_at"] for s in stamps] == [run["completed_at"]]
    assert len(parameter_rows(database_url, str(run["id"]))) == run["items_calibrated"] == len(bank.eligible)


def test_run_status_goes_from_running_to_completed(database_url, instance, calibration_job, monkeypatch):
    """The row is 'running' while the calibration is under way, 'completed' once published."""
    bank = load_standard_bank(database_url)
    seen: list[str] = []
    real_item_fit = assets_module.item_fit

    def observing_item_fit(responses, result):
        seen.extend(r["status"] for r in runs(database_url, bank.name))
        return real_item_fit(responses, result)

    monkeypatch.setattr(assets_module, "item_fit", observing_item_fit)
    result = run_job(calibration_job, instance, database_url, bank.name)
    assert result.success, failure_text(result)
    assert seen == ["running"]
    (run,) = runs(database_url, bank.name)
    assert run["status"] == "completed" and run["completed_at"] is not None
    assert run["items_calibrated"] == len(bank.eligible) and run["items_skipped"] == 3


def test_calibrating_without_publishing_is_refused(database_url, instance):
    """A run with item_parameters but without supabase_writes would leave a 'running' row behind."""
    bank = load_standard_bank(database_url)
    add_bank_partition(instance, bank.name)
    result = dg.materialize(
        ASSETS,
        selection=["response_matrix", "eligible_items", "item_parameters"],
        partition_key=bank.name, instance=instance,
        resources={RESOURCE_KEY: IrtDatabase(url=database_url)}, raise_on_error=False,
    )
    assert not result.success
    assert [e.step_key for e in result.get_step_failure_events()] == ["item_parameters"]
    assert "VALIDATION_ERROR: item_parameters starts a calibration run" in failure_text(result)
    assert runs(database_url) == []


def test_run_status_becomes_failed_when_the_engine_raises(database_url, instance, calibration_job, monkeypatch):
    bank = load_standard_bank(database_url)

    def broken_engine(*args, **kwargs):
        raise ValueError("responses: simulated engine failure")

    monkeypatch.setattr("irt_pipeline.defs.calibration.assets.calibrate_3pl", broken_engine)
    result = run_job(calibration_job, instance, database_url, bank.name)
    assert not result.success
    (run,) = runs(database_url, bank.name)
    assert run["status"] == "failed" and run["completed_at"] is not None
    assert run["error"] == "CALIBRATION_FAILED: item_parameters: ValueError: responses: simulated engine failure"
    assert parameter_rows(database_url) == []


def test_two_banks_on_one_instance_are_calibrated_independently(database_url, instance, calibration_job):
    """Each run reads and checks only its own partition, even once the instance knows both banks."""
    bank_a = load_standard_bank(database_url, "bank-a", seed=7)
    bank_b = load_standard_bank(database_url, "bank-b", seed=8, prefix="b-", n_students=300)
    add_bank_partition(instance, bank_a.name)
    add_bank_partition(instance, bank_b.name)
    first = run_job(calibration_job, instance, database_url, bank_a.name)
    second = run_job(calibration_job, instance, database_url, bank_b.name)
    again = run_job(calibration_job, instance, database_url, bank_a.name)
    for result in (first, second, again):
        assert result.success, failure_text(result)
    assert second.output_for_node("fit_statistics").item_bank == bank_b.name
    (run_b,) = runs(database_url, bank_b.name)
    assert {str(r["item_id"]) for r in parameter_rows(database_url, str(run_b["id"]))} == bank_b.eligible_ids
    assert [r["status"] for r in runs(database_url, bank_a.name)] == ["completed", "completed"]
    for result in (first, second, again):
        evaluations = result.get_asset_check_evaluations()
        assert len(evaluations) == 4  # em_converged, anchors_stable, parameters_within_bounds, item_quality


def test_brief_1000_items_by_500_students(database_url, instance, calibration_job):
    """The brief's performance fixture: every cell observed, 500 responses per item."""
    responses = generate_large_response_matrix()
    names = [f"large-{j:04d}" for j in range(responses.shape[1])]
    load_matrix(database_url, "large", responses, names)
    started = time.perf_counter()
    result = run_job(calibration_job, instance, database_url, "large")
    seconds = time.perf_counter() - started
    assert result.success, failure_text(result)
    (run,) = runs(database_url, "large")
    assert run["status"] == "completed"
    assert run["items_calibrated"] + run["items_skipped"] == 1000
    assert run["items_calibrated"] >= 990
    assert len(parameter_rows(database_url, str(run["id"]))) == run["items_calibrated"]
    assert seconds < 60, f"the brief's bound is 60 s; took {seconds:.1f} s"
