"""First attempts as integer codes, read by binary COPY: no Python or pandas object per row.

The first-attempt rule stays in PostgreSQL, exactly as it was: per (student_id, item_id) the
attempt with the earliest attempted_at, ties by id; attempts without a student or a grade are
not responses; only items of the bank count (``item_id = ANY`` of the bank's items read in the
same snapshot: the join with ``items`` of before, as a hashed constant filter).
``DISTINCT ON ... ORDER BY student_id, item_id, attempted_at, id`` over the index of migration
0009 (those four columns INCLUDE correct) is an index-only scan feeding a Unique node: PostgreSQL
sorts nothing, and the rows arrive ordered by (student, item) in uuid byte order, which is the
order of their text. So numpy does O(rows) work and no sort either:

* students: where the student changes, so row starts per student, in uuid order (only the
  distinct students become strings, once);
* item code = position among the bank's sorted items, by a table lookup on 8 of the 16 bytes
  (items sharing a table slot go through a binary search), verified on all 16;
* each chunk of about 32 MB of wire records becomes 5 bytes per row (int32 item code, bool
  grade) and 8 bytes per student (where its rows start): the CSR matrix, but for its data.

The alternative, streaming (student, item, attempted_at, id, correct) unordered (a hash join,
the raw COPY's plan) and keeping the first attempt in numpy, moves 71 instead of 47 bytes a row
and needs two 64-bit sorts of every row (np.unique of the students, then the (student, item,
attempted_at, id) lexsort). Measured on 10M attempts (benchmarks/bench_read_paths.py, 2 cores
shared with other jobs): this read 17.6 s and +142 MiB, the numpy alternative 45.7 s and
+1044 MiB, the raw binary COPY of (student_id, item_id, correct) 12.6 s. Server CPU of the query
alone: 3.5 s over this index-only scan, 4.2-5.0 s over 0002's index (a heap visit per attempt),
2.1-2.5 s for the raw COPY's hash join; the rest is the client taking 10M CopyData messages,
which binary_copy_out.py does at about 0.5 us a row instead of psycopg's 1 us.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg

from irt_pipeline.storage.binary_copy_out import copy_records
from irt_pipeline.storage.uuid_text import uuid_bytes, uuid_strings

# A uuid's 16 bytes as two native words: for equality and hashing only (not the uuid order).
UUID_WORDS = np.dtype([("a", "<u8"), ("b", "<u8")])

# One row per (student, item): the first attempt (earliest attempted_at, ties by id). Where the
# exam import created student_attempts without NOT NULL on student_id or correct, an attempt with
# no student or no grade is not a response: left out (the first GRADED attempt counts). Attempts
# on items missing from `items` (no foreign key there) are not among the bank's items.
_FIRST_ATTEMPTS = """
SELECT DISTINCT ON (a.student_id, a.item_id) a.student_id, a.item_id, a.correct
FROM student_attempts a
WHERE a.item_id = ANY(%(items)s::uuid[]) AND a.student_id IS NOT NULL AND a.correct IS NOT NULL
ORDER BY a.student_id, a.item_id, a.attempted_at, a.id
"""
_FIELDS = (("student", UUID_WORDS), ("item", UUID_WORDS), ("correct", "u1"))


@dataclass(frozen=True)
class FirstAttempts:
    """One row per (student, item) answered, sorted by (student, item): the rows of
    ``student_ids[s]`` are ``indptr[s]:indptr[s + 1]``, each answered ``item_ids[item[k]]``,
    correctly if ``correct[k]`` (a CSR matrix in all but name). Both id tuples are sorted;
    ``item_ids`` may hold items without a row (nobody answered them)."""

    indptr: np.ndarray           # int64, one more than students: where each student's rows start
    item: np.ndarray             # int32 codes into item_ids
    correct: np.ndarray          # bool
    student_ids: tuple[str, ...]
    item_ids: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.item.size)

    @property
    def student(self) -> np.ndarray:
        """The student code of every row (int32)."""
        return np.repeat(np.arange(len(self.student_ids), dtype=np.int32), np.diff(self.indptr))

    def frame(self) -> pd.DataFrame:
        """student_id, item_id, correct with one Python string per row: for tests and inspection
        (the pipeline uses the codes)."""
        students = np.asarray(self.student_ids, dtype=object)
        items = np.asarray(self.item_ids, dtype=object)
        return pd.DataFrame({
            "student_id": pd.Series(students[self.student] if len(students) else [], dtype=object),
            "item_id": pd.Series(items[self.item] if len(items) else [], dtype=object),
            "correct": np.asarray(self.correct, dtype=bool),
        })

    @classmethod
    def from_frame(cls, attempts: pd.DataFrame) -> FirstAttempts:
        """Code a frame of student_id, item_id, correct (any strings), keeping the first row of
        each (student, item): ids sorted as strings, rows sorted by (student, item)."""
        students, student = np.unique(attempts["student_id"].astype(str).to_numpy(dtype=object),
                                      return_inverse=True)
        items, item = np.unique(attempts["item_id"].astype(str).to_numpy(dtype=object), return_inverse=True)
        key = student.astype(np.int64) * max(len(items), 1) + item
        _, first = np.unique(key, return_index=True)   # sorted keys, first occurrence of each
        indptr = np.zeros(len(students) + 1, dtype=np.int64)
        np.cumsum(np.bincount(student[first], minlength=len(students)), out=indptr[1:])
        return cls(
            indptr=indptr,
            item=item[first].astype(np.int32),
            correct=attempts["correct"].to_numpy(dtype=bool)[first],
            student_ids=tuple(str(s) for s in students),
            item_ids=tuple(str(i) for i in items),
        )


def read_first_attempts(conn: psycopg.Connection, item_ids: Sequence[str]) -> FirstAttempts:
    """First attempts on `item_ids` (canonical uuid strings, sorted and distinct: the bank's
    items), coded against them. Run it in the snapshot that listed the items. Per row only the
    item code and the grade are kept (5 bytes); per student, where its rows start."""
    items = uuid_bytes(item_ids).view(UUID_WORDS)
    lookup = _ItemLookup(items)
    students, starts, rows_item, rows_correct = [], [], [], []
    n_rows, last = 0, None
    if len(items):
        params = {"items": list(item_ids)}
        for records in copy_records(conn, _FIRST_ATTEMPTS, params, _FIELDS):
            student = records["student"]
            changed = np.empty(len(records), dtype=bool)
            changed[1:] = (student["a"][1:] != student["a"][:-1]) | (student["b"][1:] != student["b"][:-1])
            changed[0] = last is None or bool(student[0] != last)
            new = np.flatnonzero(changed)
            starts.append(new + n_rows)
            students.append(student[new])
            last = student[-1].copy()
            rows_item.append(lookup.codes(records["item"]))
            rows_correct.append(records["correct"] != 0)
            n_rows += len(records)
            del records, student
    distinct = np.concatenate(students) if students else np.zeros(0, UUID_WORDS)
    _require_increasing(distinct)
    indptr = np.concatenate([*starts, [n_rows]]).astype(np.int64)
    item = _joined(rows_item, np.int32)
    del rows_item
    return FirstAttempts(
        indptr=indptr,
        item=item,
        correct=_joined(rows_correct, bool),
        student_ids=uuid_strings(distinct.view("V16")),
        item_ids=tuple(item_ids),
    )


class _ItemLookup:
    """Position of a uuid among `items` by a direct table on the low bits of its first word;
    rows whose slot holds several items are binary-searched; every match is checked on all
    16 bytes (an unknown item raises ValueError)."""

    def __init__(self, items: np.ndarray) -> None:
        self.items = items
        self.bits = min(22, max(10, len(items).bit_length() + 8))   # ~256 slots per item
        self.mask = np.uint64((1 << self.bits) - 1)
        slots = items["a"] & self.mask
        self.table = np.full(1 << self.bits, -1, dtype=np.int32)
        self.table[slots] = np.arange(len(items), dtype=np.int32)
        values, counts = np.unique(slots, return_counts=True)
        self.table[values[counts > 1]] = -2
        self.order = np.argsort(items, kind="stable")     # structured (a, b) order for the search
        self.sorted = items[self.order]

    def codes(self, keys: np.ndarray) -> np.ndarray:
        codes = self.table[keys["a"] & self.mask]
        shared = np.flatnonzero(codes == -2)
        if shared.size:
            found = np.searchsorted(self.sorted, keys[shared]).clip(0, max(len(self.sorted) - 1, 0))
            codes[shared] = self.order[found]
        match = self.items[codes.clip(0)]
        if ((codes < 0) | (match["a"] != keys["a"]) | (match["b"] != keys["b"])).any():
            raise ValueError("binary COPY returned an attempt on an item outside the requested items")
        return codes


def _require_increasing(ids: np.ndarray) -> None:
    """The distinct students must come in strictly increasing uuid order (the ORDER BY): else a
    student would have two codes."""
    if len(ids) < 2:
        return
    big = ids.view("V16").view([("hi", ">u8"), ("lo", ">u8")])
    hi, lo = big["hi"], big["lo"]
    if not ((hi[1:] > hi[:-1]) | ((hi[1:] == hi[:-1]) & (lo[1:] > lo[:-1]))).all():
        raise ValueError("first attempts did not arrive ordered by student_id")


def _joined(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)
