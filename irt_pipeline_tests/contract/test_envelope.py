"""The brief's JSON contract end to end: models round-trip database rows, and the CLI prints the
envelope for a success and for each error code."""

from __future__ import annotations

import io
import json

import pytest

from irt_pipeline import storage
from irt_pipeline.defs.calibration import assets as assets_module
from irt_pipeline.defs.operations.launch import calibrate_command
from irt_pipeline.defs.resources import IrtDatabase
from irt_pipeline.models import (
    Envelope,
    IrtCalibrationConfig,
    IrtCalibrationResponse,
    IrtCalibrationRun,
    IrtItemParameters,
    IrtSkippedItem,
    IrtStudentAbility,
)
from irt_pipeline.storage.commands import ability_command, parameters_command
from irt_pipeline_tests.defs.conftest import load_standard_bank, runs

pytestmark = pytest.mark.db


def _calibrate_json(database_url, instance, bank, **overrides):
    out, err = io.StringIO(), io.StringIO()
    kwargs = dict(min_responses=None, max_iterations=None, convergence_threshold=None, item_ids=None)
    kwargs.update(overrides)
    code = calibrate_command(bank=bank, json_output=True, database=IrtDatabase(url=database_url),
                             instance=instance, out=out, err=err, **kwargs)
    return code, json.loads(out.getvalue())


def _assert_error(envelope: dict, code: str, *fragments: str) -> None:
    assert envelope["data"] is None
    assert envelope["error"]["code"] == code
    for fragment in fragments:
        assert fragment in envelope["error"]["message"]
    assert not envelope["error"]["message"].startswith(code)   # the code is not repeated


def test_success_envelope_is_the_calibration_response_and_round_trips(database_url, instance):
    bank = load_standard_bank(database_url)
    code, envelope = _calibrate_json(database_url, instance, bank.name)
    assert code == 0 and envelope["error"] is None
    response = IrtCalibrationResponse.model_validate(envelope["data"])
    (row,) = runs(database_url, bank.name)
    assert response.calibration_run_id == str(row["id"])
    assert response.items_calibrated == len(response.parameters) == len(bank.eligible) == row["items_calibrated"]
    assert response.items_skipped == len(response.skipped_items) == 3
    assert {s.reason for s in response.skipped_items} == {"insufficient_responses", "no_variance"}
    assert response.items_flagged == sum(p.is_flagged for p in response.parameters)
    assert Envelope[IrtCalibrationResponse].model_validate_json(json.dumps(envelope)).data == response


def test_models_round_trip_rows_read_from_the_database(database_url, instance):
    bank = load_standard_bank(database_url)
    code, envelope = _calibrate_json(database_url, instance, bank.name)
    assert code == 0
    (row,) = runs(database_url, bank.name)
    run = IrtCalibrationRun.model_validate({**row, "id": str(row["id"])})
    assert run.status == "completed" and run.config == IrtCalibrationConfig(
        min_responses=100, max_iterations=100, convergence_threshold=0.001)
    assert IrtCalibrationRun.model_validate_json(run.model_dump_json()) == run
    with storage.connect(database_url) as conn:
        rows = storage.run_parameters(conn, run.id)
        latest = storage.latest_parameters(conn, rows[0].item_id)
    assert latest == rows[0]
    for parameters in rows:
        assert IrtItemParameters.model_validate_json(parameters.model_dump_json()) == parameters
    skipped = [IrtSkippedItem.model_validate(s) for s in envelope["data"]["skipped_items"]]
    assert all(IrtSkippedItem.model_validate_json(s.model_dump_json()) == s for s in skipped)


def test_validation_error_envelope_names_the_field(database_url, instance):
    bank = load_standard_bank(database_url)
    code, envelope = _calibrate_json(database_url, instance, bank.name, min_responses=-5)
    assert code == 2
    _assert_error(envelope, "VALIDATION_ERROR", "min_responses")
    assert runs(database_url, bank.name) == []


def test_insufficient_data_envelope(database_url, instance):
    bank = load_standard_bank(database_url)
    code, envelope = _calibrate_json(database_url, instance, bank.name, min_responses=10**6)
    assert code == 3
    _assert_error(envelope, "INSUFFICIENT_DATA", bank.name)


def test_calibration_in_progress_envelope(database_url, instance):
    bank = load_standard_bank(database_url)
    with storage.connect(database_url) as conn:  # open: its session holds the other run's lease
        storage.start_run(conn, item_bank=bank.name, config={"model": "3pl"}, dagster_run_id="elsewhere")
        code, envelope = _calibrate_json(database_url, instance, bank.name)
    assert code == 4
    _assert_error(envelope, "CALIBRATION_IN_PROGRESS", bank.name)


