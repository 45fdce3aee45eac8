"""Run-status sensors that close the audit row of a Dagster run that did not finish.

The job's failure hook (hooks.py) already handles runs of `calibration_job`. These sensors
(daemon-driven, RUNNING by default) cover what a hook cannot see:

* runs launched from the asset graph ("Materialize"), which execute an ad-hoc asset job
  without the job's hooks;
* runs that die without a step failure (run worker killed, detected by run monitoring);
* canceled runs: a run stopped from the UI would otherwise leave a `running` row that blocks
  every later calibration of the bank (the partial unique index on running runs).

Both call `fail_runs_of_dagster_run`, which touches only rows still `running`, so running after
the hook is harmless.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations at import time
# (Config class, resource and input types) and cannot resolve postponed (string) ones.
import dagster as dg

from irt_pipeline.defs.operations.failures import message_from_error_info
from irt_pipeline.defs.resources import IrtDatabase


def run_failure_message(context: dg.RunFailureSensorContext) -> str:
    """The coded message of the first failed step, else the run's failure message."""
    for event in context.get_step_failure_events():
        error = event.step_failure_data.error if event.step_failure_data else None
        if error is not None:
            return message_from_error_info(event.step_key or "run", error)
    text = context.failure_event.message or "run failed"
    return f"CALIBRATION_FAILED: {text}"


def close_audit_rows(context, irt_db: IrtDatabase, message: str) -> None:
    """Fail the `running` audit rows of the context's Dagster run with `message`; leave a
    database that is not there or not migrated alone (no audit row to close)."""
    run_id = context.dagster_run.run_id
    unready = irt_db.unready_reason()
    if unready is not None:
        context.log.info(f"run {run_id} not recorded: {unready}")
        return
    count = irt_db.fail_runs_of_dagster_run(run_id, message)
    if count:
        context.log.info(f"marked {count} calibration run(s) of Dagster run {run_id} failed")


@dg.run_failure_sensor(
    name="calibration_run_failure_sensor",
    description="Marks the calibration audit row of a failed Dagster run as failed.",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def calibration_run_failure_sensor(context: dg.RunFailureSensorContext, irt_db: IrtDatabase) -> None:
    close_audit_rows(context, irt_db, run_failure_message(context))


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.CANCELED,
    name="calibration_run_canceled_sensor",
    description="Marks the calibration audit row of a canceled Dagster run as failed.",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def calibration_run_canceled_sensor(context: dg.RunStatusSensorContext, irt_db: IrtDatabase) -> None:
    close_audit_rows(context, irt_db, f"CALIBRATION_FAILED: Dagster run {context.dagster_run.run_id} was canceled")
