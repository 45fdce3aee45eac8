"""Reads of the upstream tables: the items of a bank and their first attempts.

`read_bank_snapshot` reads everything a calibration needs (the bank's items, their first
attempts, and the data watermark) in ONE ``REPEATABLE READ READ ONLY`` transaction, so the run
sees a single snapshot of the database however long the read takes and whatever an exam
import commits meanwhile.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import psycopg
from psycopg import sql

from irt_pipeline.storage._ids import parse_uuid
from irt_pipeline.storage._tx import committed_transaction

ATTEMPT_COLUMNS = ("student_id", "item_id", "correct")

# One row per (student, item): the first attempt (earliest attempted_at, ties by id).
# Our migration declares student_id and correct NOT NULL; where the exam import created
# student_attempts without those constraints, an attempt with no student or no grade is not a
# response: it is left out (the first GRADED attempt counts), never read as a value. Attempts on
# items that are not in `items` (no foreign key there) are left out by the join.
_FIRST_ATTEMPTS = """
SELECT DISTINCT ON (a.student_id, a.item_id) a.student_id, a.item_id, a.correct::int
FROM student_attempts a
JOIN items i ON i.id = a.item_id
WHERE i.item_bank = %(bank)s AND a.student_id IS NOT NULL AND a.correct IS NOT NULL {item_filter}
ORDER BY a.student_id, a.item_id, a.attempted_at, a.id
"""


# The highest attempt id of the bank (graded, with a student, on one of its items): the run's
# data watermark. Every attempt a snapshot could read has an id at most this.
_WATERMARK = """
SELECT coalesce(max(a.id), 0), now()
FROM student_attempts a
JOIN items i ON i.id = a.item_id
WHERE i.item_bank = %(bank)s AND a.student_id IS NOT NULL AND a.correct IS NOT NULL
"""


@dataclass(frozen=True)
class BankSnapshot:
    """What one calibration reads of a bank, all from one database snapshot."""

    attempts: pd.DataFrame      # first attempts: student_id, item_id, correct
    item_ids: list[str]         # every item of the bank, sorted (also those nobody answered)
    data_watermark: int         # highest student_attempts.id of the bank in the snapshot (0: none)
    data_read_at: datetime      # when the snapshot was taken (the transaction's now())


def read_bank_snapshot(conn: psycopg.Connection, item_bank: str) -> BankSnapshot:
    """The bank's items, first attempts and data watermark in one REPEATABLE READ READ ONLY
    transaction (issue 12: one snapshot per run)."""
    with committed_transaction(conn):
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        watermark, read_at = conn.execute(_WATERMARK, {"bank": item_bank}).fetchone()
        items = bank_items(conn, item_bank)
        attempts = read_attempts(conn, item_bank)
    return BankSnapshot(attempts=attempts, item_ids=items, data_watermark=int(watermark), data_read_at=read_at)


def read_attempts(
    conn: psycopg.Connection, item_bank: str, item_ids: Sequence[str] | None = None
) -> pd.DataFrame:
    """First attempts of the bank's items (optionally only `item_ids`): student_id, item_id, correct.

    The rows are streamed with COPY ... TO STDOUT as CSV and parsed by pandas' C reader.
    """
    params: dict[str, object] = {"bank": item_bank}
    item_filter = sql.SQL("")
    if item_ids is not None:
        params["item_ids"] = [parse_uuid(item_id, "item id") for item_id in item_ids]
        item_filter = sql.SQL("AND a.item_id = ANY(%(item_ids)s::uuid[])")
    query = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(
        sql.SQL(_FIRST_ATTEMPTS).format(item_filter=item_filter)
    )
    buffer = io.BytesIO()
    with conn.cursor() as cur, cur.copy(query, params) as copy:
        for block in copy:
            buffer.write(block)
    buffer.seek(0)
    frame = pd.read_csv(buffer, header=None, names=list(ATTEMPT_COLUMNS),
                        dtype={"student_id": str, "item_id": str, "correct": "int8"})
    return frame.astype({"correct": bool})


def bank_items(conn: psycopg.Connection, item_bank: str) -> list[str]:
    """Every item id of the bank (also those nobody answered), sorted."""
    rows = conn.execute("SELECT id::text FROM items WHERE item_bank = %s ORDER BY id", (item_bank,))
    return [item_id for (item_id,) in rows]


def item_banks(conn: psycopg.Connection) -> list[str]:
    """The distinct banks of `items`, sorted."""
    return [bank for (bank,) in conn.execute("SELECT DISTINCT item_bank FROM items ORDER BY 1")]
