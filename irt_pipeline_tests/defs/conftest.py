"""Helpers for the Dagster-layer tests: load simulated banks into a real database, run the job.

`database_url` (a fresh migrated database per test) comes from irt_pipeline_tests/conftest.py.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import numpy as np
import psycopg
import pytest
from psycopg.rows import dict_row

from irt_pipeline.defs.calibration.jobs import JOB_NAME
from irt_pipeline.defs.calibration.partitions import ITEM_BANK_PARTITIONS_NAME
from irt_pipeline.defs.resources import RESOURCE_KEY, IrtDatabase
from irt_pipeline_tests.brief_fixtures import KNOWN_PARAMS, item_uuid, student_uuid
from irt_pipeline_tests.conftest import fresh_database

# -- data -------------------------------------------------------------------------------------


def simulate_3pl(params: Sequence[Mapping[str, float]], theta: np.ndarray, seed: int) -> np.ndarray:
    """students x items 0/1 responses drawn from 3PL items with the given a, b, c."""
    rng = np.random.default_rng(seed)
    a = np.array([p["a"] for p in params])
    b = np.array([p["b"] for p in params])
    c = np.array([p["c"] for p in params])
    prob = c + (1 - c) / (1 + np.exp(-a * (theta[:, None] - b)))
    return (rng.random(prob.shape) < prob).astype(float)


def insert_items(url: str, bank: str, item_names: Sequence[str]) -> None:
    with psycopg.connect(url) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO items (id, item_bank) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING",
                [(item_uuid(n), bank) for n in item_names],
            )


def insert_attempts(url: str, rows: Sequence[tuple[str, str, bool, str]]) -> None:
    """(student uuid, item uuid, correct, attempted_at ISO) rows, via COPY."""
    buf = io.StringIO()
    for student, item, correct, at in rows:
        buf.write(f"{student}\t{item}\t{'t' if correct else 'f'}\t{at}\n")
    with psycopg.connect(url) as conn:
        with conn.cursor() as cur:
            with cur.copy("COPY student_attempts (student_id, item_id, correct, attempted_at) FROM STDIN") as copy:
                copy.write(buf.getvalue())


def load_matrix(
    url: str,
    bank: str,
    responses: np.ndarray,
    item_names: Sequence[str],
    student_names: Sequence[str] | None = None,
    attempted_at: str = "2026-01-05T10:00:00Z",
) -> None:
    """Items of the bank plus one attempt per observed cell (NaN = not answered)."""
    responses = np.asarray(responses, dtype=float)
    student_names = student_names or [f"student-{i:04d}" for i in range(responses.shape[0])]
    insert_items(url, bank, item_names)
    students = [student_uuid(s) for s in student_names]
    items = [item_uuid(n) for n in item_names]
    rows = [
        (students[i], items[j], bool(responses[i, j]), attempted_at)
        for i, j in zip(*np.nonzero(~np.isnan(responses)))
    ]
    insert_attempts(url, rows)


@dataclass
class Bank:
    """A simulated bank and what the calibration should do with each item."""

    name: str
    eligible: list[str]
    misfit: str
    insufficient: dict[str, int] = field(default_factory=dict)   # name -> response count
    no_variance: dict[str, int] = field(default_factory=dict)
    n_students: int = 0

    @property
    def eligible_ids(self) -> set[str]:
        return {item_uuid(n) for n in self.eligible}


def extra_params(n: int, seed: int = 11) -> list[dict[str, float | str]]:
    """n more well-behaved 3PL items, item-006 onwards."""
    rng = np.random.default_rng(seed)
    return [
        {"item_id": f"item-{k:03d}", "a": float(a), "b": float(b), "c": float(c)}
        for k, a, b, c in zip(
            range(6, 6 + n), rng.uniform(0.7, 1.8, n), rng.normal(0.0, 1.0, n), rng.uniform(0.05, 0.25, n)
        )
    ]


def load_standard_bank(
    url: str, bank: str = "bank-a", n_students: int = 400, seed: int = 7, prefix: str = ""
) -> Bank:
    """19 well-behaved 3PL items (the brief's KNOWN_PARAMS + 14) and four items to skip or flag:

    * item-low-001: 42 responses (< 100)              -> insufficient_responses
    * item-unanswered-001: in the bank, no attempts   -> insufficient_responses (0)
    * item-easy-001: every response correct           -> no_variance
    * item-misfit-001: a Guttman step (correct iff theta > 0.2), far steeper than a <= 3 allows
                                                      -> calibrated, flagged (MNSQ well below 0.7)

    `prefix` is prepended to every item name (another bank in the same database needs other items).
    """
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, 1.0, n_students)
    good = list(KNOWN_PARAMS) + extra_params(14)
    good_names = [prefix + str(p["item_id"]) for p in good]
    responses = simulate_3pl(good, theta, seed + 1)

    low = simulate_3pl([{"a": 1.0, "b": 0.0, "c": 0.2}], theta, seed + 2)[:, 0]
    low[42:] = np.nan
    easy = np.ones(n_students)
    misfit = (theta > 0.2).astype(float)

    names = good_names + [prefix + n for n in ("item-low-001", "item-easy-001", "item-misfit-001")]
    matrix = np.column_stack([responses, low, easy, misfit])
    load_matrix(url, bank, matrix, names)
    insert_items(url, bank, [prefix + "item-unanswered-001"])
    return Bank(
        name=bank,
        eligible=good_names + [prefix + "item-misfit-001"],
        misfit=prefix + "item-misfit-001",
        insufficient={prefix + "item-low-001": 42, prefix + "item-unanswered-001": 0},
        no_variance={prefix + "item-easy-001": n_students},
        n_students=n_students,
    )


# -- database queries -------------------------------------------------------------------------


def query(url: str, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchall()


def runs(url: str, bank: str | None = None) -> list[dict[str, Any]]:
    if bank is None:
        return query(url, "SELECT * FROM irt_calibration_runs ORDER BY started_at")
    return query(url, "SELECT * FROM irt_calibration_runs WHERE item_bank = %s ORDER BY started_at", [bank])


def parameter_rows(url: str, run_id: str | None = None) -> list[dict[str, Any]]:
    if run_id is None:
        return query(url, "SELECT * FROM irt_item_parameters")
    return query(url, "SELECT * FROM irt_item_parameters WHERE calibration_run_id = %s", [run_id])


@pytest.fixture(scope="module")
def module_database_url(pg_server_url: str) -> Iterator[str]:
    """Like `database_url`, but one database shared by a module's read-only tests."""
    with fresh_database(pg_server_url) as url:
        yield url


# -- Dagster ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def calibration_job() -> dg.JobDefinition:
    from irt_pipeline.definitions import defs

    return defs().resolve_job_def(JOB_NAME)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture(scope="module")
def module_instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


def add_bank_partition(instance: dg.DagsterInstance, bank: str) -> None:
    if not instance.has_dynamic_partition(ITEM_BANK_PARTITIONS_NAME, bank):
        instance.add_dynamic_partitions(ITEM_BANK_PARTITIONS_NAME, [bank])


def run_job(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    url: str,
    bank: str,
    config: Mapping[str, Any] | None = None,
) -> dg.ExecuteInProcessResult:
    """calibration_job for one bank partition, as the CLI/sensors launch it (hooks included)."""
    add_bank_partition(instance, bank)
    run_config = {"ops": {"response_matrix": {"config": dict(config)}}} if config is not None else {}
    return job.execute_in_process(
        instance=instance,
        partition_key=bank,
        run_config=run_config,
        resources={RESOURCE_KEY: IrtDatabase(url=url)},
        raise_on_error=False,
    )


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Every step failure's error chain, joined (for asserting on the reason)."""
    parts: list[str] = []
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None:
            parts.append(error.message)
            error = error.cause
    return "\n".join(parts)


def materialized_keys(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def run_failure_context(instance: dg.DagsterInstance, run: dg.DagsterRun, database_url: str):
    """The context the daemon gives `calibration_run_failure_sensor` for this failed run."""
    from irt_pipeline.defs.resources import RESOURCE_KEY, IrtDatabase
    from irt_pipeline.defs.operations.run_status_sensors import calibration_run_failure_sensor

    (failure,) = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    return dg.build_run_status_sensor_context(
        sensor_name=calibration_run_failure_sensor.name,
        dagster_event=failure.event_log_entry.dagster_event,
        dagster_instance=instance,
        dagster_run=run,
        resources={RESOURCE_KEY: IrtDatabase(url=database_url)},
    ).for_run_failure()
