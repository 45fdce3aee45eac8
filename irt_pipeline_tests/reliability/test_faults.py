"""Faults (issue 5, point 2): a run process SIGKILLed during the calibration and during the
write, the database connection terminated during the write, and re-execution afterwards.

Expected every time: no parameter row of the broken run, its audit row `failed` (by the next
run's sweep or by the stale-run sensor), the next run of the bank not blocked, and exactly one
set of parameters from the run that succeeds.
"""

from __future__ import annotations

import threading
import time

import dagster as dg
import pytest

from irt_pipeline import storage
from irt_pipeline.defs.calibration.jobs import JOB_NAME
from irt_pipeline.defs.operations.stale_runs import stale_calibration_runs_sensor
from irt_pipeline.defs.resources import RESOURCE_KEY, IrtDatabase
from irt_pipeline.errors import CalibrationFailedError
from irt_pipeline.storage.runs import LEASE_NAMESPACE, fail_stale_runs, lease_key
from irt_pipeline_tests.defs.conftest import item_uuid, load_standard_bank, parameter_rows, query, runs
from irt_pipeline_tests.reliability.conftest import CliProcess, TableLock, calibrate, sessions, wait_for
from irt_pipeline_tests.storage.helpers import add_items, parameter_frame, publish

pytestmark = pytest.mark.db


def calibration_job_from_the_code_location() -> dg.JobDefinition:
    """The job as a deployment loads it (module-level, so that Dagster can reconstruct it)."""
    from irt_pipeline.definitions import defs

    return defs().resolve_job_def(JOB_NAME)


def lease_is_held(database_url: str, run_id: str) -> bool:
    return bool(query(
        database_url,
        "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2"
        " AND classid = %s::bigint::oid AND objid = %s::bigint::oid",
        [LEASE_NAMESPACE, lease_key(run_id)],
    ))


def blocked_writer(database_url: str) -> dict | None:
    """The pipeline's publishing session, once it waits for the test's table lock."""
    for session in sessions(database_url, "irt-pipeline publish %"):
        if session["wait_event_type"] == "Lock":
            return session
    return None


def assert_exactly_one_set(database_url: str, bank, run_id: str) -> None:
    """The run is completed and the bank's parameters are exactly one row per eligible item, all
    of that run; the latest view serves each of them once."""
    (row,) = [r for r in runs(database_url, bank.name) if r["status"] == "completed"]
    assert str(row["id"]) == run_id and row["items_calibrated"] == len(bank.eligible)
    rows = parameter_rows(database_url)
    assert len(rows) == len(bank.eligible)
    assert {str(r["calibration_run_id"]) for r in rows} == {run_id}
    assert {str(r["item_id"]) for r in rows} == bank.eligible_ids
    latest = query(database_url, "SELECT item_id::text, calibration_run_id::text FROM irt_item_parameters_latest")
    assert sorted(r["item_id"] for r in latest) == sorted(bank.eligible_ids)
    assert {r["calibration_run_id"] for r in latest} == {run_id}


