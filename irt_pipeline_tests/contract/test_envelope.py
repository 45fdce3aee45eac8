"""The brief's JSON contract end to end: models round-trip database rows, and the CLI prints the
envelope for a success and for each error code."""

from __future__ import annotations

import io
import json

import pytest

from irt_pipeline import storage
from irt_pipeline.defs import assets as assets_module
from irt_pipeline.defs.launch import calibrate_command
from irt_pipeline.defs.resources import IrtDatabase
from irt_pipeline.models import (
    Envelope,
    IrtCalibrationConfig,
    IrtCalibrationResponse,
    IrtCalibrationRun,
    IrtItemParameters,
    IrtSkippedItem,
)
from irt_pipeline.storage.commands import parameters_command
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
