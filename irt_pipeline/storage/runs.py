"""The calibration audit trail: one `irt_calibration_runs` row per run, from start to end."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from irt_pipeline.errors import CalibrationFailedError, CalibrationInProgressError, ValidationError
from irt_pipeline.storage._ids import parse_uuid, uuid_or_none
from irt_pipeline.storage._tx import committed_transaction
from irt_pipeline.storage.parameter_frame import PARAMETER_COLUMNS, validated_rows

_ONE_RUNNING_PER_BANK = "idx_irt_runs_one_running_per_bank"


def start_run(
    conn: psycopg.Connection, *, item_bank: str, config: Mapping[str, Any], dagster_run_id: str | None
) -> str:
    """Insert and commit a 'running' row for the bank; return its id.

    Raises CalibrationInProgressError, and leaves nothing behind, when the bank already has a
    running calibration (the partial unique index on item_bank refuses the row).
    """
    try:
        with committed_transaction(conn):
            (run_id,) = conn.execute(
                "INSERT INTO irt_calibration_runs (item_bank, config, dagster_run_id)"
                " VALUES (%s, %s, %s) RETURNING id",
                (item_bank, Jsonb(dict(config)), dagster_run_id),
            ).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        if exc.diag.constraint_name != _ONE_RUNNING_PER_BANK:
            raise
        running = conn.execute(
            "SELECT id, started_at FROM irt_calibration_runs WHERE item_bank = %s AND status = 'running'",
            (item_bank,),
        ).fetchone()
        holder = f"run {running[0]}, started {running[1].isoformat()}" if running else "a run that just ended"
        raise CalibrationInProgressError(
            f"a calibration of item bank {item_bank!r} is already running ({holder})"
        ) from None
    return str(run_id)


def fail_run(conn: psycopg.Connection, run_id: str, error: str) -> bool:
    """Mark the run failed with `error` if it is still running; True when it was."""
    run = uuid_or_none(run_id)
    if run is None:
        return False
    with committed_transaction(conn):
        cur = conn.execute(
            "UPDATE irt_calibration_runs SET status = 'failed', completed_at = now(), error = %s"
            " WHERE id = %s AND status = 'running'",
            (error, run),
        )
    return cur.rowcount == 1


def fail_runs_of_dagster_run(conn: psycopg.Connection, dagster_run_id: str, error: str) -> int:
    """Mark every still-running row of that Dagster run failed; return how many."""
    with committed_transaction(conn):
        cur = conn.execute(
            "UPDATE irt_calibration_runs SET status = 'failed', completed_at = now(), error = %s"
            " WHERE dagster_run_id = %s AND status = 'running'",
            (error, dagster_run_id),
        )
    return cur.rowcount


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
) -> int:
    """Write the run's parameter rows and complete the run, in one transaction; return the row count.

    All or nothing: an invalid frame (ValidationError) writes nothing, and so does a run that is
    not 'running' any more (CalibrationFailedError). Rows a previous attempt of the same run wrote
    are replaced. Every row gets the same calibrated_at (now(), the transaction's start).
    """
    run = parse_uuid(run_id, "calibration run id")
    rows = validated_rows(parameters)
    if not math.isfinite(elapsed_seconds):
        raise ValidationError(f"elapsed_seconds is not a finite number: {elapsed_seconds!r}")
    try:
        with committed_transaction(conn):
            _lock_running_run(conn, run)
            conn.execute("DELETE FROM irt_item_parameters WHERE calibration_run_id = %s", (run,))
            _copy_parameters(conn, run, rows)
            conn.execute(
                "UPDATE irt_calibration_runs SET status = 'completed', completed_at = now(),"
                " items_calibrated = %s, items_skipped = %s, items_flagged = %s,"
                " convergence_achieved = %s, iterations_used = %s, elapsed_seconds = %s WHERE id = %s",
                (items_calibrated, items_skipped, items_flagged, convergence_achieved,
                 iterations_used, elapsed_seconds, run),
            )
    except psycopg.errors.ForeignKeyViolation as exc:
        raise ValidationError(f"parameters name an unknown item: {exc.diag.message_detail}") from None
    return len(rows)


def _lock_running_run(conn: psycopg.Connection, run: uuid.UUID) -> None:
    """Lock the run row until commit; CalibrationFailedError unless it is 'running'."""
    row = conn.execute(
        "SELECT status FROM irt_calibration_runs WHERE id = %s FOR UPDATE", (run,)
    ).fetchone()
    if row is None:
        raise CalibrationFailedError(f"calibration run {run} does not exist; nothing was published")
    if row[0] != "running":
        raise CalibrationFailedError(
            f"calibration run {run} is {row[0]}, not running; its parameters were not published"
        )


def _copy_parameters(conn: psycopg.Connection, run: uuid.UUID, rows: list[tuple]) -> None:
    query = sql.SQL("COPY irt_item_parameters ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.SQL(", ").join(map(sql.Identifier, ("calibration_run_id", *PARAMETER_COLUMNS)))
    )
    with conn.cursor() as cur, cur.copy(query) as copy:
        copy.set_types(["uuid", "uuid", *["float8"] * 8, "bool", "int4"])
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
