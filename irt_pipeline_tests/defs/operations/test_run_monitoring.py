"""A run stopped by run monitoring for exceeding `dagster/max_runtime` leaves its audit row failed.

What the daemon does (dagster/_daemon/monitoring/run_monitoring.py, `check_run_timeout`): for a
STARTED run older than its `dagster/max_runtime` tag it reports RUN_CANCELING, asks the run
launcher to terminate the worker and reports RUN_FAILURE ("Exceeded maximum runtime of N
seconds."), forcing FAILURE if the run is still not finished. The run-failure sensor then closes
the audit row. Here the daemon's own function runs on a STARTED run of calibration_job whose
audit row is `running`, with the tag shortened to one second; the launcher's terminate is
stubbed to succeed (the DefaultRunLauncher would signal the worker over gRPC).
"""

from __future__ import annotations

import logging
import time

import dagster as dg
import pytest
from dagster._daemon.monitoring.run_monitoring import check_run_timeout

from irt_pipeline.defs.calibration.jobs import MAX_RUNTIME_SECONDS, MAX_RUNTIME_TAG
from irt_pipeline.defs.operations.run_status_sensors import calibration_run_failure_sensor
from irt_pipeline.defs.resources import IrtDatabase
from irt_pipeline_tests.defs.conftest import add_bank_partition, run_failure_context, runs


def test_the_job_carries_its_max_runtime(calibration_job):
    assert calibration_job.tags[MAX_RUNTIME_TAG] == str(MAX_RUNTIME_SECONDS) == "3600"


@pytest.mark.db
def test_a_run_stopped_by_run_monitoring_leaves_its_audit_row_failed(
    database_url, instance, calibration_job, monkeypatch
):
    bank = "bank-slow"
    add_bank_partition(instance, bank)
    run = instance.create_run_for_job(
        job_def=calibration_job,
        tags={**calibration_job.tags, "dagster/partition": bank, MAX_RUNTIME_TAG: "1"},
    )
    instance.report_dagster_event(
        dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name=run.job_name), run_id=run.run_id
    )
    # item_parameters of that run has started the audit row and is still calibrating
    db = IrtDatabase(url=database_url)
    audit_id = db.start_run(item_bank=bank, config={"model": "3pl"}, dagster_run_id=run.run_id)
    assert runs(database_url, bank)[0]["status"] == "running"

    time.sleep(1.2)  # past the run's max runtime
    monkeypatch.setattr(instance.run_launcher, "terminate", lambda run_id: True)
    check_run_timeout(instance, instance.get_run_record_by_id(run.run_id), logging.getLogger("monitor"), 0.0)

    stopped = instance.get_run_by_id(run.run_id)
    assert stopped.status == dg.DagsterRunStatus.FAILURE
    (canceling,) = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_CANCELING).records
    assert "exceeding maximum runtime of 1 seconds" in canceling.event_log_entry.dagster_event.message
    calibration_run_failure_sensor(run_failure_context(instance, stopped, database_url))

    (row,) = runs(database_url, bank)
    assert str(row["id"]) == audit_id
    assert row["status"] == "failed" and row["completed_at"] is not None
    assert row["error"] == "CALIBRATION_FAILED: Exceeded maximum runtime of 1 seconds."
    # the bank is free again: the next calibration can start (and is closed again here)
    next_id = db.start_run(item_bank=bank, config={"model": "3pl"}, dagster_run_id=None)
    assert db.fail_run(next_id, "CALIBRATION_FAILED: test over")
