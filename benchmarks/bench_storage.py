"""Storage timings: seed ~500k attempts, read them back, publish 1,000 parameter rows, write the
abilities of 100,000 students.

    python benchmarks/bench_storage.py [--url postgresql://root@127.0.0.1:5432/test]

Runs in a scratch database created on the server of --url (default: IRT_TEST_DATABASE_URL, else
the embedded server) and dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from irt_pipeline import storage
from irt_pipeline.storage.commands import describe_database


def timed(label: str, action, repeat: int = 1):
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - started)
    print(f"{label:<44} {best:8.3f} s" + (f"  (best of {repeat})" if repeat > 1 else ""))
    return result


def parameters_for(items: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = len(items)
    return pd.DataFrame({
        "item_id": items, "a": rng.lognormal(0, 0.3, n), "b": rng.normal(0, 1, n), "c": rng.uniform(0, 0.35, n),
        "a_se": 0.1, "b_se": 0.1, "c_se": 0.03, "infit_mnsq": rng.normal(1, 0.1, n),
        "outfit_mnsq": rng.normal(1, 0.1, n), "is_flagged": False, "response_count": rng.integers(100, 900, n),
    })


def run(url: str) -> None:
    with storage.connect(url) as conn:
        storage.apply_migrations(conn)
        summary = timed("seed_demo (1000 items x 5000 students)", lambda: storage.seed_demo(conn))
        print(f"  {summary['attempts']:,} attempts, {summary['low_exposure_items']} items < 100 responses")
        frame = timed("read_attempts, first read after seeding", lambda: storage.read_attempts(conn, "demo"))
        timed("read_attempts", lambda: storage.read_attempts(conn, "demo"), repeat=3)
        print(f"  {len(frame):,} first attempts")
        subset = storage.bank_items(conn, "demo")[:100]
        timed("read_attempts, 100 item_ids", lambda: storage.read_attempts(conn, "demo", subset), repeat=3)

        parameters = parameters_for(storage.bank_items(conn, "demo"))

        def start_and_publish() -> int:
            run_id = storage.start_run(conn, item_bank="demo", config={"model": "3pl"}, dagster_run_id=None)
            return storage.publish_calibration(
                conn, run_id, parameters, items_calibrated=1000, items_skipped=0, items_flagged=0,
                convergence_achieved=True, iterations_used=20, elapsed_seconds=1.0)

        timed("start_run + publish_calibration (1000 rows)", start_and_publish, repeat=3)
        item = parameters["item_id"][0]
        timed("latest_parameters (one item)", lambda: storage.latest_parameters(conn, item), repeat=20)
        bench_abilities(conn)


def bench_abilities(conn: psycopg.Connection, n_students: int = 100_000) -> None:
    """write_abilities for n_students in one transaction (as publish_calibration calls it):
    validation, the delete of a previous attempt's rows and the binary COPY."""
    rng = np.random.default_rng(2)
    students = [str(uuid.uuid4()) for _ in range(n_students)]
    theta, theta_se = rng.normal(0, 1, n_students), rng.uniform(0.2, 0.6, n_students)
    counts = rng.integers(1, 200, n_students)
    run_id = storage.start_run(conn, item_bank="abilities", config={"model": "3pl"}, dagster_run_id=None)

    def write() -> int:
        with conn.transaction():
            return storage.write_abilities(conn, run_id, "abilities", students, theta, theta_se, counts)

    # the first write fills an empty table; the repeats also delete the previous attempt's rows
    timed(f"write_abilities ({n_students:,} students, first)", write)
    timed(f"write_abilities ({n_students:,} students, rewrite)", write, repeat=3)
    conn.execute("UPDATE irt_calibration_runs SET status = 'completed', completed_at = now() WHERE id = %s",
                 (run_id,))
    student = students[n_students // 2]
    timed("latest_ability (one student)", lambda: storage.latest_ability(conn, student, "abilities"), repeat=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("IRT_TEST_DATABASE_URL") or None)
    server = parser.parse_args().url or storage.database_url()
    name = f"irt_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = make_conninfo(server, dbname=name)
        print(f"database: {describe_database(url)}")
        run(url)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
