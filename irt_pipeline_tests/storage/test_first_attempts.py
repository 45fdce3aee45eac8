"""The binary, integer-coded read of first attempts (issue 11) against the CSV reader it replaced.

The reference below is the old read path verbatim: the first-attempt SQL joined with `items`,
streamed as CSV, parsed by pandas, and the matrix built from pandas categoricals.
"""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import numpy as np
import pandas as pd
import psycopg
import pytest
import scipy.sparse as sp

from irt_pipeline.defs.calibration.config import CalibrationConfig
from irt_pipeline.defs.calibration.values import build_response_matrix
from irt_pipeline.storage import attempts as attempts_module
from irt_pipeline.storage import binary_copy_out
from irt_pipeline.storage.binary_copy_out import copy_records
from irt_pipeline.storage.uuid_text import uuid_bytes, uuid_strings
from irt_pipeline_tests.storage.helpers import T0

pytestmark = pytest.mark.db

BANK = "bank-a"

_OLD_FIRST_ATTEMPTS = """
SELECT DISTINCT ON (a.student_id, a.item_id) a.student_id, a.item_id, a.correct::int
FROM student_attempts a
JOIN items i ON i.id = a.item_id
WHERE i.item_bank = %(bank)s AND a.student_id IS NOT NULL AND a.correct IS NOT NULL
ORDER BY a.student_id, a.item_id, a.attempted_at, a.id
"""


def read_attempts_text(conn: psycopg.Connection, item_bank: str) -> pd.DataFrame:
    """The old reader: COPY ... (FORMAT csv), parsed by pandas."""
    buffer = io.BytesIO()
    with conn.cursor() as cur, cur.copy(f"COPY ({_OLD_FIRST_ATTEMPTS}) TO STDOUT (FORMAT csv)",
                                        {"bank": item_bank}) as copy:
        for block in copy:
            buffer.write(block)
    buffer.seek(0)
    frame = pd.read_csv(buffer, header=None, names=["student_id", "item_id", "correct"],
                        dtype={"student_id": str, "item_id": str, "correct": "int8"})
    return frame.astype({"correct": bool})


def old_matrix(attempts: pd.DataFrame, bank_item_ids: list[str]) -> tuple[sp.csr_matrix, list[str], list[str]]:
    """The old build_response_matrix: categoricals of the id strings, COO -> CSR."""
    frame = attempts.drop_duplicates(subset=["student_id", "item_id"], keep="first")
    item_ids = sorted(set(bank_item_ids) | set(frame["item_id"]))
    student_ids = sorted(set(frame["student_id"]))
    rows = pd.Categorical(frame["student_id"], categories=student_ids).codes
    cols = pd.Categorical(frame["item_id"], categories=item_ids).codes
    data = np.where(frame["correct"].to_numpy(), 1.0, -1.0)
    matrix = sp.csr_matrix((data, (rows.astype(np.int64), cols.astype(np.int64))),
                           shape=(len(student_ids), len(item_ids)))
    matrix.sort_indices()
    return matrix, student_ids, item_ids


def with_prefix(prefix: bytes, rng: np.random.Generator) -> str:
    """A uuid whose first bytes are `prefix` (ids that share a hash slot or a first word)."""
    return str(uuid.UUID(bytes=prefix + rng.bytes(16 - len(prefix))))


def load_awkward_bank(conn: psycopg.Connection, seed: int = 7) -> dict:
    """A bank with every case of the first-attempt rule: retakes, ties in attempted_at (broken by
    id, inserted in shuffled order), NULL grades before the first graded attempt, NULL students,
    attempts on items missing from `items` and on another bank's items, items nobody answered,
    and ids that share their first 8 bytes (students) or the lookup's hash slot (items)."""
    rng = np.random.default_rng(seed)
    # the exam import's table may lack these constraints: attempts without student or grade, and
    # on items that are not in `items`
    conn.execute("ALTER TABLE student_attempts ALTER COLUMN student_id DROP NOT NULL,"
                 " ALTER COLUMN correct DROP NOT NULL, DROP CONSTRAINT student_attempts_item_id_fkey")
    items = [str(uuid.uuid4()) for _ in range(40)]
    items += [with_prefix(b"\x00" * 8, rng) for _ in range(4)]          # one first word, one slot
    items += [with_prefix(b"\x11\x22\x33", rng) for _ in range(4)]       # same low bits: one slot
    unanswered = [str(uuid.uuid4()) for _ in range(3)]
    other_bank = [str(uuid.uuid4()) for _ in range(5)]
    unknown = [str(uuid.uuid4()) for _ in range(3)]
    students = [str(uuid.uuid4()) for _ in range(300)] + [with_prefix(b"\xab" * 8, rng) for _ in range(6)]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO items (id, item_bank) VALUES (%s, %s)",
                        [(i, BANK) for i in items + unanswered] + [(i, "bank-b") for i in other_bank])
    rows = []
    for student in students:
        for item in rng.choice(items, size=int(rng.integers(5, 30)), replace=False):
            for _ in range(int(rng.integers(1, 4))):                    # retakes
                minutes = int(rng.integers(0, 4))                        # few values: many ties
                grade = None if rng.random() < 0.05 else bool(rng.random() < 0.6)
                rows.append((student, item, grade, T0 + timedelta(minutes=minutes)))
        rows.append((student, str(rng.choice(other_bank)), True, T0))
        rows.append((student, str(rng.choice(unknown)), False, T0))
    for item in items[:10]:
        rows.append((None, item, True, T0))                              # no student
    order = rng.permutation(len(rows))                                   # ids not in time order
    with conn.cursor() as cur, cur.copy(
            "COPY student_attempts (student_id, item_id, correct, attempted_at) FROM STDIN") as copy:
        for k in order:
            copy.write_row(rows[k])
    conn.execute("ANALYZE student_attempts")
    return {"items": items, "unanswered": unanswered, "students": students}


