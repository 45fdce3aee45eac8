"""weekly_recalibration: every known bank, one run each, on a configurable UTC cron."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from irt_pipeline.defs.calibration.jobs import JOB_NAME
from irt_pipeline.defs.automation.schedules import (
    CRON_ENV,
    DEFAULT_CRON,
    configured_cron,
    recalibration_schedule,
    weekly_recalibration,
)
from irt_pipeline.definitions import defs
from irt_pipeline_tests.defs.conftest import add_bank_partition

MONDAY_3AM = dt.datetime(2026, 1, 5, 3, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def definitions() -> dg.Definitions:
    return defs()


def evaluate(instance, definitions=None):
    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=MONDAY_3AM,
        repository_def=definitions.get_repository_def() if definitions else None,
    )
    return weekly_recalibration(context)


def test_requests_every_known_bank(instance, definitions):
    for bank in ("geometry", "algebra", "demo"):
        add_bank_partition(instance, bank)
    requests = evaluate(instance, definitions)
    assert [r.partition_key for r in requests] == ["algebra", "demo", "geometry"]
    assert [r.run_key for r in requests] == [
        f"weekly_recalibration:{MONDAY_3AM.isoformat()}:{bank}" for bank in ("algebra", "demo", "geometry")
    ]
    job = definitions.resolve_job_def(JOB_NAME)
    for request in requests:
        assert request.tags["irt/trigger"] == "weekly_recalibration"
        assert dg.validate_run_config(job, request.run_config)["ops"]["response_matrix"]["config"] == {
            "min_responses": 100, "max_iterations": 100, "convergence_threshold": 0.001, "item_ids": None,
            "linking": "stocking_lord", "se_method": "block",
            "flags": {"mnsq_lower": 0.7, "mnsq_upper": 1.3, "miskey_item_rest": -0.05,
                      "low_discrimination_item_rest": 0.1, "misfit_fdr": 0.01},
        }


def test_skips_when_no_bank_is_known(instance):
    result = evaluate(instance)  # also: no repository at hand, the config is checked by pydantic only
    assert isinstance(result, dg.SkipReason)
    assert "no item bank" in result.skip_message


def test_cron_in_utc_on_the_job_and_off_by_default(definitions):
    schedule = definitions.resolve_schedule_def("weekly_recalibration")
    assert schedule.cron_schedule == DEFAULT_CRON == "0 3 * * 1"
    assert schedule.execution_timezone == "UTC"
    assert schedule.job_name == JOB_NAME
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def test_cron_is_configurable(monkeypatch):
    monkeypatch.setenv(CRON_ENV, "30 2 * * 0")
    assert configured_cron() == "30 2 * * 0"
    assert recalibration_schedule(configured_cron()).cron_schedule == "30 2 * * 0"
    monkeypatch.setenv(CRON_ENV, " ")
    assert configured_cron() == DEFAULT_CRON
    with pytest.raises(dg.DagsterInvalidDefinitionError):
        recalibration_schedule("every monday")
