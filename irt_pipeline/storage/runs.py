"""The calibration audit trail: one `irt_calibration_runs` row per run, from start to end.

Leases: who owns a `running` row
--------------------------------
`start_run` takes a session-level advisory lock keyed by the new run's id (the "lease") on the
caller's connection, in the transaction that inserts the row, so the row is never visible
without its lock. PostgreSQL releases the lock when that session ends for any reason, SIGKILL of
the client included, so a running row whose lock nobody holds has lost its owner. The lease ends
with the run: `publish_calibration` and `fail_run` release it on their connection; closing the
connection releases it too. A run that continues in another process (Dagster runs each step in
its own process under the multiprocess executor) calls `hand_over_run` at the end of the step:
the row records the hand-over time and stays alive for a grace period without a lock.

`fail_stale_runs` (the sweeper) marks failed the running rows that are provably dead: no session
holds the lease and either the owner died holding it (no hand-over), the hand-over is older than
the grace period, or the caller knows the orchestrator run is finished. Rows older than the
maximum runtime are failed even while leased (a hung run); their owner's publication is then
refused. A row being published (locked by its writer) is never touched. `start_run` sweeps the
bank's dead rows before giving up with CALIBRATION_IN_PROGRESS, so a dead run never blocks the
next one; a periodic sensor (irt_pipeline/defs/operations/stale_runs.py) sweeps every bank.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from irt_pipeline.errors import CalibrationFailedError, CalibrationInProgressError, ValidationError
from irt_pipeline.storage._ids import parse_uuid, uuid_or_none
from irt_pipeline.storage._tx import committed_transaction
from irt_pipeline.storage.abilities import write_abilities
from irt_pipeline.storage.parameter_frame import WRITTEN_COLUMNS, WRITTEN_TYPES, validated_rows
from irt_pipeline.storage.scale import current_scale_run

_ONE_RUNNING_PER_BANK = "idx_irt_runs_one_running_per_bank"

# Advisory-lock namespace of run leases: pg_advisory_lock(LEASE_NAMESPACE, lease_key(run id)).
# In pg_locks: locktype 'advisory', classid = LEASE_NAMESPACE, objid = the key, objsubid = 2.
LEASE_NAMESPACE = 0x49525443  # "IRTC"
# A row handed over between steps stays alive this long without a lock (the next step's process
# start-up and input loading happen in between; minutes are generous for both).
HANDOVER_GRACE_SECONDS = 300.0
# A running row older than this is failed even while its lease is held (a hung run): twice the
# calibration job's dagster/max_runtime tag (3600 s), after which run monitoring stops the run.
MAX_RUNTIME_SECONDS = 7200.0
# While publishing, the server checks this often whether the client is still there (PostgreSQL
# 14+), so the transaction of a killed writer ends within about a second even while it waits
# for a lock, instead of lingering (and holding the run row) until it next talks to the client.
CLIENT_CHECK_INTERVAL = "1s"
_PUBLISH_APPLICATION_NAME = "irt-pipeline publish {run}"


@dataclass(frozen=True)
class ScaleRecord:
    """How a run was put on its bank's scale (the run-row columns of migration 0005)."""

    method: str                  # 'initial', 'stocking_lord' or 'none'
    scale_run_id: str | None     # the run that defined the scale; None: this run itself
    theta_mean: float            # B: the run's students' mean on the bank scale
    theta_sd: float              # A: their standard deviation on the bank scale
    anchor_items: int = 0
    drifted_items: int = 0


@dataclass(frozen=True)
class AbilityRows:
    """Student abilities of a run, one entry per student (storage/abilities.py writes them)."""

    student_ids: Sequence[str]
    theta: np.ndarray
    theta_se: np.ndarray
    response_counts: np.ndarray


def lease_key(run_id: str | uuid.UUID) -> int:
    """The second advisory-lock key of a run's lease: 31 bits of its id (a non-negative int4)."""
    run = run_id if isinstance(run_id, uuid.UUID) else uuid.UUID(str(run_id))
    return int.from_bytes(run.bytes[:4], "big") & 0x7FFFFFFF


