"""The stale-run sweeper as a sensor: `running` audit rows whose owner is gone become `failed`.

A calibration process killed with SIGKILL (or OOM-killed, or on a lost machine) runs neither the
job's failure hook nor, without a daemon that sees the run die, the run-failure sensor, and its
row would stay `running`, refusing every later calibration of the bank. `start_run` already
sweeps the bank before it answers CALIBRATION_IN_PROGRESS, so the next calibration is never
blocked; this sensor closes such rows within minutes even when no calibration follows, so the
audit trail tells the truth.

It calls `storage.runs.fail_stale_runs` (run leases: see storage/runs.py) and adds what only the
Dagster instance knows: a row whose Dagster run is finished (SUCCESS, FAILURE or CANCELED) and
which no process holds is failed at once instead of after the hand-over grace period.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations at import time
# (Config class, resource and input types) and cannot resolve postponed (string) ones.
import dagster as dg

from irt_pipeline.defs.resources import IrtDatabase
from irt_pipeline.storage.runs import fail_stale_runs, running_runs

SENSOR_NAME = "stale_calibration_runs_sensor"
INTERVAL_SECONDS = 60


def finished_dagster_runs(instance: dg.DagsterInstance, dagster_run_ids: list[str]) -> dict[str, str]:
    """Dagster run id -> status name, for those runs of `dagster_run_ids` that are finished in
    `instance` (runs it does not know, e.g. launched against another instance, are left out)."""
    ids = sorted({run_id for run_id in dagster_run_ids if run_id})
    if not ids:
        return {}
    runs = instance.get_runs(filters=dg.RunsFilter(run_ids=ids))
    return {run.run_id: run.status.value for run in runs if run.is_finished}


def sweep_stale_runs(instance: dg.DagsterInstance, irt_db: IrtDatabase) -> list[dict]:
    """Fail the stale running rows of every bank; return them (id, item_bank, dagster_run_id, error)."""
    with irt_db.connection() as conn:
        running = running_runs(conn)
        if not running:
            return []
        finished = finished_dagster_runs(instance, [row["dagster_run_id"] for row in running])
        return fail_stale_runs(conn, finished_dagster_runs=finished)


@dg.sensor(
    name=SENSOR_NAME,
    description=(
        "Marks failed the running calibration audit rows whose process is gone (killed, lost) or "
        "whose Dagster run has finished, so that a dead run never blocks its item bank."
    ),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=INTERVAL_SECONDS,
)
def stale_calibration_runs_sensor(context: dg.SensorEvaluationContext, irt_db: IrtDatabase) -> dg.SkipReason:
    unready = irt_db.unready_reason()
    if unready is not None:
        return dg.SkipReason(unready)
    failed = sweep_stale_runs(context.instance, irt_db)
    for row in failed:
        context.log.warning(
            f"calibration run {row['id']} of item bank {row['item_bank']!r} marked failed: {row['error']}"
        )
    if not failed:
        return dg.SkipReason("no stale calibration run")
    return dg.SkipReason(
        f"marked {len(failed)} stale calibration run(s) failed: " + ", ".join(row["id"] for row in failed)
    )
