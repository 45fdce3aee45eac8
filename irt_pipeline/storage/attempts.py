"""Reads of the upstream tables: the items of a bank and their first attempts.

`read_bank_snapshot` reads everything a calibration needs (the bank's items, their first
attempts as integer codes, and the data watermark) in ONE ``REPEATABLE READ READ ONLY``
transaction, so the run sees a single snapshot of the database however long the read takes and
whatever an exam import commits meanwhile. The first-attempt rule and the binary read are in
first_attempts.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import psycopg

from irt_pipeline.storage._ids import parse_uuid
from irt_pipeline.storage._tx import committed_transaction
from irt_pipeline.storage.first_attempts import FirstAttempts, read_first_attempts

ATTEMPT_COLUMNS = ("student_id", "item_id", "correct")


# The run's data watermark: the highest attempt id of the bank (graded, with a student, on one of
# its items). Every attempt a snapshot could read has an id at most this. With an index leading
# with (item_id, id) (migration 0009) it is one backward probe per item of the bank; without one,
# a join over the table.
_HAS_ITEM_ID_INDEX = """
SELECT EXISTS (
  SELECT FROM pg_index x
  JOIN pg_class c ON c.oid = x.indexrelid
  JOIN pg_am m ON m.oid = c.relam
  WHERE x.indrelid = to_regclass('student_attempts') AND x.indisvalid AND m.amname = 'btree'
    AND x.indnkeyatts >= 2
    AND x.indkey[0] = (SELECT attnum FROM pg_attribute WHERE attrelid = x.indrelid AND attname = 'item_id')
    AND x.indkey[1] = (SELECT attnum FROM pg_attribute WHERE attrelid = x.indrelid AND attname = 'id'))
"""
_WATERMARK_BY_ITEM = """
SELECT coalesce(max(newest.id), 0), now()
FROM unnest(%(items)s::uuid[]) AS bank(item_id)
CROSS JOIN LATERAL (
  SELECT a.id FROM student_attempts a
  WHERE a.item_id = bank.item_id AND a.student_id IS NOT NULL AND a.correct IS NOT NULL
  ORDER BY a.id DESC LIMIT 1
) newest
"""
_WATERMARK_BY_JOIN = """
SELECT coalesce(max(a.id), 0), now()
FROM student_attempts a
JOIN items i ON i.id = a.item_id
WHERE i.item_bank = %(bank)s AND a.student_id IS NOT NULL AND a.correct IS NOT NULL
"""


@dataclass(frozen=True)
class BankSnapshot:
    """What one calibration reads of a bank, all from one database snapshot."""

    attempts: FirstAttempts     # first attempts, coded against item_ids (every item of the bank)
    item_ids: list[str]         # every item of the bank, sorted (also those nobody answered)
    data_watermark: int         # highest student_attempts.id of the bank in the snapshot (0: none)
    data_read_at: datetime      # when the snapshot was taken (the transaction's now())


def read_bank_snapshot(conn: psycopg.Connection, item_bank: str) -> BankSnapshot:
    """The bank's items, first attempts and data watermark in one REPEATABLE READ READ ONLY
    transaction (issue 12: one snapshot per run)."""
    with committed_transaction(conn):
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        items = bank_items(conn, item_bank)      # the first statement takes the snapshot
        watermark, read_at = data_watermark(conn, item_bank, items)
        attempts = read_first_attempts(conn, items)
    return BankSnapshot(attempts=attempts, item_ids=items, data_watermark=watermark, data_read_at=read_at)


def data_watermark(conn: psycopg.Connection, item_bank: str, items: Sequence[str]) -> tuple[int, datetime]:
    """The bank's highest attempt id (0: none) and the transaction's now(), in the caller's
    snapshot; `items` are the bank's items of that snapshot."""
    (by_item,) = conn.execute(_HAS_ITEM_ID_INDEX).fetchone()
    if by_item:
        watermark, read_at = conn.execute(_WATERMARK_BY_ITEM, {"items": list(items)}).fetchone()
    else:
        watermark, read_at = conn.execute(_WATERMARK_BY_JOIN, {"bank": item_bank}).fetchone()
    return int(watermark), read_at


def read_attempts(
    conn: psycopg.Connection, item_bank: str, item_ids: Sequence[str] | None = None
) -> pd.DataFrame:
    """First attempts of the bank's items (optionally only `item_ids`) as a frame of
    student_id, item_id, correct: one Python string per row, for tests, benchmarks and
    inspection. The pipeline reads `read_bank_snapshot` (integer codes)."""
    items = bank_items(conn, item_bank)
    if item_ids is not None:
        wanted = {str(parse_uuid(item_id, "item id")) for item_id in item_ids}
        items = [item for item in items if item in wanted]
    return read_first_attempts(conn, items).frame()


def bank_items(conn: psycopg.Connection, item_bank: str) -> list[str]:
    """Every item id of the bank (also those nobody answered), sorted."""
    rows = conn.execute("SELECT id::text FROM items WHERE item_bank = %s ORDER BY id", (item_bank,))
    return [item_id for (item_id,) in rows]


def item_banks(conn: psycopg.Connection) -> list[str]:
    """The distinct banks of `items`, sorted."""
    return [bank for (bank,) in conn.execute("SELECT DISTINCT item_bank FROM items ORDER BY 1")]
