"""Run leases and the stale-run sweeper (storage/runs.py, storage/leases.py, defs/operations/stale_runs.py).

A `running` audit row is dead when its owner is provably gone: no session holds its lease and it
was not handed over (or the hand-over is older than the grace, or its Dagster run finished), or
it outlived the maximum runtime. A live run must never be swept: a second start of the bank
still gets CALIBRATION_IN_PROGRESS.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import dagster as dg
import psycopg
import pytest

from irt_pipeline import storage
from irt_pipeline.defs.operations.stale_runs import stale_calibration_runs_sensor, sweep_stale_runs
from irt_pipeline.defs.resources import RESOURCE_KEY, IrtDatabase
from irt_pipeline.errors import CalibrationFailedError, CalibrationInProgressError
from irt_pipeline.storage import leases
from irt_pipeline.storage.runs import (
    LEASE_NAMESPACE,
    fail_stale_runs,
    hand_over_run,
    lease_key,
    release_lease,
    resume_run,
)
from irt_pipeline_tests.reliability.conftest import end_session
from irt_pipeline_tests.storage.helpers import add_items, parameter_frame, publish

pytestmark = pytest.mark.db

CONFIG = {"min_responses": 100, "max_iterations": 100, "convergence_threshold": 0.001, "model": "3pl"}


def start(conn: psycopg.Connection, bank: str = "bank-a", dagster_run_id: str | None = None) -> str:
    return storage.start_run(conn, item_bank=bank, config=CONFIG, dagster_run_id=dagster_run_id)


def lease_holders(conn: psycopg.Connection, run_id: str) -> list[int]:
    """pids of the sessions holding the run's lease."""
    return [pid for (pid,) in conn.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2"
        " AND classid = %s::bigint::oid AND objid = %s::bigint::oid"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (LEASE_NAMESPACE, lease_key(run_id)),
    )]


def status(conn: psycopg.Connection, run_id: str) -> tuple[str, str | None]:
    run = storage.get_run(conn, run_id)
    return run["status"], run["error"]


@pytest.fixture
def owner(database_url):
    """A second connection: the process that owns a run (closing it = that process dying)."""
    with storage.connect(database_url) as conn:
        yield conn


def test_the_starting_session_holds_the_lease_and_a_live_run_is_never_swept(conn, owner):
    run_id = start(owner)
    assert lease_holders(conn, run_id) == [owner.info.backend_pid]
    assert fail_stale_runs(conn) == []
    with pytest.raises(CalibrationInProgressError, match=run_id):
        start(conn)  # swept first, found alive: the second run is refused, nothing left behind
    assert status(conn, run_id) == ("running", None)
    assert conn.execute("SELECT count(*) FROM irt_calibration_runs").fetchone() == (1,)


def test_a_session_that_ends_leaves_a_row_the_sweeper_fails_at_once(conn, database_url):
    dead = storage.connect(database_url)
    run_id = start(dead, dagster_run_id="dagster-1")
    end_session(dead, database_url)  # what SIGKILL does: the server ends the session and its locks
    (failed,) = fail_stale_runs(conn)
    assert failed["id"] == run_id and failed["item_bank"] == "bank-a" and failed["dagster_run_id"] == "dagster-1"
    run = storage.get_run(conn, run_id)
    assert run["status"] == "failed" and run["completed_at"] is not None
    assert run["error"].startswith("CALIBRATION_FAILED: the process running it ended without completing or failing it")
    assert fail_stale_runs(conn) == []  # only running rows are considered


def test_start_run_sweeps_a_dead_run_of_its_bank_instead_of_answering_in_progress(conn, database_url):
    dead = storage.connect(database_url)
    first = start(dead)
    end_session(dead, database_url)
    second = start(conn)
    assert status(conn, first)[0] == "failed"
    assert status(conn, second) == ("running", None)


def test_handed_over_row_lives_for_the_grace_period_then_is_swept(conn, database_url):
    step = storage.connect(database_url)
    run_id = start(step)
    assert hand_over_run(step, run_id) is True
    assert lease_holders(conn, run_id) == []
    end_session(step, database_url)  # the step's process exits; the next step takes the run up
    assert storage.get_run(conn, run_id)["lease_handed_over_at"] is not None
    assert fail_stale_runs(conn) == []  # within the grace period (300 s)
    with pytest.raises(CalibrationInProgressError):
        start(conn)
    time.sleep(0.05)
    (failed,) = fail_stale_runs(conn, handover_grace_seconds=0.01)
    assert "handed over between steps" in failed["error"]


def test_resume_takes_up_a_handed_over_run(conn, database_url):
    with storage.connect(database_url) as step:
        run_id = start(step)
        hand_over_run(step, run_id)
    with storage.connect(database_url) as next_step:
        resume_run(next_step, run_id)
        assert lease_holders(conn, run_id) == [next_step.info.backend_pid]
        assert storage.get_run(conn, run_id)["lease_handed_over_at"] is None
        assert fail_stale_runs(conn, handover_grace_seconds=0) == []  # leased again
    # that step died without handing over: dead at once
    (failed,) = fail_stale_runs(conn)
    assert failed["id"] == run_id