# -- (a) SIGKILL -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigkill_during_the_calibration_then_the_next_run_sweeps_it(database_url, instance, tmp_path, cli_processes):
    bank = load_standard_bank(database_url)
    child = CliProcess(["calibrate", "--bank", bank.name], database_url=database_url,
                       dagster_home=tmp_path / "dagster_home", slow_em=0.3)
    cli_processes.append(child)
    wait_for(lambda: child.saw("EM iteration 5/"), 120, "the EM to reach iteration 5")
    (row,) = runs(database_url, bank.name)
    assert row["status"] == "running" and lease_is_held(database_url, str(row["id"]))

    child.kill()
    killed = str(row["id"])
    wait_for(lambda: not lease_is_held(database_url, killed), 10, "the server to end the killed session")
    assert parameter_rows(database_url) == []
    assert runs(database_url, bank.name)[0]["status"] == "running"  # nobody has looked yet

    code, out, err = calibrate(database_url, instance, bank.name)  # not blocked
    assert code == 0, err
    rows = {str(r["id"]): r for r in runs(database_url, bank.name)}
    assert rows[killed]["status"] == "failed" and rows[killed]["completed_at"] is not None
    assert rows[killed]["error"].startswith(
        "CALIBRATION_FAILED: the process running it ended without completing or failing it")
    (new_run,) = [run for run in rows if run != killed]
    assert_exactly_one_set(database_url, bank, new_run)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigkill_during_the_write_then_the_sensor_fails_it(database_url, instance, tmp_path, cli_processes, table_locks):
    bank = load_standard_bank(database_url)
    lock = TableLock(database_url, "irt_item_parameters")  # publish_calibration will wait for it
    table_locks.append(lock)
    home = tmp_path / "dagster_home"
    child = CliProcess(["calibrate", "--bank", bank.name], database_url=database_url, dagster_home=home)
    cli_processes.append(child)
    writer = wait_for(lambda: blocked_writer(database_url), 120, "the writer to block on the table lock")
    (row,) = runs(database_url, bank.name)
    killed = str(row["id"])
    assert writer["application_name"] == f"irt-pipeline publish {killed}"

    child.kill()
    # the killed writer's transaction ends by itself within seconds, although it waits for a
    # lock (client_connection_check_interval); nothing of it is committed
    wait_for(lambda: not sessions(database_url, "irt-pipeline%"), 15, "the killed writer's session to end")
    lock.release()
    assert parameter_rows(database_url) == []
    assert runs(database_url, bank.name)[0]["status"] == "running"

    # the sensor, as the daemon runs it, with the killed CLI's own instance (where the Dagster
    # run still looks STARTED: the lease, not the Dagster status, tells that it is dead)
    with dg.DagsterInstance.from_config(str(home)) as cli_instance:
        (dagster_run,) = cli_instance.get_runs()
        assert dagster_run.status == dg.DagsterRunStatus.STARTED
        context = dg.build_sensor_context(instance=cli_instance,
                                          resources={RESOURCE_KEY: IrtDatabase(url=database_url)})
        result = stale_calibration_runs_sensor(context)
    assert killed in result.skip_message
    (row,) = runs(database_url, bank.name)
    assert row["status"] == "failed" and "ended without completing or failing it" in row["error"]

    code, _, err = calibrate(database_url, instance, bank.name)
    assert code == 0, err
    (done,) = [r for r in runs(database_url, bank.name) if r["status"] == "completed"]
    assert_exactly_one_set(database_url, bank, str(done["id"]))


# -- (b) the connection terminated during the write, (c) re-execution -----------------------


def test_terminated_connection_during_the_write_rolls_back_and_reexecution_writes_one_set(
    database_url, instance, table_locks, monkeypatch
):
    bank = load_standard_bank(database_url)
    lock = TableLock(database_url, "irt_item_parameters")
    table_locks.append(lock)
    outcome: dict = {}
    worker = threading.Thread(target=lambda: outcome.update(zip(("code", "out", "err"),
                                                                calibrate(database_url, instance, bank.name))))
    worker.start()
    writer = wait_for(lambda: blocked_writer(database_url), 60, "the writer to block on the table lock")
    assert query(database_url, "SELECT pg_terminate_backend(%s) AS done", [writer["pid"]]) == [{"done": True}]
    lock.release()
    worker.join(timeout=60)

    assert outcome["code"] == 1
    first_line = outcome["err"].splitlines()[0]
    assert first_line.startswith("CALIBRATION_FAILED: the database connection was lost while publishing calibration run")
    assert "the server rolled the transaction back: none of its parameter rows was written" in first_line
    (row,) = runs(database_url, bank.name)
    assert row["status"] == "failed" and row["error"] == first_line  # the failure hook recorded it
    assert parameter_rows(database_url) == []
    (failed_run,) = instance.get_runs()
    assert failed_run.status == dg.DagsterRunStatus.FAILURE

    monkeypatch.setenv("IRT_DATABASE_URL", database_url)
    job = dg.reconstructable(calibration_job_from_the_code_location)
    run_config = {**failed_run.run_config, "execution": {"config": {"in_process": {}}}}

    # re-execution from the failure re-runs supabase_writes only, with the failed run's values:
    # refused (its audit row is failed), nothing written
    from_failure = dg.execute_job(
        job, instance=instance, run_config=run_config, tags=failed_run.tags,
        reexecution_options=dg.ReexecutionOptions.from_failure(failed_run.run_id, instance),
    )
    assert not from_failure.success
    assert [e.step_key for e in from_failure.get_step_failure_events()] == ["supabase_writes"]
    assert "is failed, not running; its parameters were not published" in str(
        from_failure.get_step_failure_events()[0].step_failure_data.error.cause)
    assert parameter_rows(database_url) == [] and len(runs(database_url, bank.name)) == 1

    # re-execution of every step: a new calibration under a new audit row, one set of parameters
    again = dg.execute_job(
        job, instance=instance, run_config=run_config, tags=failed_run.tags,
        reexecution_options=dg.ReexecutionOptions(parent_run_id=failed_run.run_id),
    )
    assert again.success
    (done,) = [r for r in runs(database_url, bank.name) if r["status"] == "completed"]
    assert done["dagster_run_id"] == again.run_id
    assert_exactly_one_set(database_url, bank, str(done["id"]))
    # and once more: each run has its own set, the view serves the newest once per item
    assert dg.execute_job(job, instance=instance, run_config=run_config, tags=failed_run.tags,
                          reexecution_options=dg.ReexecutionOptions(parent_run_id=again.run_id)).success
    newest = max((r for r in runs(database_url, bank.name) if r["status"] == "completed"),
                 key=lambda r: r["started_at"])
    latest = query(database_url, "SELECT calibration_run_id FROM irt_item_parameters_latest")
    assert len(latest) == len(bank.eligible) and {r["calibration_run_id"] for r in latest} == {newest["id"]}
    assert len(parameter_rows(database_url, str(newest["id"]))) == len(bank.eligible)


