"""End-to-end benchmark of the Dagster graph on the brief's performance fixture.

    python benchmarks/bench_pipeline.py [--server-url URL] [--students 500] [--items 1000]

1. starts a throwaway embedded PostgreSQL (pgserver, in a temporary folder) unless --server-url
   names a server on which a scratch database may be created, and applies the migrations;
2. loads `generate_large_response_matrix()` of brief section 9 (500 students x 1000 items, every
   cell observed: 500,000 first attempts) into `items` / `student_attempts` with COPY;
3. runs `calibration_job` for that bank in process on a temporary Dagster instance;
4. prints the duration of every step (from the run's event log) and the total.

Targets: whole graph < 10 s; reading (response_matrix) and writing (supabase_writes) < 2 s each.
Exit status 1 when a target is missed or the run fails.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack

import dagster as dg
import numpy as np
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from step_times import step_windows

from irt_pipeline.defs.calibration.config import CalibrationConfig, run_config_for
from irt_pipeline.defs.calibration.jobs import JOB_NAME
from irt_pipeline.defs.calibration.partitions import ITEM_BANK_PARTITIONS_NAME
from irt_pipeline.defs.resources import RESOURCE_KEY, IrtDatabase
from irt_pipeline.storage import apply_migrations

BANK = "bench"
TARGET_TOTAL = 10.0
TARGET_IO = {"response_matrix": 2.0, "supabase_writes": 2.0}
NAMESPACE = uuid.UUID("0b6f5a52-96c4-4f51-9f0e-5d0f3c1f8e21")


def generate_large_response_matrix(n_students: int = 500, n_items: int = 1000, seed: int = 42) -> np.ndarray:
    """Brief section 9, verbatim: responses from known 3PL parameters."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 1, n_students)
    a = rng.uniform(0.5, 2.5, n_items)
    b = rng.normal(0, 1, n_items)
    c = rng.uniform(0.05, 0.3, n_items)
    theta_matrix = theta[:, np.newaxis]
    prob = c + (1 - c) / (1 + np.exp(-a * (theta_matrix - b)))
    return (rng.random((n_students, n_items)) < prob).astype(int)


def load_attempts(url: str, responses: np.ndarray) -> int:
    """Items of the bank and one attempt per cell, via COPY; returns the number of attempts."""
    n_students, n_items = responses.shape
    items = [str(uuid.uuid5(NAMESPACE, f"item:{j}")) for j in range(n_items)]
    students = [str(uuid.uuid5(NAMESPACE, f"student:{i}")) for i in range(n_students)]
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy("COPY items (id, item_bank) FROM STDIN") as copy:
            copy.write("".join(f"{item}\t{BANK}\n" for item in items))
        buf = io.StringIO()
        for i, student in enumerate(students):
            row = responses[i]
            buf.write("".join(f"{student}\t{items[j]}\t{'t' if row[j] else 'f'}\n" for j in range(n_items)))
        with cur.copy("COPY student_attempts (student_id, item_id, correct) FROM STDIN") as copy:
            copy.write(buf.getvalue())
        cur.execute("ANALYZE items; ANALYZE student_attempts")
    return n_students * n_items


def step_durations(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """Seconds from STEP_START to STEP_SUCCESS/STEP_FAILURE of every step, in start order."""
    return {k: end - start for k, (start, end) in step_windows(instance, run_id).items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-url", help="PostgreSQL server to create the scratch database on "
                        "(default: a throwaway embedded pgserver)")
    parser.add_argument("--students", type=int, default=500)
    parser.add_argument("--items", type=int, default=1000)
    args = parser.parse_args(argv)

    with ExitStack() as stack:
        server_url = args.server_url
        if not server_url:
            import pgserver

            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="irt-bench-pg-"))
            server = pgserver.get_server(folder, cleanup_mode="stop")
            stack.callback(server.cleanup)
            server_url = server.get_uri()
        name = f"irt_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

        def drop() -> None:
            with psycopg.connect(server_url, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

        stack.callback(drop)
        url = make_conninfo(server_url, dbname=name)
        with psycopg.connect(url) as conn:
            apply_migrations(conn)

        responses = generate_large_response_matrix(args.students, args.items)
        t0 = time.perf_counter()
        n_attempts = load_attempts(url, responses)
        load_seconds = time.perf_counter() - t0
        print(f"loaded {n_attempts:,} attempts ({args.students} students x {args.items} items) "
              f"in {load_seconds:.2f} s (setup, not part of the graph)")

        from irt_pipeline.definitions import defs

        job = defs().resolve_job_def(JOB_NAME)
        instance = stack.enter_context(dg.instance_for_test())
        instance.add_dynamic_partitions(ITEM_BANK_PARTITIONS_NAME, [BANK])
        run_config = run_config_for(CalibrationConfig())
        t0 = time.perf_counter()
        result = job.execute_in_process(
            instance=instance,
            partition_key=BANK,
            run_config=dg.RunConfig(ops=run_config.ops, loggers={"console": {"config": {"log_level": "WARNING"}}}),
            resources={RESOURCE_KEY: IrtDatabase(url=url)},
            raise_on_error=False,
        )
        total = time.perf_counter() - t0
        durations = step_durations(instance, result.run_id)

        print(f"\n{'step':<48} {'seconds':>8}")
        for step, seconds in durations.items():
            print(f"{step:<48} {seconds:>8.2f}")
        print(f"{'total (execute_in_process wall time)':<48} {total:>8.2f}")

        ok = result.success
        if not ok:
            print("\nRUN FAILED", file=sys.stderr)
        else:
            stats = result.output_for_node("fit_statistics")
            print(f"\nitems calibrated {stats.items_calibrated}, skipped {stats.items_skipped}, "
                  f"flagged {stats.items_flagged}; converged {stats.convergence_achieved} "
                  f"after {stats.iterations_used} iterations")
        if total >= TARGET_TOTAL:
            print(f"MISSED: total {total:.2f} s >= {TARGET_TOTAL} s", file=sys.stderr)
            ok = False
        for step, limit in TARGET_IO.items():
            if durations.get(step, float("inf")) >= limit:
                print(f"MISSED: {step} {durations.get(step, float('nan')):.2f} s >= {limit} s", file=sys.stderr)
                ok = False
        print("targets met" if ok else "targets NOT met")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