def test_resume_refuses_a_run_another_live_session_holds_or_that_is_not_running(conn, owner):
    run_id = start(owner)
    with pytest.raises(CalibrationFailedError, match="held by another live process"):
        resume_run(conn, run_id)
    assert lease_holders(conn, run_id) == [owner.info.backend_pid]
    storage.fail_run(owner, run_id, "CALIBRATION_FAILED: boom")
    with pytest.raises(CalibrationFailedError, match="is failed, not running"):
        resume_run(conn, run_id)
    assert lease_holders(conn, run_id) == []  # the refused resume does not keep the lock


def test_finished_dagster_run_fails_a_handed_over_row_before_the_grace_ends(conn, database_url):
    with storage.connect(database_url) as step:
        mine = start(step, "bank-a", dagster_run_id="d-finished")
        other = start(step, "bank-b", dagster_run_id="d-running")
        hand_over_run(step, mine)
        hand_over_run(step, other)
    (failed,) = fail_stale_runs(conn, finished_dagster_runs={"d-finished": "FAILURE"})
    assert failed["id"] == mine
    assert "its Dagster run d-finished is FAILURE" in failed["error"]
    assert status(conn, other) == ("running", None)


def test_max_runtime_fails_a_leased_run_and_refuses_its_publication(conn, owner):
    items = add_items(owner, "bank-a", 2)
    run_id = start(owner)
    assert fail_stale_runs(conn, max_runtime_seconds=3600) == []
    time.sleep(0.05)
    (failed,) = fail_stale_runs(conn, max_runtime_seconds=0.01)
    assert "beyond the maximum runtime" in failed["error"]
    with pytest.raises(CalibrationFailedError, match="is failed, not running"):
        publish(owner, run_id, parameter_frame(items))
    assert conn.execute("SELECT count(*) FROM irt_item_parameters").fetchone() == (0,)


def test_a_row_being_published_is_skipped_not_waited_for(conn, database_url):
    dead = storage.connect(database_url)
    run_id = start(dead)
    end_session(dead, database_url)
    with psycopg.connect(database_url) as writer:  # holds the row as publish_calibration does
        writer.execute("SELECT 1 FROM irt_calibration_runs WHERE id = %s FOR UPDATE", (run_id,))
        started = time.monotonic()
        assert fail_stale_runs(conn) == []
        assert time.monotonic() - started < 2
        writer.rollback()
    assert [row["id"] for row in fail_stale_runs(conn)] == [run_id]


def test_the_sweep_can_be_limited_to_one_bank(conn, database_url):
    dead = storage.connect(database_url)
    a, b = start(dead, "bank-a"), start(dead, "bank-b")
    end_session(dead, database_url)
    assert [row["id"] for row in fail_stale_runs(conn, item_bank="bank-b")] == [b]
    assert status(conn, a)[0] == "running"


def test_publish_and_fail_release_the_lease_on_their_session(conn):
    items = add_items(conn, "bank-a", 1)
    published = start(conn)
    publish(conn, published, parameter_frame(items))
    failed = start(conn)
    storage.fail_run(conn, failed, "CALIBRATION_FAILED: x")
    d1 = start(conn, dagster_run_id="d1")
    storage.fail_runs_of_dagster_run(conn, "d1", "CALIBRATION_FAILED: y")
    assert [lease_holders(conn, run) for run in (published, failed, d1)] == [[], [], []]
    assert release_lease(conn, published) is False  # nothing left to release, and no warning


# -- the process registry (storage/leases.py) behind IrtDatabase ----------------------------


def test_irt_database_keeps_the_lease_open_until_the_run_ends(conn, database_url):
    db = IrtDatabase(url=database_url)
    items = add_items(conn, "bank-a", 1)
    started: list[str] = []
    try:
        run_id = db.start_run(item_bank="bank-a", config=CONFIG, dagster_run_id="d1")
        started.append(run_id)
        (holder,) = lease_holders(conn, run_id)
        (session,) = conn.execute("SELECT application_name FROM pg_stat_activity WHERE pid = %s", (holder,)).fetchone()
        assert session == f"irt-pipeline lease {run_id}"
        assert run_id in leases.held_runs()
        assert fail_stale_runs(conn) == []
        db.publish_calibration(run_id, parameter_frame(items), items_calibrated=1, items_skipped=0,
                               items_flagged=0, convergence_achieved=True, iterations_used=3, elapsed_seconds=1.0)
        assert run_id not in leases.held_runs() and lease_holders(conn, run_id) == []
        assert status(conn, run_id)[0] == "completed"

        other = db.start_run(item_bank="bank-b", config=CONFIG, dagster_run_id="d2")
        started.append(other)
        db.fail_runs_of_dagster_run("d2", "CALIBRATION_FAILED: hook")
        assert other not in leases.held_runs() and lease_holders(conn, other) == []
        third = db.start_run(item_bank="bank-c", config=CONFIG, dagster_run_id="d3")
        started.append(third)
        db.fail_run(third, "INSUFFICIENT_DATA: none")
        assert third not in leases.held_runs() and lease_holders(conn, third) == []
    finally:
        for run in started:
            leases.release(run)


