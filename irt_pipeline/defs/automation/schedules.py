"""`weekly_recalibration`: recalibrate every known item bank on a cron (UTC).

Known banks are the ``item_bank`` partitions of the instance: those the exam-import sensor has
seen, and any registered by ``irt-pipeline calibrate`` or from the UI. One run per bank
(run key ``weekly_recalibration:<scheduled time>:<bank>``); the run queue runs them side by side,
one run per bank at a time, up to ``max_concurrent_runs`` (dagster.yaml).

The cron comes from ``IRT_RECALIBRATION_CRON`` when the code location loads (default
``0 3 * * 1``: Mondays 03:00 UTC); an invalid cron string fails the load with Dagster's error.
STOPPED until turned on in the UI or with ``dagster schedule start weekly_recalibration``.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations at import time.
import datetime as dt
import os

import dagster as dg

from irt_pipeline.defs.automation.run_requests import automation_run_config, bank_run_requests, repository_of
from irt_pipeline.defs.calibration.jobs import calibration_job
from irt_pipeline.defs.calibration.partitions import ITEM_BANK_PARTITIONS_NAME

SCHEDULE_NAME = "weekly_recalibration"
CRON_ENV = "IRT_RECALIBRATION_CRON"
DEFAULT_CRON = "0 3 * * 1"
TIMEZONE = "UTC"


def configured_cron() -> str:
    """IRT_RECALIBRATION_CRON, else the default (Mondays 03:00 UTC)."""
    return os.environ.get(CRON_ENV, "").strip() or DEFAULT_CRON


def recalibration_schedule(cron_schedule: str) -> dg.ScheduleDefinition:
    """The schedule for `cron_schedule` (a factory, so tests can build other crons)."""

    @dg.schedule(
        name=SCHEDULE_NAME,
        cron_schedule=cron_schedule,
        execution_timezone=TIMEZONE,
        job=calibration_job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Recalibrates every known item bank ({cron_schedule}, {TIMEZONE}).",
    )
    def weekly_recalibration(context: dg.ScheduleEvaluationContext):
        banks = context.instance.get_dynamic_partitions(ITEM_BANK_PARTITIONS_NAME)
        if not banks:
            return dg.SkipReason("no item bank is known yet (none registered as an item_bank partition)")
        scheduled = context.scheduled_execution_time or dt.datetime.now(dt.timezone.utc)
        return bank_run_requests(
            banks,
            run_key_prefix=f"{SCHEDULE_NAME}:{scheduled.isoformat()}",
            trigger=SCHEDULE_NAME,
            run_config=automation_run_config(repository_of(context)),
        )

    return weekly_recalibration


weekly_recalibration = recalibration_schedule(configured_cron())
