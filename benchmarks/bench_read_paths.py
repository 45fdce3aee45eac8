"""The two ways of reading first attempts near the floor (issue 11), timed against the floor.

    python benchmarks/bench_read_paths.py --bank scale10m [--database-url URL]

On an already seeded bank (benchmarks/bench_scale.py seeds scale1m and scale10m), prints:

* raw: binary COPY of (student_id, item_id, correct) of the bank, read to the end (the floor);
* sql: the pipeline's read (storage/first_attempts.py): PostgreSQL keeps the first attempt
  (DISTINCT ON over the index of migration 0009, rows ordered by student), numpy codes the ids
  with O(rows) work;
* numpy: PostgreSQL streams every attempt unordered (student_id, item code, attempted_at, id,
  correct; the raw COPY's hash-join plan) and numpy keeps the first attempt: np.unique of the
  students, then one lexsort by (student, item, attempted_at, id).

Each path runs `--repeat` times (default 2, the best is printed) with the growth of the peak RSS
(a high-water mark: run one path per process, `--paths numpy`, to compare memory).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import psycopg

from irt_pipeline.storage.attempts import bank_items, read_bank_snapshot
from irt_pipeline.storage.binary_copy_out import copy_records

_RAW = """COPY (SELECT a.student_id, a.item_id, a.correct FROM student_attempts a
JOIN items i ON i.id = a.item_id WHERE i.item_bank = %s) TO STDOUT (FORMAT BINARY)"""

_ALL_ATTEMPTS = """
SELECT a.student_id, i.code::int4, a.attempted_at, a.id, a.correct
FROM student_attempts a
JOIN unnest(%(items)s::uuid[]) WITH ORDINALITY AS i(id, code) ON i.id = a.item_id
WHERE a.student_id IS NOT NULL AND a.correct IS NOT NULL
"""
_FIELDS = (("student", [("hi", ">u8"), ("lo", ">u8")]), ("item", ">i4"), ("at", ">i8"), ("id", ">i8"),
           ("correct", "u1"))


def raw(conn: psycopg.Connection, bank: str) -> int:
    size = 0
    with conn.cursor() as cur, cur.copy(_RAW, (bank,)) as copy:
        for block in copy:
            size += len(block)
    return size


def sql_path(conn: psycopg.Connection, bank: str) -> int:
    return len(read_bank_snapshot(conn, bank).attempts)


def numpy_path(conn: psycopg.Connection, bank: str) -> int:
    items = bank_items(conn, bank)
    hi, lo, item, at, ids, correct = [], [], [], [], [], []
    for records in copy_records(conn, _ALL_ATTEMPTS, {"items": items}, _FIELDS):
        hi.append(records["student"]["hi"].astype(np.uint64))
        lo.append(records["student"]["lo"].astype(np.uint64))
        item.append(records["item"].astype(np.int32) - 1)
        at.append(records["at"].astype(np.int64))
        ids.append(records["id"].astype(np.int64))
        correct.append(records["correct"] != 0)
    hi, lo = np.concatenate(hi), np.concatenate(lo)
    # students: unique on the first word, checked on the second (a collision would need the 128-bit path)
    first_words, student = np.unique(hi, return_inverse=True)
    del hi
    key = student.astype(np.int64) * len(items) + np.concatenate(item)
    order = np.lexsort((np.concatenate(ids), np.concatenate(at), key))
    key = key[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    keep = order[first]
    student, item, correct = student[keep], np.concatenate(item)[keep], np.concatenate(correct)[keep]
    lo = lo[keep]
    if not (lo == lo[np.unique(student, return_index=True)[1]][student]).all():
        raise ValueError("two students share their first 8 bytes")
    return int(student.size)


def timed(name: str, run, repeat: int) -> float:
    best, value = float("inf"), None
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = run()
        best = min(best, time.perf_counter() - t0)
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(f"{name:<8} {best:8.2f} s   result {value:>14,}   peak RSS growth {grown:7.0f} MiB", flush=True)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bank", required=True)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--paths", default="raw,sql,numpy")
    args = parser.parse_args(argv)
    if args.database_url:
        url = args.database_url
    else:
        from irt_pipeline.storage import database_url

        url = database_url()
    paths = {"raw": raw, "sql": sql_path, "numpy": numpy_path}
    times = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for name in args.paths.split(","):
            times[name] = timed(name, lambda: paths[name](conn, args.bank), args.repeat)
    if "raw" in times:
        for name, seconds in times.items():
            print(f"{name} / raw = {seconds / times['raw']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
