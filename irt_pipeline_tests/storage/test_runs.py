"""The audit trail: start (one running run per bank), fail, publish all-or-nothing, read back."""

from __future__ import annotations

import threading
import uuid

import numpy as np
import psycopg
import pytest

from irt_pipeline import storage
from irt_pipeline.errors import CalibrationFailedError, CalibrationInProgressError, ValidationError
from irt_pipeline_tests.storage.helpers import add_items, new_id, parameter_frame, publish

pytestmark = pytest.mark.db

CONFIG = {"min_responses": 100, "max_iterations": 100, "convergence_threshold": 0.001, "model": "3pl"}


def start(conn, bank: str = "bank-a", dagster_run_id: str | None = "dagster-1") -> str:
    return storage.start_run(conn, item_bank=bank, config=CONFIG, dagster_run_id=dagster_run_id)


def count(conn, query: str, *params) -> int:
    return conn.execute(query, params).fetchone()[0]


def test_start_run_records_a_running_row(conn):
    run_id = start(conn)
    run = storage.get_run(conn, run_id)
    assert uuid.UUID(run_id) and run["id"] == run_id
    assert run["status"] == "running" and run["completed_at"] is None and run["error"] is None
    assert run["config"] == CONFIG
    assert (run["item_bank"], run["dagster_run_id"]) == ("bank-a", "dagster-1")
    assert (run["items_calibrated"], run["iterations_used"], run["convergence_achieved"]) == (0, 0, False)


def test_start_run_commits_on_a_non_autocommit_connection(database_url):
    with psycopg.connect(database_url) as own, psycopg.connect(database_url, autocommit=True) as other:
        own.execute("SELECT 1")  # leaves an implicit transaction open
        run_id = storage.start_run(own, item_bank="b", config=CONFIG, dagster_run_id=None)
        assert storage.get_run(other, run_id)["status"] == "running"


def test_second_running_run_of_a_bank_is_refused_and_leaves_nothing(conn):
    first = start(conn)
    with pytest.raises(CalibrationInProgressError) as refused:
        start(conn, dagster_run_id="dagster-2")
    message = str(refused.value)
    assert message.startswith("CALIBRATION_IN_PROGRESS: ")
    assert "'bank-a'" in message and first in message
    assert storage.get_run(conn, first)["started_at"].isoformat() in message
    assert count(conn, "SELECT count(*) FROM irt_calibration_runs") == 1

    other_bank = start(conn, bank="bank-b")
    assert storage.get_run(conn, other_bank)["status"] == "running"


def test_concurrent_starts_of_one_bank_let_exactly_one_run(database_url):
    outcomes: list[str] = []
    barrier = threading.Barrier(4)
    done = threading.Barrier(4)

    def attempt() -> None:
        with storage.connect(database_url) as own:
            barrier.wait()
            try:
                outcomes.append(storage.start_run(own, item_bank="busy", config=CONFIG, dagster_run_id=None))
            except CalibrationInProgressError:
                outcomes.append("refused")
            # the winner's session holds its run's lease: closing it before the others have
            # tried would end that run (a later start then legitimately sweeps it as dead)
            done.wait()

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes).count("refused") == 3


def test_fail_run_ends_a_running_run_once(conn):
    run_id = start(conn)
    assert storage.fail_run(conn, run_id, "CALIBRATION_FAILED: boom") is True
    run = storage.get_run(conn, run_id)
    assert (run["status"], run["error"]) == ("failed", "CALIBRATION_FAILED: boom")
    assert run["completed_at"] >= run["started_at"]
    assert storage.fail_run(conn, run_id, "again") is False
    assert storage.get_run(conn, run_id)["error"] == "CALIBRATION_FAILED: boom"
    assert storage.fail_run(conn, "not-a-uuid", "x") is False
    assert storage.fail_run(conn, new_id(), "x") is False
    start(conn)  # the bank is free again


def test_fail_runs_of_dagster_run_touches_only_its_running_rows(conn):
    items = add_items(conn, "bank-a", 1)
    done = start(conn, bank="bank-a", dagster_run_id="d1")
    publish(conn, done, parameter_frame(items))
    mine = [start(conn, bank=bank, dagster_run_id="d1") for bank in ("bank-a", "bank-b")]
    theirs = start(conn, bank="bank-c", dagster_run_id="d2")

    assert storage.fail_runs_of_dagster_run(conn, "d1", "run worker lost") == 2
    assert [storage.get_run(conn, r)["status"] for r in mine] == ["failed", "failed"]
    assert storage.get_run(conn, done)["status"] == "completed"
    assert storage.get_run(conn, theirs)["status"] == "running"
    assert storage.fail_runs_of_dagster_run(conn, "d1", "again") == 0


