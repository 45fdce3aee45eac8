"""Soak (issue 5, point 6): 20 consecutive calibrations in one process, through the CLI's code
path (DAGSTER_HOME instance opened and closed each time, IRT_DATABASE_URL), on the test server
(the embedded PostgreSQL by default).

After every run: no session of ours left on the database, no child process, no run lease held.
Across runs 5 to 20 (after warm-up): no growth of threads, open files or resident memory beyond
a small tolerance. The test prints the figures.
"""

from __future__ import annotations

import gc
import io
import time

import psutil
import pytest

from irt_pipeline.defs.operations.launch import calibrate_command
from irt_pipeline.storage import leases
from irt_pipeline_tests.defs.conftest import load_standard_bank, parameter_rows, query, runs

pytestmark = [pytest.mark.db, pytest.mark.slow]

RUNS = 20
WARM_UP = 5                 # runs before the baseline (imports, caches, first-run allocations)
RSS_TOLERANCE_MB = 40.0     # growth allowed from run WARM_UP to run RUNS
FD_TOLERANCE = 4
THREAD_TOLERANCE = 2


def sessions_on(database_url: str, settle_seconds: float = 0.0, expected: int = 0) -> int:
    """Sessions connected to the test database other than the one asking. With settle_seconds,
    waits up to that long for the count to come down to `expected`: a client's close returns
    before the server's backend has exited (a closed session ends asynchronously)."""
    deadline = time.monotonic() + settle_seconds
    while True:
        (row,) = query(database_url, "SELECT count(*) AS n FROM pg_stat_activity"
                                     " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        if row["n"] <= expected or time.monotonic() >= deadline:
            return row["n"]
        time.sleep(0.05)


@pytest.mark.timeout(600)
def test_twenty_consecutive_calibrations_leak_nothing(database_url, tmp_path, monkeypatch, capsys):
    bank = load_standard_bank(database_url)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("IRT_DATABASE_URL", database_url)
    process = psutil.Process()
    children_before = {child.pid for child in process.children(recursive=True)}
    sessions_before = sessions_on(database_url)
    leases_before = set(leases.held_runs())  # other tests' runs in this process are not ours

    figures = []
    for k in range(1, RUNS + 1):
        out, err = io.StringIO(), io.StringIO()
        started = time.perf_counter()
        code = calibrate_command(bank=bank.name, min_responses=None, max_iterations=None,
                                 convergence_threshold=None, item_ids=None, out=out, err=err)
        seconds = time.perf_counter() - started
        assert code == 0, err.getvalue()
        gc.collect()
        figures.append({
            "run": k,
            "seconds": seconds,
            "sessions": sessions_on(database_url, settle_seconds=2.0, expected=sessions_before),
            "children": len({c.pid for c in process.children(recursive=True)} - children_before),
            "leases": len(set(leases.held_runs()) - leases_before),
            "threads": process.num_threads(),
            "fds": process.num_fds(),
            "rss_mb": process.memory_info().rss / 2**20,
        })

    with capsys.disabled():
        print(f"\nsoak: {RUNS} calibrations of {bank.name} ({len(bank.eligible)} items x {bank.n_students} students)")
        print(" run  seconds  db sessions  children  leases  threads  fds  rss MB")
        for f in figures:
            print(f" {f['run']:3d}  {f['seconds']:7.2f}  {f['sessions']:11d}  {f['children']:8d}  {f['leases']:6d}"
                  f"  {f['threads']:7d}  {f['fds']:3d}  {f['rss_mb']:6.1f}")
        base, last = figures[WARM_UP - 1], figures[-1]
        print(f" growth run {WARM_UP} -> {RUNS}: rss {last['rss_mb'] - base['rss_mb']:+.1f} MB, "
              f"fds {last['fds'] - base['fds']:+d}, threads {last['threads'] - base['threads']:+d}; "
              f"db sessions before {sessions_before}, after {last['sessions']}")

    assert all(f["sessions"] == sessions_before for f in figures), "a database session outlived its run"
    assert all(f["children"] == 0 for f in figures), "a child process outlived its run"
    assert all(f["leases"] == 0 for f in figures), "a run lease outlived its run"
    base, last = figures[WARM_UP - 1], figures[-1]
    assert last["threads"] - base["threads"] <= THREAD_TOLERANCE
    assert last["fds"] - base["fds"] <= FD_TOLERANCE
    assert last["rss_mb"] - base["rss_mb"] <= RSS_TOLERANCE_MB

    statuses = [r["status"] for r in runs(database_url, bank.name)]
    assert statuses == ["completed"] * RUNS
    assert len(parameter_rows(database_url)) == RUNS * len(bank.eligible)
    assert len(query(database_url, "SELECT 1 FROM irt_item_parameters_latest")) == len(bank.eligible)