def start_run(
    conn: psycopg.Connection,
    *,
    item_bank: str,
    config: Mapping[str, Any],
    dagster_run_id: str | None,
    data_watermark: int | None = None,
    data_read_at: datetime | None = None,
    handover_grace_seconds: float = HANDOVER_GRACE_SECONDS,
    max_runtime_seconds: float | None = MAX_RUNTIME_SECONDS,
) -> str:
    """Insert and commit a 'running' row for the bank; return its id. `conn`'s session holds the
    run's lease from then on (see the module docstring): keep it open while the run is alive.
    `data_watermark` / `data_read_at` describe the snapshot the run read (attempts.BankSnapshot).

    When the bank already has a running row, the bank's dead rows are swept (`fail_stale_runs`)
    and the insert is tried once more; if a live run remains, raises CalibrationInProgressError
    and leaves nothing behind (the partial unique index on item_bank refuses the row).
    """
    for attempt in range(2):
        try:
            return _insert_running_row(conn, item_bank, config, dagster_run_id, data_watermark, data_read_at)
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name != _ONE_RUNNING_PER_BANK:
                raise
        if attempt == 0 and fail_stale_runs(
            conn, item_bank=item_bank, handover_grace_seconds=handover_grace_seconds,
            max_runtime_seconds=max_runtime_seconds,
        ):
            continue
        break
    running = conn.execute(
        "SELECT id, started_at FROM irt_calibration_runs WHERE item_bank = %s AND status = 'running'",
        (item_bank,),
    ).fetchone()
    holder = f"run {running[0]}, started {running[1].isoformat()}" if running else "a run that just ended"
    raise CalibrationInProgressError(
        f"a calibration of item bank {item_bank!r} is already running ({holder})"
    )


def _insert_running_row(
    conn: psycopg.Connection, item_bank: str, config: Mapping[str, Any], dagster_run_id: str | None,
    data_watermark: int | None, data_read_at: datetime | None,
) -> str:
    run = uuid.uuid4()
    try:
        with committed_transaction(conn):
            # the lock first: once the row is visible (at commit), its lease is already held
            conn.execute("SELECT pg_advisory_lock(%s, %s)", (LEASE_NAMESPACE, lease_key(run)))
            conn.execute(
                "INSERT INTO irt_calibration_runs (id, item_bank, config, dagster_run_id, data_watermark,"
                " data_read_at) VALUES (%s, %s, %s, %s, %s, %s)",
                (run, item_bank, Jsonb(dict(config)), dagster_run_id, data_watermark, data_read_at),
            )
    except BaseException:
        if not conn.closed:
            release_lease(conn, run)  # a session lock outlives the rolled-back transaction
        raise
    return str(run)


def release_lease(conn: psycopg.Connection, run_id: str | uuid.UUID) -> bool:
    """Release the run's lease if this session holds it; True when it did."""
    run = uuid_or_none(run_id)
    if run is None or conn.closed or conn.broken:
        return False
    with committed_transaction(conn):  # no transaction left open on a non-autocommit connection
        row = conn.execute(
            "SELECT pg_advisory_unlock(%(ns)s, %(key)s) FROM pg_locks WHERE locktype = 'advisory'"
            " AND pid = pg_backend_pid() AND granted AND objsubid = 2 AND classid = %(ns)s::bigint::oid"
            " AND objid = %(key)s::bigint::oid",
            {"ns": LEASE_NAMESPACE, "key": lease_key(run)},
        ).fetchone()
    return bool(row and row[0])


def hand_over_run(conn: psycopg.Connection, run_id: str) -> bool:
    """End this process's part of a still-running run that another process will continue: stamp
    the hand-over time and release the lease. True when the row was still running."""
    run = uuid_or_none(run_id)
    if run is None:
        return False
    with committed_transaction(conn):
        cur = conn.execute(
            "UPDATE irt_calibration_runs SET lease_handed_over_at = now() WHERE id = %s AND status = 'running'",
            (run,),
        )
    release_lease(conn, run)
    return cur.rowcount == 1