def test_publish_writes_every_row_and_completes_the_run(conn):
    items = add_items(conn, "bank-a", 5)
    run_id = start(conn)
    frame = parameter_frame(items, is_flagged=[False, True, False, False, True], response_count=[100, 120, 130, 140, 150])
    assert storage.publish_calibration(
        conn, run_id, frame, items_calibrated=5, items_skipped=3, items_flagged=2,
        convergence_achieved=True, iterations_used=42, elapsed_seconds=12.5) == 5

    rows = conn.execute(
        "SELECT item_id::text, a, b, c, a_se, b_se, c_se, infit_mnsq, outfit_mnsq, is_flagged, response_count,"
        " calibrated_at FROM irt_item_parameters WHERE calibration_run_id = %s ORDER BY b", (run_id,)).fetchall()
    assert [r[0] for r in rows] == items
    assert [r[9] for r in rows] == [False, True, False, False, True]
    assert [r[10] for r in rows] == [100, 120, 130, 140, 150]
    assert np.allclose([r[2] for r in rows], frame["b"])
    assert len({r[11] for r in rows}) == 1  # one calibrated_at for the whole run

    run = storage.get_run(conn, run_id)
    assert run["status"] == "completed" and run["completed_at"] is not None
    assert (run["items_calibrated"], run["items_skipped"], run["items_flagged"]) == (5, 3, 2)
    assert (run["convergence_achieved"], run["iterations_used"], run["elapsed_seconds"]) == (True, 42, 12.5)
    start(conn)  # a completed run no longer holds the bank


INVALID_FRAMES = [
    (lambda f: f.assign(b=[0.0, np.nan, 0.0]), "column b is not a finite number for item {1}"),
    (lambda f: f.assign(outfit_mnsq=[1.0, 1.0, np.inf]), "column outfit_mnsq is not a finite number for item {2}"),
    (lambda f: f.assign(a=["1.0", "x", "1.0"]), "column a is not a finite number for item {1}"),
    (lambda f: f.assign(response_count=[100, 100.5, 100]), "column response_count is not a whole number"),
    (lambda f: f.assign(response_count=[100, 100, -1]), "for item {2}"),
    (lambda f: f.assign(is_flagged=[True, None, False]), "column is_flagged is not a boolean for item {1}"),
    (lambda f: f.drop(columns=["c_se", "infit_mnsq"]), "lack column(s) c_se, infit_mnsq"),
    (lambda f: f.assign(item_id=[f.item_id[0], "item-001", f.item_id[2]]), "item_id is not a UUID: 'item-001'"),
    (lambda f: f.assign(item_id=[f.item_id[0], f.item_id[0], f.item_id[2]]), "item {0} twice"),
    (lambda f: f.assign(item_id=[f.item_id[0], f.item_id[1], "6f1c2b1e-0000-4000-8000-000000000000"]),
     "unknown item"),
]


def test_publish_writes_nothing_when_a_row_is_invalid(conn):
    items = add_items(conn, "bank-a", 3)
    run_id = start(conn)
    for break_frame, named in INVALID_FRAMES:
        with pytest.raises(ValidationError) as invalid:
            publish(conn, run_id, break_frame(parameter_frame(items)))
        assert named.format(*items) in str(invalid.value)
        assert count(conn, "SELECT count(*) FROM irt_item_parameters") == 0
        assert storage.get_run(conn, run_id)["status"] == "running"


@pytest.mark.parametrize("end_run", ["fail", "complete"])
def test_publish_writes_nothing_when_the_run_is_not_running(conn, end_run):
    items = add_items(conn, "bank-a", 2)
    run_id = start(conn)
    if end_run == "fail":
        storage.fail_run(conn, run_id, "CALIBRATION_FAILED: cancelled")
    else:
        publish(conn, run_id, parameter_frame(items[:1]))
    with pytest.raises(CalibrationFailedError, match="not running"):
        publish(conn, run_id, parameter_frame(items))
    assert count(conn, "SELECT count(*) FROM irt_item_parameters") == (0 if end_run == "fail" else 1)
    assert storage.get_run(conn, run_id)["status"] == ("failed" if end_run == "fail" else "completed")


def test_publish_to_unknown_or_malformed_run(conn):
    items = add_items(conn, "bank-a", 1)
    with pytest.raises(CalibrationFailedError, match="does not exist"):
        publish(conn, new_id(), parameter_frame(items))
    with pytest.raises(ValidationError, match="calibration run id is not a UUID: 'run-uuid-1'"):
        publish(conn, "run-uuid-1", parameter_frame(items))


def test_publish_replaces_rows_an_earlier_attempt_left(conn):
    items = add_items(conn, "bank-a", 3)
    run_id = start(conn)
    conn.execute(
        "INSERT INTO irt_item_parameters (item_id, calibration_run_id, a, b, c, a_se, b_se, c_se, infit_mnsq,"
        " outfit_mnsq, response_count) VALUES (%s, %s, 9, 9, 0.1, 1, 1, 1, 1, 1, 1)", (items[0], run_id))
    assert publish(conn, run_id, parameter_frame(items)) == 3
    assert conn.execute("SELECT count(*), max(a) FROM irt_item_parameters").fetchone() == (3, 1.2)


def test_publish_of_1000_rows_is_fast(conn):
    import time

    items = add_items(conn, "bank-a", 1000)
    run_id = start(conn)
    started = time.perf_counter()
    assert publish(conn, run_id, parameter_frame(items)) == 1000
    assert time.perf_counter() - started < 0.5


def test_runs_of_bank_newest_first(conn):
    first = start(conn)
    storage.fail_run(conn, first, "x")
    second = start(conn)
    start(conn, bank="bank-b")
    runs = storage.runs_of_bank(conn, "bank-a")
    assert [r["id"] for r in runs] == [second, first]
    assert runs[0]["config"] == CONFIG
    assert storage.runs_of_bank(conn, "nothing") == []


def test_get_run_of_unknown_or_malformed_id_is_none(conn):
    assert storage.get_run(conn, new_id()) is None
    assert storage.get_run(conn, "run-uuid-1") is None