def test_calibration_failed_envelope(database_url, instance, monkeypatch):
    bank = load_standard_bank(database_url)

    def broken_engine(*args, **kwargs):
        raise RuntimeError("the linear algebra library is gone")

    monkeypatch.setattr(assets_module, "calibrate_3pl", broken_engine)
    code, envelope = _calibrate_json(database_url, instance, bank.name)
    assert code == 1
    _assert_error(envelope, "CALIBRATION_FAILED", "the linear algebra library is gone")


def test_item_not_found_envelope(database_url, monkeypatch, capsys):
    monkeypatch.setenv("IRT_DATABASE_URL", database_url)
    assert parameters_command("00000000-0000-0000-0000-000000000001") == 1
    _assert_error(json.loads(capsys.readouterr().out), "ITEM_NOT_FOUND", "00000000-0000-0000-0000-000000000001")


def test_student_not_found_envelope(database_url, monkeypatch, capsys):
    monkeypatch.setenv("IRT_DATABASE_URL", database_url)
    assert ability_command("00000000-0000-0000-0000-000000000002", bank="demo") == 1
    _assert_error(json.loads(capsys.readouterr().out), "STUDENT_NOT_FOUND",
                  "00000000-0000-0000-0000-000000000002", "'demo'")


def test_bank_scale_run_fields_and_abilities_round_trip_database_rows(database_url):
    """The additions of issue 9 (run columns of migrations 0005/0006, irt_student_abilities)
    validate from the rows as stored and survive their own JSON."""
    student = "00000000-0000-4000-8000-000000000003"
    with storage.connect(database_url) as conn:
        first = storage.start_run(conn, item_bank="scale", config={"min_responses": 100, "max_iterations": 100,
                                                                   "convergence_threshold": 0.001, "model": "3pl"},
                                  dagster_run_id=None)
        storage.fail_run(conn, first, "CALIBRATION_FAILED: test")   # a run from before linking: NULLs
        run_id = storage.start_run(conn, item_bank="scale", config={"min_responses": 100, "max_iterations": 100,
                                                                    "convergence_threshold": 0.001, "model": "3pl"},
                                   dagster_run_id=None)
        with conn.transaction():
            storage.write_abilities(conn, run_id, "scale", [student], [0.42], [0.31], [25])
            conn.execute(
                "UPDATE irt_calibration_runs SET status = 'completed', completed_at = now(),"
                " linking_method = 'stocking_lord', scale_run_id = %s, theta_mean = 0.7, theta_sd = 1.05,"
                " anchor_items = 97, drifted_items = 3, data_watermark = 1204, data_read_at = now()"
                " WHERE id = %s", (first, run_id))
        old, new = storage.get_run(conn, first), storage.get_run(conn, run_id)
        ability = storage.latest_ability(conn, student, "scale")
        (row_ability,) = storage.run_abilities(conn, run_id)

    unlinked = IrtCalibrationRun.model_validate(old)
    assert (unlinked.linking_method, unlinked.scale_run_id, unlinked.theta_mean, unlinked.theta_sd) == (None,) * 4
    assert (unlinked.anchor_items, unlinked.drifted_items, unlinked.data_watermark) == (0, 0, None)
    linked = IrtCalibrationRun.model_validate(new)
    assert (linked.linking_method, linked.scale_run_id, linked.theta_mean, linked.theta_sd) == (
        "stocking_lord", first, 0.7, 1.05)
    assert (linked.anchor_items, linked.drifted_items, linked.data_watermark) == (97, 3, 1204)
    assert linked.data_read_at == new["data_read_at"] and linked.status == "completed"
    dumped = json.loads(linked.model_dump_json())
    assert set(dumped) == set(IrtCalibrationRun.model_fields) and dumped["scale_run_id"] == first
    for run in (unlinked, linked):
        assert IrtCalibrationRun.model_validate_json(run.model_dump_json()) == run

    assert ability == row_ability
    assert (ability.student_id, ability.calibration_run_id, ability.theta, ability.response_count) == (
        student, run_id, 0.42, 25)
    assert IrtStudentAbility.model_validate_json(ability.model_dump_json()) == ability
    envelope = Envelope.ok(ability).model_dump(mode="json")
    assert envelope["error"] is None and envelope["data"]["estimated_at"].endswith("Z")
    assert Envelope[IrtStudentAbility].model_validate(envelope).data == ability
