"""Failure bookkeeping: the job's hook, and the sensors for runs launched without the job."""

from __future__ import annotations

import dagster as dg
import pytest

from irt_pipeline import storage
from irt_pipeline.defs.calibration import assets as assets_module
from irt_pipeline.defs.calibration.assets import ASSETS, response_matrix
from irt_pipeline.defs.operations.run_status_sensors import calibration_run_canceled_sensor, calibration_run_failure_sensor
from irt_pipeline.defs.resources import RESOURCE_KEY, IrtDatabase
from irt_pipeline_tests.defs.conftest import add_bank_partition, run_failure_context, load_standard_bank, parameter_rows, run_job, runs

pytestmark = pytest.mark.db


def _raise(*args, **kwargs):
    raise ValueError("simulated failure")


def test_hook_marks_the_run_failed_when_a_later_step_fails(database_url, instance, calibration_job, monkeypatch):
    bank = load_standard_bank(database_url)
    monkeypatch.setattr(assets_module, "item_fit", _raise)
    result = run_job(calibration_job, instance, database_url, bank.name)
    assert not result.success
    (run,) = runs(database_url, bank.name)
    assert run["status"] == "failed"
    assert run["error"] == "CALIBRATION_FAILED: fit_statistics: ValueError: simulated failure"
    assert parameter_rows(database_url) == []


def _adhoc_failed_run(database_url: str, instance: dg.DagsterInstance, bank: str) -> dg.DagsterRun:
    """An asset-graph style launch (no calibration_job, so no hook) whose item_parameters fails."""
    add_bank_partition(instance, bank)
    result = dg.materialize(
        ASSETS, partition_key=bank, instance=instance,
        resources={RESOURCE_KEY: IrtDatabase(url=database_url)}, raise_on_error=False,
    )
    assert not result.success
    return result.dagster_run


def test_failure_sensor_closes_the_row_of_a_run_without_hooks(database_url, instance, monkeypatch):
    bank = load_standard_bank(database_url)
    real_engine = assets_module.calibrate_3pl

    def engine_that_fails(*args, **kwargs):
        real_engine(*args, **kwargs)
        raise FloatingPointError("simulated divergence")

    monkeypatch.setattr(assets_module, "calibrate_3pl", engine_that_fails)
    run = _adhoc_failed_run(database_url, instance, bank.name)
    (row,) = runs(database_url, bank.name)
    assert row["status"] == "running"  # no hook ran: this is what the sensor is for

    calibration_run_failure_sensor(run_failure_context(instance, run, database_url))
    (row,) = runs(database_url, bank.name)
    assert row["status"] == "failed"
    assert row["error"].startswith("CALIBRATION_FAILED: item_parameters: ")
    assert "simulated divergence" in row["error"]


def test_canceled_sensor_closes_the_row_of_a_canceled_run(database_url, instance):
    bank = load_standard_bank(database_url)
    add_bank_partition(instance, bank.name)
    result = dg.materialize(
        [response_matrix], partition_key=bank.name, instance=instance,
        resources={RESOURCE_KEY: IrtDatabase(url=database_url)},
    )
    # as if that run had been stopped from the UI while its calibration was running
    with IrtDatabase(url=database_url).connection() as conn:
        storage.start_run(conn, item_bank=bank.name, config={"model": "3pl"}, dagster_run_id=result.run_id)
    event = instance.report_run_canceled(result.dagster_run, message="canceled from the UI")
    context = dg.build_run_status_sensor_context(
        sensor_name=calibration_run_canceled_sensor.name,
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={RESOURCE_KEY: IrtDatabase(url=database_url)},
    )
    calibration_run_canceled_sensor(context)
    (row,) = runs(database_url, bank.name)
    assert row["status"] == "failed" and "canceled" in row["error"]
    assert row["error"].startswith("CALIBRATION_FAILED: ")
    # a new calibration of the bank is possible again
    with IrtDatabase(url=database_url).connection() as conn:
        assert storage.start_run(conn, item_bank=bank.name, config={"model": "3pl"}, dagster_run_id=None)
