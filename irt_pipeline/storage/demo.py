"""`seed_demo`: fill a database with a simulated demo bank (see `demo_simulation`).

The generating parameters go to `demo_item_truth` (created here: demo data only, not part of the
schema) so that a calibration can be compared with the truth. Item, student and exam-import ids
are uuid5 of the bank and an index, so the same arguments always produce the same rows.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import psycopg

from irt_pipeline.errors import ValidationError
from irt_pipeline.storage._tx import committed_transaction
from irt_pipeline.storage.binary_copy import bool_column, copy_columns, timestamptz_column, uuid_column
from irt_pipeline.storage.demo_simulation import N_EXAM_IMPORTS, simulate_bank

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "irt-pipeline/demo")
_FIRST_EXAM = np.datetime64("2026-01-05T08:00", "m")  # UTC
LOW_EXPOSURE_BELOW = 100  # the brief's default min_responses

_TRUTH_TABLE = """
CREATE TABLE IF NOT EXISTS demo_item_truth (
  item_id UUID PRIMARY KEY,
  item_bank TEXT,
  a FLOAT,
  b FLOAT,
  c FLOAT,
  misfit BOOLEAN
);
ALTER TABLE demo_item_truth ENABLE ROW LEVEL SECURITY;
-- Supabase's default privileges grant every new table in public to the API roles: take them back.
REVOKE ALL ON demo_item_truth FROM anon, authenticated;
"""


def demo_uuid(item_bank: str, kind: str, index: int) -> uuid.UUID:
    """The deterministic id of the index-th item/student/exam-import of a demo bank."""
    return uuid.uuid5(_NAMESPACE, f"{item_bank}/{kind}/{index}")


def seed_demo(
    conn: psycopg.Connection,
    *,
    item_bank: str = "demo",
    n_items: int = 1000,
    n_students: int = 5000,
    seed: int = 20261125,
) -> dict[str, Any]:
    """Replace the demo bank's items and attempts by a fresh simulation, in one transaction.

    Refuses (ValidationError) a bank that holds items seed_demo did not create. Re-seeding a bank
    that has been calibrated deletes the bank's calibration runs first (their parameter rows and
    abilities with them): `irt_item_parameters.item_id` is ON DELETE RESTRICT (migration 0007),
    and the old runs' numbers describe items that no longer exist. Refused (ValidationError)
    while a calibration of the bank is running. Returns a summary:
    counts of items, students, attempts, repeated attempts, exam imports, items with fewer than
    100 responses, and deliberately misfitting items.
    """
    if n_items < 1 or n_students < 1:
        raise ValidationError(f"a demo bank needs items and students, got {n_items} x {n_students}")
    bank = simulate_bank(n_items, n_students, seed)
    items = [demo_uuid(item_bank, "item", j) for j in range(n_items)]
    students = [demo_uuid(item_bank, "student", i) for i in range(n_students)]
    exams = [demo_uuid(item_bank, "exam-import", e) for e in range(N_EXAM_IMPORTS)]

    with committed_transaction(conn):
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('irt-pipeline seed_demo'))")
        conn.execute(_TRUTH_TABLE)
        _refuse_foreign_items(conn, item_bank)
        _delete_calibration_history(conn, item_bank)
        for statement in (
            "DELETE FROM student_attempts WHERE item_id IN"
            " (SELECT item_id FROM demo_item_truth WHERE item_bank = %(bank)s)",
            "DELETE FROM items WHERE id IN (SELECT item_id FROM demo_item_truth WHERE item_bank = %(bank)s)",
            "DELETE FROM demo_item_truth WHERE item_bank = %(bank)s",
        ):
            conn.execute(statement, {"bank": item_bank})
        _copy(conn, "COPY items (id, item_bank) FROM STDIN", ((i, item_bank) for i in items))
        _copy(
            conn,
            "COPY demo_item_truth (item_id, item_bank, a, b, c, misfit) FROM STDIN",
            zip(items, [item_bank] * n_items, bank.a.tolist(), bank.b.tolist(), bank.c.tolist(),
                bank.misfit.tolist()),
        )
        copy_columns(conn, "student_attempts", {
            "student_id": uuid_column(students)[bank.student],
            "item_id": uuid_column(items)[bank.item],
            "correct": bool_column(bank.correct),
            "attempted_at": timestamptz_column(_FIRST_EXAM + bank.minutes),
            "exam_import_id": uuid_column(exams)[bank.exam],
        })
        conn.execute("ANALYZE items, student_attempts")  # plans for the first reads of the new rows

    first = slice(0, bank.item.size - bank.n_repeats)
    responses = np.bincount(bank.item[first], minlength=n_items)
    return {
        "item_bank": item_bank,
        "items": n_items,
        "students": int(np.unique(bank.student).size),
        "attempts": int(bank.item.size),
        "repeated_attempts": bank.n_repeats,
        "exam_imports": int(np.unique(bank.exam).size),
        "low_exposure_items": int((responses < LOW_EXPOSURE_BELOW).sum()),
        "misfitting_items": int(bank.misfit.sum()),
    }


def _refuse_foreign_items(conn: psycopg.Connection, item_bank: str) -> None:
    (foreign,) = conn.execute(
        "SELECT count(*) FROM items i WHERE i.item_bank = %s"
        " AND NOT EXISTS (SELECT FROM demo_item_truth t WHERE t.item_id = i.id)",
        (item_bank,),
    ).fetchone()
    if foreign:
        raise ValidationError(
            f"item bank {item_bank!r} holds {foreign} item(s) that seed_demo did not create; "
            "seed the demo into another bank"
        )


def _delete_calibration_history(conn: psycopg.Connection, item_bank: str) -> None:
    """Delete the demo bank's calibration runs (parameter rows cascade), refusing a running one."""
    running = conn.execute(
        "SELECT id, started_at FROM irt_calibration_runs WHERE item_bank = %s AND status = 'running'"
        " ORDER BY started_at LIMIT 1",
        (item_bank,),
    ).fetchone()
    if running:
        raise ValidationError(
            f"item bank {item_bank!r} has a calibration running (run {running[0]}, started {running[1]}); "
            "re-seed it once that run has ended"
        )
    conn.execute(
        "DELETE FROM irt_item_parameters WHERE item_id IN"
        " (SELECT item_id FROM demo_item_truth WHERE item_bank = %(bank)s)",
        {"bank": item_bank},
    )
    conn.execute("DELETE FROM irt_calibration_runs WHERE item_bank = %(bank)s", {"bank": item_bank})


def _copy(conn: psycopg.Connection, statement: str, rows) -> None:
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