@pytest.mark.parametrize("chunk_bytes", [None, 500])
def test_binary_read_equals_the_csv_read_first_attempts_and_matrix(conn, monkeypatch, chunk_bytes):
    """Same first attempts, same matrix, same ids, whatever the chunking (500 bytes: about ten
    rows a chunk, so students straddle chunks)."""
    bank = load_awkward_bank(conn)
    if chunk_bytes:
        monkeypatch.setattr(binary_copy_out, "CHUNK_BYTES", chunk_bytes)
    old = read_attempts_text(conn, BANK)
    snapshot = attempts_module.read_bank_snapshot(conn, BANK)
    new = snapshot.attempts.frame()

    assert len(old) > 3000
    pd.testing.assert_frame_equal(new, old.astype({"student_id": object, "item_id": object}))
    settings = CalibrationConfig().settings()
    matrix, student_ids, item_ids = old_matrix(old, attempts_module.bank_items(conn, BANK))
    rm = build_response_matrix(snapshot.attempts, snapshot.item_ids, item_bank=BANK, settings=settings,
                               data_watermark=snapshot.data_watermark)
    assert rm.student_ids == tuple(student_ids) and rm.item_ids == tuple(item_ids)
    assert rm.matrix.shape == matrix.shape and rm.matrix.has_sorted_indices
    assert np.array_equal(rm.matrix.indptr, matrix.indptr)
    assert np.array_equal(rm.matrix.indices, matrix.indices)
    assert np.array_equal(rm.matrix.data, matrix.data) and rm.matrix.dtype == np.int8
    assert set(bank["unanswered"]) <= set(rm.unanswered_item_ids)
    # a frame (the old reader's) gives the same matrix through FirstAttempts.from_frame
    from_frame = build_response_matrix(old, snapshot.item_ids, item_bank=BANK, settings=settings)
    assert (from_frame.matrix != rm.matrix).nnz == 0 and from_frame.student_ids == rm.student_ids


def test_read_attempts_with_an_item_filter_keeps_the_codes_of_the_filtered_items(conn):
    bank = load_awkward_bank(conn, seed=11)
    wanted = sorted(bank["items"][40:46])
    old = read_attempts_text(conn, BANK)
    frame = attempts_module.read_attempts(conn, BANK, item_ids=wanted)
    expected = old[old["item_id"].isin(wanted)].reset_index(drop=True)
    pd.testing.assert_frame_equal(frame, expected.astype({"student_id": object, "item_id": object}))


def test_copy_records_refuses_nulls_and_other_widths_and_reads_empty_results(conn):
    fields = [("id", "V16"), ("flag", "u1")]
    assert list(copy_records(conn, "SELECT gen_random_uuid(), true WHERE false", None, fields)) == []
    with pytest.raises(ValueError, match="NULL"):
        list(copy_records(conn, "SELECT NULL::uuid, true", None, fields))
    with pytest.raises(ValueError, match="flag"):
        list(copy_records(conn, "SELECT gen_random_uuid(), 1::int4", None, fields))
    (records,) = copy_records(conn, "SELECT '00000000-0000-4000-8000-0000000000ff'::uuid, true", None, fields)
    assert uuid_strings(records["id"]) == ("00000000-0000-4000-8000-0000000000ff",) and records["flag"][0] == 1


def test_uuid_text_round_trip():
    ids = [str(uuid.uuid4()) for _ in range(100)]
    assert uuid_strings(uuid_bytes(ids)) == tuple(ids)
    assert uuid_strings(uuid_bytes([i.upper() for i in ids])) == tuple(ids)
    assert uuid_strings(uuid_bytes([])) == ()
    with pytest.raises(ValueError):
        uuid_bytes(["not-a-uuid"])


def test_a_server_error_in_the_middle_of_the_copy_is_raised_and_the_connection_stays_usable(conn):
    query = "SELECT x::int4 FROM generate_series(1, 100000) x WHERE 1 / (x - 60000) IS NOT NULL"
    with pytest.raises(psycopg.errors.DivisionByZero):
        for _ in copy_records(conn, query, None, [("x", ">i4")], chunk_bytes=4096):
            pass
    assert conn.execute("SELECT 1").fetchone() == (1,)
    rows = sum(len(r) for r in copy_records(conn, "SELECT x::int4 FROM generate_series(1, 100000) x", None,
                                            [("x", ">i4")], chunk_bytes=4096))
    assert rows == 100000
