"""Run requests of the automation (exam-import sensor, weekly schedule): one per item bank.

The run config is built from `CalibrationConfig` (the brief's defaults) and validated before
any request is made: pydantic checks the values when the object is constructed, and, when the
code location is at hand (every daemon tick has it), Dagster checks the whole run config against
`calibration_job`. An invalid config therefore fails the tick, with the cursor unchanged,
instead of launching runs that would fail in their first step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import dagster as dg

from irt_pipeline.defs.calibration.config import CalibrationConfig, run_config_for
from irt_pipeline.defs.calibration.jobs import JOB_NAME

TRIGGER_TAG = "irt/trigger"


def repository_of(context: dg.SensorEvaluationContext | dg.ScheduleEvaluationContext) -> dg.RepositoryDefinition | None:
    """The code location's repository when the context has one (daemon ticks always do)."""
    try:
        return context.repository_def
    except dg.DagsterInvariantViolationError:  # a schedule context built without one
        return None


def automation_run_config(repository_def: dg.RepositoryDefinition | None = None) -> dg.RunConfig:
    """The validated run config of an automated calibration (raises on an invalid one)."""
    run_config = run_config_for(CalibrationConfig())
    if repository_def is not None:
        dg.validate_run_config(repository_def.get_job(JOB_NAME), run_config)
    return run_config


def bank_run_requests(
    banks: Iterable[str],
    *,
    run_key_prefix: str,
    trigger: str,
    run_config: dg.RunConfig,
    tags: Mapping[str, str] | None = None,
) -> list[dg.RunRequest]:
    """One request per bank (sorted, deduplicated), run key ``<prefix>:<bank>``."""
    return [
        dg.RunRequest(
            partition_key=bank,
            run_key=f"{run_key_prefix}:{bank}",
            run_config=run_config,
            tags={TRIGGER_TAG: trigger, **(tags or {})},
        )
        for bank in sorted(set(banks))
    ]
