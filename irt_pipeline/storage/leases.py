"""The run leases this process holds: one open connection per calibration run it started.

`storage.runs.start_run` makes the session of the connection it is given the run's lease
holder (a session-level advisory lock; see the docstring of storage/runs.py). This module keeps
those connections open for as long as the run lives in this process, so that:

* while this process is alive, its runs are alive to the sweeper (`fail_stale_runs`), however
  long the EM takes and across the steps of an in-process Dagster run;
* if the process dies (SIGKILL, OOM killer, lost machine), the server ends the sessions and the
  runs' rows become sweepable at once;
* if the process exits normally with a run still open (a Dagster step that runs in its own
  process under the multiprocess executor: the next step continues the run in another
  process), the exit handler hands the run over (`runs.hand_over_run`) instead of abandoning it.

The registry is process-wide and keyed by calibration run id (a fresh UUID), so concurrent runs
in one process (threads) never touch each other's leases.
"""

from __future__ import annotations

import atexit
import multiprocessing.util
import os
import threading
from collections.abc import Mapping
from typing import Any

import psycopg

from irt_pipeline.storage.connection import connect
from irt_pipeline.storage.runs import hand_over_run, release_lease, resume_run, start_run

_lock = threading.Lock()
# run id -> (connection, dagster run id, pid of the process that opened the connection: a forked
# child inherits this dict, and must never use or close its parent's sessions)
_held: dict[str, tuple[psycopg.Connection, str | None, int]] = {}


def start_leased_run(
    url: str, *, item_bank: str, config: Mapping[str, Any], dagster_run_id: str | None, **row: Any
) -> str:
    """`start_run` on a new connection that stays open as the run's lease; return the run id.
    `row`: further columns of the run row that start_run takes (data_watermark, data_read_at)."""
    prune()
    conn = connect(url)
    try:
        run_id = start_run(conn, item_bank=item_bank, config=config, dagster_run_id=dagster_run_id, **row)
        # shows in pg_stat_activity which session holds which run
        conn.execute("SELECT set_config('application_name', %s, false)", (f"irt-pipeline lease {run_id}",))
    except BaseException:
        conn.close()
        raise
    with _lock:
        _held[run_id] = (conn, dagster_run_id, os.getpid())
    return run_id


def take_connection(url: str, run_id: str) -> psycopg.Connection:
    """A connection that holds the run's lease, for the caller to finish the run on and close:
    this process's lease connection if it holds one (it leaves the registry), else a new
    connection that resumes the lease (`runs.resume_run`: CalibrationFailedError when the run
    is not running any more or another live process holds it)."""
    with _lock:
        entry = _held.pop(run_id, None)
    if entry is not None and entry[2] == os.getpid():
        if not entry[0].closed and not entry[0].broken:
            return entry[0]
        entry[0].close()
    conn = connect(url)
    try:
        resume_run(conn, run_id)
    except BaseException:
        conn.close()
        raise
    return conn


def release(run_id: str) -> bool:
    """Close this process's lease connection of the run (the server drops the lock); True if held."""
    with _lock:
        entry = _held.pop(run_id, None)
    if entry is None or entry[2] != os.getpid():
        return False
    _close(entry[0], run_id)
    return True


def _close(conn: psycopg.Connection, run_id: str) -> None:
    """Unlock, then close: the lock is gone when this returns (closing alone ends the session
    asynchronously: the server may list the lock for a moment longer)."""
    try:
        release_lease(conn, run_id)
    except psycopg.Error:
        pass  # a broken connection: its session, and the lock, are gone or going
    finally:
        conn.close()


def prune() -> list[str]:
    """Close the lease connections of runs that are not running any more, or whose connection
    is unusable (a run failed from another process by the hook or a sensor; a dropped database;
    a terminated session). Keeps a long-lived process from accumulating dead leases."""
    with _lock:
        entries = [(run, conn) for run, (conn, _, pid) in _held.items() if pid == os.getpid()]
    pruned: list[str] = []
    for run_id, conn in entries:
        try:
            row = None if conn.closed or conn.broken else conn.execute(
                "SELECT status FROM irt_calibration_runs WHERE id = %s", (run_id,)).fetchone()
            alive = row is not None and row[0] == "running"
        except psycopg.Error:
            alive = False
        if not alive:
            with _lock:
                _held.pop(run_id, None)
            _close(conn, run_id)
            pruned.append(run_id)
    return pruned


def release_dagster_run(dagster_run_id: str) -> int:
    """Release every lease this process holds for runs of that Dagster run; return how many."""
    with _lock:
        runs = [run for run, (_, owner, _pid) in _held.items() if owner == dagster_run_id]
    return sum(release(run) for run in runs)


def held_runs() -> list[str]:
    """Ids of the runs whose lease this process holds."""
    with _lock:
        return list(_held)


def hand_over_all() -> list[str]:
    """Hand over every run this process still holds (called when the process exits normally)."""
    with _lock:
        entries = [(run, conn) for run, (conn, _, pid) in _held.items() if pid == os.getpid()]
        _held.clear()
    handed: list[str] = []
    for run_id, conn in entries:
        try:
            if not conn.closed and not conn.broken and hand_over_run(conn, run_id):
                handed.append(run_id)
        except Exception:  # noqa: BLE001 - at exit: the sweeper copes with a lease not handed over
            pass
        finally:
            conn.close()
    return handed


# Normal interpreter exit, and the exit of a multiprocessing child (Dagster's step processes),
# which may end with os._exit() and skip atexit; hand_over_all is idempotent.
atexit.register(hand_over_all)
multiprocessing.util.Finalize(None, hand_over_all, exitpriority=100)

