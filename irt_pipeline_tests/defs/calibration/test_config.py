"""Config validation: an invalid value fails the run at its first step, naming the field,
before anything is read, computed or written."""

from __future__ import annotations

import dagster as dg
import pytest

from irt_pipeline_tests.defs.conftest import (
    failure_text,
    load_standard_bank,
    materialized_keys,
    parameter_rows,
    run_job,
    runs,
)

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def loaded(module_database_url):
    """One database with the standard bank for the module: no test may write to it."""
    return module_database_url, load_standard_bank(module_database_url)

INVALID = [
    ("min_responses", 0),
    ("max_iterations", 0),
    ("max_iterations", 501),
    ("convergence_threshold", 0.0),
    ("item_ids", ["item-001"]),  # not a UUID
    ("item_ids", []),
]


@pytest.mark.parametrize(("field", "value"), INVALID, ids=[f"{f}={v!r}" for f, v in INVALID])
def test_out_of_range_value_fails_first_step_naming_the_field(loaded, instance, calibration_job, field, value):
    database_url, bank = loaded
    result = run_job(calibration_job, instance, database_url, bank.name, {field: value})
    assert not result.success
    assert [e.step_key for e in result.get_step_failure_events()] == ["response_matrix"]
    assert f"\n{field}\n" in failure_text(result)  # pydantic names the field on its own line
    assert materialized_keys(result) == set()
    assert runs(database_url) == [] and parameter_rows(database_url) == []


def test_wrong_type_is_refused_at_launch(loaded, instance, calibration_job):
    database_url, bank = loaded
    with pytest.raises(dg.DagsterInvalidConfigError, match="min_responses"):
        run_job(calibration_job, instance, database_url, bank.name, {"min_responses": "many"})
    assert runs(database_url) == []
