"""Settings of the exam-import sensor, as a resource (resource key ``exam_imports``).

Bound here from environment variables, read when the code location loads (restart the
daemon after a change), each optional (the default applies when it is unset):

| variable | field | default |
|---|---|---|
| ``IRT_IMPORT_QUIET_MINUTES`` | ``quiet_minutes`` | 10 |
| ``IRT_IMPORT_MAX_ATTEMPTS_PER_TICK`` | ``max_attempts_per_tick`` | 200000 |

The weekly schedule's cron is read when the code location loads (schedules.py), since a cron
string is part of the schedule's definition.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations at import time.
import os

import dagster as dg
from pydantic import Field

SETTINGS_KEY = "exam_imports"
QUIET_MINUTES_ENV = "IRT_IMPORT_QUIET_MINUTES"
MAX_ATTEMPTS_ENV = "IRT_IMPORT_MAX_ATTEMPTS_PER_TICK"


class ExamImportSettings(dg.ConfigurableResource):
    """How `exam_import_sensor` decides that an import is complete, and how much it reads a tick."""

    quiet_minutes: int = Field(
        default=10,
        ge=0,
        description=(
            "An import counts as complete once no attempt has been added for this many minutes; "
            "until then the sensor requests nothing (a half-loaded import never triggers a run)."
        ),
    )
    max_attempts_per_tick: int = Field(
        default=200_000,
        ge=1,
        le=5_000_000,
        description="Attempts read per sensor tick at most (ticks time out at 60 s); larger imports take several ticks.",
    )


def exam_import_settings() -> ExamImportSettings:
    """The production binding: each field from its environment variable when that is set.

    Read when the code location loads (not through dg.EnvVar: an EnvVar placeholder would meet
    the fields' bounds before its value is known); an invalid value fails the load, naming it.
    """
    values = {}
    for env, field in ((QUIET_MINUTES_ENV, "quiet_minutes"), (MAX_ATTEMPTS_ENV, "max_attempts_per_tick")):
        text = os.environ.get(env, "").strip()
        if text:
            try:
                values[field] = int(text)
            except ValueError:
                raise ValueError(f"{env} must be an integer, got {text!r}") from None
    return ExamImportSettings(**values)


@dg.definitions
def automation_resources() -> dg.Definitions:
    return dg.Definitions(resources={SETTINGS_KEY: exam_import_settings()})