def resume_run(conn: psycopg.Connection, run_id: str) -> None:
    """Take up a run another process handed over: `conn`'s session becomes the lease holder and
    the hand-over stamp is cleared. CalibrationFailedError when another live session holds the
    lease, or the run is not running any more (e.g. failed by the sweeper meanwhile)."""
    run = parse_uuid(run_id, "calibration run id")
    with committed_transaction(conn):
        (locked,) = conn.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (LEASE_NAMESPACE, lease_key(run))
        ).fetchone()
    if not locked:
        raise CalibrationFailedError(
            f"calibration run {run} is held by another live process; this one does not take it over"
        )
    try:
        with committed_transaction(conn):
            _lock_running_run(conn, run)
            conn.execute("UPDATE irt_calibration_runs SET lease_handed_over_at = NULL WHERE id = %s", (run,))
    except BaseException:
        if not conn.closed and not conn.broken:
            release_lease(conn, run)
        raise


def fail_stale_runs(
    conn: psycopg.Connection,
    *,
    item_bank: str | None = None,
    handover_grace_seconds: float = HANDOVER_GRACE_SECONDS,
    max_runtime_seconds: float | None = MAX_RUNTIME_SECONDS,
    finished_dagster_runs: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Mark failed the running rows (of `item_bank`, or of every bank) whose owner is provably
    gone; return them as dicts (id, item_bank, dagster_run_id, error).

    A running row is failed when no session holds its lease and
      * its owner never handed it over (the process or its connection died during a step), or
      * it was handed over more than `handover_grace_seconds` ago and no step took it up, or
      * its Dagster run is in `finished_dagster_runs` (run id -> status name, from the caller's
        Dagster instance: SUCCESS, FAILURE or CANCELED);
    or, leased or not, when it started more than `max_runtime_seconds` ago (None: never).
    Rows locked by a writer (a publication in progress) are skipped, never waited for.
    """
    finished = dict(finished_dagster_runs or {})
    failed: list[dict[str, Any]] = []
    with committed_transaction(conn):
        rows = conn.execute(
            "SELECT id, item_bank, dagster_run_id, lease_handed_over_at IS NOT NULL,"
            " extract(epoch FROM now() - started_at)::float8,"
            " extract(epoch FROM now() - lease_handed_over_at)::float8"
            " FROM irt_calibration_runs WHERE status = 'running' AND (%(bank)s::text IS NULL OR item_bank = %(bank)s)"
            " ORDER BY started_at FOR UPDATE SKIP LOCKED",
            {"bank": item_bank},
        ).fetchall()
        if not rows:
            return []
        leased = {
            int(key) for (key,) in conn.execute(
                "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2"
                " AND classid = %s::bigint::oid"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                (LEASE_NAMESPACE,),
            )
        }
        for run, bank, dagster_run_id, handed_over, age, since_handover in rows:
            reason = _stale_reason(
                held=lease_key(run) in leased, handed_over=handed_over, age=age,
                since_handover=since_handover, dagster_status=finished.get(dagster_run_id or ""),
                dagster_run_id=dagster_run_id, grace=handover_grace_seconds, max_runtime=max_runtime_seconds,
            )
            if reason is None:
                continue
            error = f"{CalibrationFailedError.code}: {reason}; marked failed by the stale-run sweeper"
            conn.execute(
                "UPDATE irt_calibration_runs SET status = 'failed', completed_at = now(), error = %s WHERE id = %s",
                (error, run),
            )
            failed.append({"id": str(run), "item_bank": bank, "dagster_run_id": dagster_run_id, "error": error})
    return failed


def _stale_reason(
    *, held: bool, handed_over: bool, age: float, since_handover: float | None, dagster_status: str | None,
    dagster_run_id: str | None, grace: float, max_runtime: float | None,
) -> str | None:
    if max_runtime is not None and age > max_runtime:
        return f"still running after {age:.0f} s, beyond the maximum runtime of {max_runtime:.0f} s"
    if held:
        return None
    if dagster_status is not None:
        return f"its Dagster run {dagster_run_id} is {dagster_status} and no process holds the run"
    if not handed_over:
        return "the process running it ended without completing or failing it (its database session is gone)"
    if since_handover is not None and since_handover > grace:
        return f"handed over between steps {since_handover:.0f} s ago and not taken up within {grace:.0f} s"
    return None


def running_runs(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every running row (same shape as `get_run`), oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT * FROM irt_calibration_runs WHERE status = 'running' ORDER BY started_at").fetchall()
    return [_run_dict(row) for row in rows]


def fail_run(conn: psycopg.Connection, run_id: str, error: str) -> bool:
    """Mark the run failed with `error` if it is still running; True when it was. Releases the
    run's lease if this session holds it."""
    run = uuid_or_none(run_id)
    if run is None:
        return False
    with committed_transaction(conn):
        cur = conn.execute(
            "UPDATE irt_calibration_runs SET status = 'failed', completed_at = now(), error = %s"
            " WHERE id = %s AND status = 'running'",
            (error, run),
        )
    release_lease(conn, run)
    return cur.rowcount == 1


def fail_runs_of_dagster_run(conn: psycopg.Connection, dagster_run_id: str, error: str) -> int:
    """Mark every still-running row of that Dagster run failed; return how many."""
    with committed_transaction(conn):
        cur = conn.execute(
            "UPDATE irt_calibration_runs SET status = 'failed', completed_at = now(), error = %s"
            " WHERE dagster_run_id = %s AND status = 'running' RETURNING id",
            (error, dagster_run_id),
        )
        failed = [run for (run,) in cur.fetchall()]
    for run in failed:
        release_lease(conn, run)
    return len(failed)


def publish_calibration(
    conn: psycopg.Connection,
    run_id: str,
    parameters: pd.DataFrame,
    *,
    items_calibrated: int,
    items_skipped: int,
    items_flagged: int,
    convergence_achieved: bool,
    iterations_used: int,
    elapsed_seconds: float,
    scale: ScaleRecord | None = None,
    abilities: AbilityRows | None = None,
) -> int:
    """Write the run's parameter rows (and student abilities) and complete the run, in one
    transaction; return the parameter row count.

    All or nothing: an invalid frame (ValidationError) writes nothing, and so does a run that is
    not 'running' any more (CalibrationFailedError). Rows a previous attempt of the same run wrote
    are replaced. Refused (CALIBRATION_FAILED, nothing written): a run older in data than a
    completed run of its bank (a higher data watermark: no stale publish), and a linked run
    whose bank scale changed since it was linked. `scale` records how the run was put on the
    bank scale (None: nothing recorded, as before migration 0005); `abilities` are written in the
    same transaction. Every row gets the same calibrated_at (now(), the transaction's start). A lost
    connection (server restart, pg_terminate_backend, network) raises CalibrationFailedError
    saying so; the server rolls the transaction back. While it runs, the writer's session is
    named ``irt-pipeline publish <run id>`` in pg_stat_activity. The run's lease is released
    when this session holds it.
    """
    run = parse_uuid(run_id, "calibration run id")
    rows = validated_rows(parameters)
    if not math.isfinite(elapsed_seconds):
        raise ValidationError(f"elapsed_seconds is not a finite number: {elapsed_seconds!r}")
    committing = False
    try:
        with committed_transaction(conn):
            conn.execute("SELECT set_config('application_name', %s, true)",
                         (_PUBLISH_APPLICATION_NAME.format(run=run),))
            if conn.info.server_version >= 140000:
                conn.execute("SELECT set_config('client_connection_check_interval', %s, true)",
                             (CLIENT_CHECK_INTERVAL,))
            item_bank = _lock_running_run(conn, run)
            _refuse_stale(conn, run, item_bank, scale)
            conn.execute("DELETE FROM irt_item_parameters WHERE calibration_run_id = %s", (run,))
            _copy_parameters(conn, run, rows)
            if abilities is not None:
                write_abilities(conn, run, item_bank, abilities.student_ids, abilities.theta,
                                abilities.theta_se, abilities.response_counts)
            conn.execute(
                "UPDATE irt_calibration_runs SET status = 'completed', completed_at = now(),"
                " items_calibrated = %s, items_skipped = %s, items_flagged = %s,"
                " convergence_achieved = %s, iterations_used = %s, elapsed_seconds = %s,"
                " lease_handed_over_at = NULL WHERE id = %s",
                (items_calibrated, items_skipped, items_flagged, convergence_achieved,
                 iterations_used, elapsed_seconds, run),
            )
            if scale is not None:
                conn.execute(
                    "UPDATE irt_calibration_runs SET linking_method = %s, scale_run_id = coalesce(%s, id),"
                    " theta_mean = %s, theta_sd = %s, anchor_items = %s, drifted_items = %s WHERE id = %s",
                    (scale.method, uuid_or_none(scale.scale_run_id), scale.theta_mean, scale.theta_sd,
                     scale.anchor_items, scale.drifted_items, run),
                )
            committing = True
    except psycopg.errors.ForeignKeyViolation as exc:
        raise ValidationError(f"parameters name an unknown item: {exc.diag.message_detail}") from None
    except psycopg.OperationalError as exc:
        if conn.closed or conn.broken:
            outcome = (
                "the commit was sent, so the outcome is unknown: the run row's status tells "
                "(completed: published; running or failed: nothing was written)"
                if committing else
                "the server rolled the transaction back: none of its parameter rows was written"
            )
            detail = " ".join(str(exc).split())
            raise CalibrationFailedError(
                f"the database connection was lost while publishing calibration run {run} ({outcome}): {detail}"
            ) from exc
        raise
    release_lease(conn, run)
    return len(rows)


def _lock_running_run(conn: psycopg.Connection, run: uuid.UUID) -> str:
    """Lock the run row until commit; CalibrationFailedError unless it is 'running'. Returns
    the run's item bank."""
    row = conn.execute(
        "SELECT status, item_bank FROM irt_calibration_runs WHERE id = %s FOR UPDATE", (run,)
    ).fetchone()
    if row is None:
        raise CalibrationFailedError(f"calibration run {run} does not exist; nothing was published")
    if row[0] != "running":
        raise CalibrationFailedError(
            f"calibration run {run} is {row[0]}, not running; its parameters were not published "
            "(a run's row is published once; to calibrate again, start a new run or re-execute every step)"
        )
    return row[1]


def _refuse_stale(conn: psycopg.Connection, run: uuid.UUID, item_bank: str, scale: ScaleRecord | None) -> None:
    """CalibrationFailedError when a completed run of the bank read newer data than this run, or
    (for a linked run) when the bank's scale is no longer the one the run was linked to."""
    newer = conn.execute(
        "SELECT o.id, o.data_watermark, r.data_watermark FROM irt_calibration_runs r"
        " JOIN irt_calibration_runs o ON o.item_bank = r.item_bank AND o.status = 'completed'"
        " AND o.data_watermark > coalesce(r.data_watermark, -1)"
        " WHERE r.id = %s ORDER BY o.data_watermark DESC LIMIT 1",
        (run,),
    ).fetchone()
    if newer is not None:
        raise CalibrationFailedError(
            f"calibration run {run} read the attempts of bank {item_bank!r} up to id {newer[2]}, but completed "
            f"run {newer[0]} read newer data (up to id {newer[1]}); publishing would make older data the "
            "bank's latest parameters, so nothing was published (calibrate again from response_matrix)"
        )
    if scale is not None and scale.method == "stocking_lord":
        current = current_scale_run(conn, item_bank)
        if current != str(scale.scale_run_id):
            raise CalibrationFailedError(
                f"calibration run {run} was linked to the scale of run {scale.scale_run_id}, but bank "
                f"{item_bank!r} is now on the scale of run {current}; nothing was published (calibrate again)"
            )


def _copy_parameters(conn: psycopg.Connection, run: uuid.UUID, rows: list[tuple]) -> None:
    query = sql.SQL("COPY irt_item_parameters ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.SQL(", ").join(map(sql.Identifier, ("calibration_run_id", *WRITTEN_COLUMNS)))
    )
    with conn.cursor() as cur, cur.copy(query) as copy:
        copy.set_types(["uuid", *WRITTEN_TYPES])
        for row in rows:
            copy.write_row((run, *row))


def get_run(conn: psycopg.Connection, run_id: str) -> dict[str, Any] | None:
    """Every column of the run (id as str, config as dict), or None when there is no such run."""
    run = uuid_or_none(run_id)
    if run is None:
        return None
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM irt_calibration_runs WHERE id = %s", (run,)).fetchone()
    return _run_dict(row) if row else None


def runs_of_bank(conn: psycopg.Connection, item_bank: str) -> list[dict[str, Any]]:
    """Every run of the bank, newest first (same shape as `get_run`)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM irt_calibration_runs WHERE item_bank = %s ORDER BY started_at DESC, created_at DESC",
            (item_bank,),
        ).fetchall()
    return [_run_dict(row) for row in rows]


def _run_dict(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "id": str(row["id"])}
