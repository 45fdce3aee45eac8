"""The calibration job: every asset (and check) of group "irt" for one item bank partition.

The CLI, schedules and sensors launch this job, so its failure hook applies to their runs.
Backfills over several banks run one bank per run (no backfill policy): each bank gets its own
audit row, and the `irt_calibration` pool queues the runs one after another.
"""

from __future__ import annotations

import dagster as dg

from irt_pipeline.defs.assets import GROUP
from irt_pipeline.defs.hooks import mark_calibration_failed

JOB_NAME = "calibration_job"

calibration_job = dg.define_asset_job(
    JOB_NAME,
    selection=dg.AssetSelection.groups(GROUP),
    description="Calibrate one item bank: read attempts, select items, 3PL MML-EM, fit, publish.",
    hooks={mark_calibration_failed},
    tags={"dagster/max_runtime": "3600"},
)
