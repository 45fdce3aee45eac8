"""Fixtures and helpers of the reliability tests (issue 5): faults, bad inputs, concurrency, soak.

Every test here runs against real PostgreSQL through the shared `database_url` fixture (a fresh
migrated database per test; the embedded server, or IRT_TEST_DATABASE_URL in CI).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import dagster as dg
import numpy as np
import psycopg
import pytest

from irt_pipeline.defs.calibration.jobs import JOB_NAME
from irt_pipeline.defs.operations.launch import calibrate_command
from irt_pipeline.defs.resources import IrtDatabase
from irt_pipeline_tests.defs.conftest import load_matrix, query, simulate_3pl

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def calibration_job() -> dg.JobDefinition:
    from irt_pipeline.definitions import defs

    return defs().resolve_job_def(JOB_NAME)


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    """A storage connection (autocommit) to the test's fresh migrated database."""
    from irt_pipeline import storage

    with storage.connect(database_url) as connection:
        yield connection


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


# -- data -------------------------------------------------------------------------------------


def load_simulated_bank(
    url: str, bank: str, *, n_students: int = 300, n_items: int = 8, seed: int = 3, missing: float = 0.0
) -> list[str]:
    """A well-behaved simulated 3PL bank; returns its item names (item uuids via brief_fixtures)."""
    rng = np.random.default_rng(seed)
    params = [
        {"a": float(a), "b": float(b), "c": float(c)}
        for a, b, c in zip(rng.uniform(0.8, 1.8, n_items), rng.normal(0, 0.8, n_items), rng.uniform(0.05, 0.2, n_items))
    ]
    responses = simulate_3pl(params, rng.normal(0, 1, n_students), seed + 1)
    if missing:
        responses[rng.random(responses.shape) < missing] = np.nan
    names = [f"{bank}-item-{j:03d}" for j in range(n_items)]
    load_matrix(url, bank, responses, names, [f"{bank}-student-{i:05d}" for i in range(n_students)])
    return names


def running_rows(url: str, bank: str | None = None) -> list[dict]:
    sql = "SELECT * FROM irt_calibration_runs WHERE status = 'running'"
    return query(url, sql + (" AND item_bank = %s" if bank else ""), [bank] if bank else None)


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    """Poll until predicate() is truthy; return its value, or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def end_session(conn: psycopg.Connection, url: str) -> None:
    """Close `conn` and wait until the server has ended its backend (and released its locks):
    what SIGKILL does to a client. The backend exits asynchronously after the client closes."""
    pid = conn.info.backend_pid
    conn.close()
    wait_for(lambda: not query(url, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]),
             10, f"backend {pid} to end")


def sessions(url: str, application_name_like: str = "irt-pipeline%") -> list[dict]:
    """Sessions on the test database whose application_name matches (pg_stat_activity)."""
    return query(
        url,
        "SELECT pid, application_name, state, wait_event_type FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name LIKE %s AND pid <> pg_backend_pid()",
        [application_name_like],
    )


def calibrate(database_url: str, instance: dg.DagsterInstance, bank: str, **overrides) -> tuple[int, str, str]:
    """`irt-pipeline calibrate` in this process (the CLI's code path with a test instance):
    (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    options = dict(min_responses=None, max_iterations=None, convergence_threshold=None, item_ids=None)
    options.update(overrides)
    code = calibrate_command(bank=bank, database=IrtDatabase(url=database_url), instance=instance,
                             out=out, err=err, **options)
    return code, out.getvalue(), err.getvalue()


# -- the CLI in a child process ---------------------------------------------------------------


class CliProcess:
    """`irt-pipeline` (through cli_driver.py) in a child process, its stderr collected live."""

    def __init__(self, args: Sequence[str], *, database_url: str, dagster_home: Path, slow_em: float = 0.0):
        env = {**os.environ, "IRT_DATABASE_URL": database_url, "DAGSTER_HOME": str(dagster_home)}
        env.pop("IRT_TEST_DATABASE_URL", None)
        command = [sys.executable, "-m", "irt_pipeline_tests.reliability.cli_driver"]
        if slow_em:
            command += ["--slow-em", str(slow_em)]
        self.process = subprocess.Popen(
            [*command, *args], cwd=REPO_ROOT, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    def saw(self, text: str) -> bool:
        return any(text in line for line in list(self.stderr))

    def kill(self) -> None:
        """SIGKILL: no handler, hook, finally or atexit of the process runs."""
        self.process.kill()
        self.process.wait(timeout=30)
        for reader in self._readers:
            reader.join(timeout=10)

    def wait(self, timeout: float = 120) -> int:
        code = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)

    def ensure_dead(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture
def cli_processes() -> Iterator[list[CliProcess]]:
    """Children started by a test; killed at teardown if still alive (never leaked)."""
    started: list[CliProcess] = []
    yield started
    for child in started:
        child.ensure_dead()


class TableLock:
    """An ACCESS EXCLUSIVE lock on a table, held by a session of the test until released, so that
    the pipeline's writer blocks on it (the test then kills or terminates the writer)."""

    def __init__(self, url: str, table: str):
        self.conn = psycopg.connect(url, application_name="reliability-test-lock")
        self.conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")

    def release(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()


@pytest.fixture
def table_locks() -> Iterator[list[TableLock]]:
    held: list[TableLock] = []
    yield held
    for lock in held:
        lock.release()
