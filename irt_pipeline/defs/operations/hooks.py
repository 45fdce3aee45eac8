"""Failure hook of `calibration_job`: a failed step marks this Dagster run's audit row `failed`.

The hook runs in the run's own process right after the step fails, so every launch of the job
(CLI, tests, schedules and sensors targeting the job, a launchpad run of the job) records the
error at once and without the daemon. Runs that do not go through the job (the asset graph's
"Materialize" button launches an ad-hoc asset job without its hooks) are covered by the
run-failure sensor in sensors.py.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations at import time
# (Config class, resource and input types) and cannot resolve postponed (string) ones.
import dagster as dg

from irt_pipeline.defs.operations.failures import failure_message
from irt_pipeline.defs.resources import RESOURCE_KEY


@dg.failure_hook(name="mark_calibration_failed", required_resource_keys={RESOURCE_KEY})
def mark_calibration_failed(context: dg.HookContext) -> None:
    """fail_runs_of_dagster_run(run id, "<CODE>: <message>"): a no-op if no row is running."""
    message = failure_message(context.op.name, context.op_exception)
    try:
        count = getattr(context.resources, RESOURCE_KEY).fail_runs_of_dagster_run(context.run_id, message)
    except Exception as exc:  # the sensor retries; never mask the step's own error
        context.log.error(f"could not mark the calibration run failed: {type(exc).__name__}: {exc}")
        return
    if count:
        context.log.error(f"calibration run marked failed: {message}")