def test_a_lease_of_a_run_ended_elsewhere_is_closed_at_the_next_start(conn, database_url):
    """The failure sensor (another process) failed the run: this process's lease connection of
    it is closed when this process next starts a run, instead of lingering."""
    db = IrtDatabase(url=database_url)
    first = db.start_run(item_bank="bank-a", config=CONFIG, dagster_run_id="d1")
    second = ""
    try:
        storage.fail_runs_of_dagster_run(conn, "d1", "CALIBRATION_FAILED: from the sensor")
        assert first in leases.held_runs()
        second = db.start_run(item_bank="bank-b", config=CONFIG, dagster_run_id="d2")
        assert first not in leases.held_runs() and lease_holders(conn, first) == []
        assert second in leases.held_runs()
    finally:
        leases.release(first)
        leases.release(second)


def test_a_process_that_exits_normally_hands_its_run_over(conn, database_url):
    """The exit handler, in a real child process: what happens at the end of a step that ran in
    its own process while the run goes on in the next step's process."""
    code = (
        "from irt_pipeline.defs.resources import IrtDatabase\n"
        f"print(IrtDatabase(url={database_url!r}).start_run(item_bank='bank-a', config={{}}, dagster_run_id='d1'))\n"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    run_id = child.stdout.strip().splitlines()[-1]
    assert lease_holders(conn, run_id) == []
    run = storage.get_run(conn, run_id)
    assert run["status"] == "running" and run["lease_handed_over_at"] is not None
    assert fail_stale_runs(conn) == []  # alive for the next step
    items = add_items(conn, "bank-a", 1)
    # the next step (another process) publishes: it takes the lease up first
    db = IrtDatabase(url=database_url)
    assert db.publish_calibration(run_id, parameter_frame(items), items_calibrated=1, items_skipped=0,
                                  items_flagged=0, convergence_achieved=True, iterations_used=3,
                                  elapsed_seconds=1.0) == 1
    run = storage.get_run(conn, run_id)
    assert run["status"] == "completed" and run["lease_handed_over_at"] is None
    assert lease_holders(conn, run_id) == []


def test_concurrent_sweepers_and_starts_leave_one_live_run(database_url):
    """Eight sessions sweep and start the same bank at once while the owner of a dead row is gone."""
    with storage.connect(database_url) as dead:
        start(dead)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)
    done = threading.Barrier(8)

    def attempt() -> None:
        with storage.connect(database_url) as own:
            barrier.wait()
            try:
                fail_stale_runs(own)
                outcomes.append(start(own))
            except CalibrationInProgressError:
                outcomes.append("refused")
            done.wait()  # winners keep their session (their lease) until everyone has tried

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("refused") == 7
    with storage.connect(database_url) as conn:
        statuses = [r["status"] for r in storage.runs_of_bank(conn, "bank-a")]
    assert sorted(statuses) == ["failed", "running"]


# -- the sensor ---------------------------------------------------------------------------------


def test_sensor_fails_dead_and_finished_rows_and_keeps_live_ones(conn, database_url, instance, owner):
    @dg.asset
    def nothing() -> int:
        return 1

    finished = dg.materialize([nothing], instance=instance).run_id  # a SUCCESS run in the instance
    with storage.connect(database_url) as step:
        handed = start(step, "bank-finished", dagster_run_id=finished)
        hand_over_run(step, handed)  # within the grace: only the Dagster status shows it is over
        unknown = start(step, "bank-unknown", dagster_run_id="not-in-this-instance")
        hand_over_run(step, unknown)
        dead = start(step, "bank-dead", dagster_run_id=None)  # never handed over: dies with `step`
    live = start(owner, "bank-live", dagster_run_id=finished)  # leased: alive whatever Dagster says

    context = dg.build_sensor_context(instance=instance, resources={RESOURCE_KEY: IrtDatabase(url=database_url)})
    result = stale_calibration_runs_sensor(context)
    assert isinstance(result, dg.SkipReason)
    assert result.skip_message.startswith("marked 2 stale calibration run(s) failed")
    assert status(conn, handed)[0] == "failed" and f"Dagster run {finished} is SUCCESS" in status(conn, handed)[1]
    assert status(conn, dead)[0] == "failed"
    assert status(conn, unknown) == ("running", None)
    assert status(conn, live) == ("running", None)
    again = stale_calibration_runs_sensor(dg.build_sensor_context(
        instance=instance, resources={RESOURCE_KEY: IrtDatabase(url=database_url)}))
    assert again.skip_message == "no stale calibration run"
    assert sweep_stale_runs(instance, IrtDatabase(url=database_url)) == []


def test_sensor_is_part_of_the_code_location():
    from irt_pipeline.definitions import defs

    sensor = defs().resolve_sensor_def("stale_calibration_runs_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds <= 120  # "within minutes"
