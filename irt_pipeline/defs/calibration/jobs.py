"""The calibration job: every asset (and check) of group "irt" for one item bank partition.

The CLI, the weekly schedule and the exam-import sensor launch this job, so its failure hook
applies to their runs. Backfills run one bank per run (``BackfillPolicy.multi_run(1)`` on every
asset, see backfills.py): each bank gets its own audit row, and the daemon's run queue runs
the banks side by side, one run per bank at a time (tag concurrency limits in dagster.yaml).

Hung runs: the job carries the run tag ``dagster/max_runtime``; run monitoring (enabled in
dagster.yaml and deploy/dagster.yaml) terminates a run that exceeds it and marks it failed, and
the run-failure/run-canceled sensors (sensors.py) then close its audit row as ``failed``. Runs
launched from the asset graph do not carry the job's tags: the instance-wide
``run_monitoring.max_runtime_seconds`` (the same hour) bounds them.
"""

from __future__ import annotations

import dagster as dg

from irt_pipeline.defs.calibration.assets import GROUP
from irt_pipeline.defs.operations.hooks import mark_calibration_failed

JOB_NAME = "calibration_job"
MAX_RUNTIME_TAG = "dagster/max_runtime"
# An hour: the brief's 1000 x 500 bank takes seconds and the 1000-item demo bank well under a
# minute, so a run still going after an hour is stuck (e.g. waiting on a database lock).
MAX_RUNTIME_SECONDS = 3600

calibration_job = dg.define_asset_job(
    JOB_NAME,
    selection=dg.AssetSelection.groups(GROUP),
    description="Calibrate one item bank: read attempts, select items, 3PL MML-EM, fit, publish.",
    hooks={mark_calibration_failed},
    tags={MAX_RUNTIME_TAG: str(MAX_RUNTIME_SECONDS)},
)