def test_a_publish_retried_after_a_lost_connection_writes_one_set(conn, database_url, table_locks):
    """Storage level: the lost transaction left nothing; a retry of the same run replaces, never
    adds (DELETE + COPY in one transaction); a completed run refuses a second publication."""
    items = add_items(conn, "bank-a", 4)
    run_id = storage.start_run(conn, item_bank="bank-a", config={"model": "3pl"}, dagster_run_id=None)
    lock = TableLock(database_url, "irt_item_parameters")
    table_locks.append(lock)
    failure: list[BaseException] = []

    def writer() -> None:
        with storage.connect(database_url) as own:
            try:
                publish(own, run_id, parameter_frame(items))
            except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
                failure.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    blocked = wait_for(lambda: blocked_writer(database_url), 30, "the writer to block")
    query(database_url, "SELECT pg_terminate_backend(%s)", [blocked["pid"]])
    lock.release()
    thread.join(timeout=30)
    (error,) = failure
    assert isinstance(error, CalibrationFailedError) and "connection was lost" in str(error)
    assert conn.execute("SELECT count(*) FROM irt_item_parameters").fetchone() == (0,)
    assert storage.get_run(conn, run_id)["status"] == "running"  # the lease (conn) is alive
    assert fail_stale_runs(conn) == []

    assert publish(conn, run_id, parameter_frame(items)) == 4
    with pytest.raises(CalibrationFailedError, match="is completed, not running"):
        publish(conn, run_id, parameter_frame(items))
    assert conn.execute("SELECT count(*), count(DISTINCT item_id) FROM irt_item_parameters").fetchone() == (4, 4)


# -- a live run under the multiprocess executor is never swept --------------------------------


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_live_multiprocess_run_is_never_swept(database_url, instance, monkeypatch):
    """Each step in its own process (as under the daemon): item_parameters' process hands the run
    over when it exits, supabase_writes' process takes it up; a sweeper running all the while
    (default grace) never fails it, and the second half of the run is seen handed over."""
    bank = load_standard_bank(database_url)
    monkeypatch.setenv("IRT_DATABASE_URL", database_url)
    instance.add_dynamic_partitions("item_bank", [bank.name])
    seen: list[tuple[str, bool]] = []
    swept: list[dict] = []
    stop = threading.Event()

    def sweeper() -> None:
        with storage.connect(database_url) as own:
            while not stop.is_set():
                swept.extend(fail_stale_runs(own))
                for row in storage.runs.running_runs(own):
                    seen.append((row["id"], row["lease_handed_over_at"] is not None))
                time.sleep(0.05)

    thread = threading.Thread(target=sweeper)
    thread.start()
    try:
        result = dg.execute_job(
            dg.reconstructable(calibration_job_from_the_code_location), instance=instance,
            tags={"dagster/partition": bank.name},
            run_config={"execution": {"config": {"multiprocess": {"max_concurrent": 1}}}},
        )
    finally:
        stop.set()
        thread.join(timeout=30)
    assert result.success
    assert swept == []
    (row,) = runs(database_url, bank.name)
    assert row["status"] == "completed" and row["lease_handed_over_at"] is None
    assert (str(row["id"]), True) in seen  # handed over between item_parameters and supabase_writes
    assert len(parameter_rows(database_url)) == len(bank.eligible)
    assert item_uuid(bank.misfit) in {str(r["item_id"]) for r in parameter_rows(database_url)}
