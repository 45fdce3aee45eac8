"""Scale benchmark of `irt-pipeline calibrate` (issue 11): step times, peak RSS and the floor.

    python benchmarks/bench_scale.py [--database-url URL] [--sizes 1m,10m] [--with-50m] [--reuse]

For each size, on the database of IRT_DATABASE_URL (or --database-url, or the embedded one):

1. `irt-pipeline migrate`, then `irt-pipeline seed-demo --bank scale<size> --items N --students M`
   (each demo student answers 60-140 items: about 100 attempts per student), unless --reuse
   finds the bank already seeded with N items;
2. the floor: a raw ``COPY (SELECT student_id, item_id, correct FROM student_attempts JOIN items
   ... WHERE item_bank = ...) TO STDOUT (FORMAT BINARY)`` of the same rows, read to the end here,
   before and after the calibration (the table reports the faster: the same warm cache as the
   calibration's own read);
3. `irt-pipeline calibrate --bank scale<size>` as a child process on a temporary DAGSTER_HOME:
   its wall time, its peak RSS (``os.wait4``'s ru_maxrss of that very child) and the duration of
   every step (STEP_START to STEP_SUCCESS in the run's event log).

Acceptance (issue 11, at 10M): response_matrix <= 2x the raw COPY, peak RSS <= 1 GB, every step
other than item_parameters (the EM) at most the EM step's time. Exit status 1 when missed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import dagster as dg
import psycopg
from step_times import step_windows

SIZES = {  # label: (items, students); about 100 attempts per student
    "1m": (1000, 10_000),
    "5m": (2000, 50_000),
    "10m": (2000, 100_000),
    "50m": (5000, 500_000),
}
STEPS = ("response_matrix", "eligible_items", "item_parameters", "scale_linking", "fit_statistics",
         "student_abilities", "supabase_writes")
EM_STEP = "item_parameters"
MAX_READ_RATIO = 2.0
MAX_RSS_BYTES = {"10m": 1 << 30, "50m": 4 << 30}
_SCRIPT = Path(sys.executable).with_name("irt-pipeline")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "irt_pipeline.cli"]

_RAW_COPY = """COPY (SELECT a.student_id, a.item_id, a.correct FROM student_attempts a
JOIN items i ON i.id = a.item_id WHERE i.item_bank = %s) TO STDOUT (FORMAT BINARY)"""


def raw_copy(url: str, bank: str) -> tuple[float, int]:
    """Seconds to move the bank's attempt rows out of PostgreSQL as binary COPY, and the bytes."""
    t0 = time.perf_counter()
    size = 0
    with psycopg.connect(url) as conn, conn.cursor() as cur, cur.copy(_RAW_COPY, (bank,)) as copy:
        for block in copy:
            size += len(block)
    return time.perf_counter() - t0, size


def seeded_items(url: str, bank: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM items WHERE item_bank = %s", (bank,)).fetchone()[0]


def bank_attempts(url: str, bank: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM student_attempts a JOIN items i ON i.id = a.item_id"
                            " WHERE i.item_bank = %s", (bank,)).fetchone()[0]


def calibrate(url: str, bank: str, home: Path) -> tuple[int, float, int, str, list[tuple[float, int]]]:
    """Exit status, wall seconds, peak RSS in bytes, stdout of `irt-pipeline calibrate`, and its
    RSS sampled every 50 ms as (time.time(), bytes) to attribute the peak to a step."""
    env = {**os.environ, "IRT_DATABASE_URL": url, "DAGSTER_HOME": str(home)}
    samples: list[tuple[float, int]] = []
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        child = subprocess.Popen([*CLI, "calibrate", "--bank", bank], env=env, stdout=out, stderr=err)
        sampler = threading.Thread(target=_sample_rss, args=(child.pid, samples), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)   # this child's own rusage (ru_maxrss in KiB)
        wall = time.perf_counter() - t0
        sampler.join()
        child.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if code != 0:
            print(err.read()[-3000:], file=sys.stderr)
        return code, wall, usage.ru_maxrss * 1024, out.read(), samples


def _sample_rss(pid: int, samples: list[tuple[float, int]]) -> None:
    status = Path(f"/proc/{pid}/status")
    while True:
        try:
            text = status.read_text()
        except OSError:
            return
        match = re.search(r"VmRSS:\s+(\d+) kB", text)
        if match is None:  # a zombie: the child has exited
            return
        samples.append((time.time(), int(match.group(1)) * 1024))
        time.sleep(0.05)


def run_step_windows(home: Path, run_id: str) -> dict[str, tuple[float, float]]:
    """(start, end) wall-clock times of every step of the run in the instance at `home`."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return step_windows(instance, run_id)


def step_peaks(windows: dict[str, tuple[float, float]], samples: list[tuple[float, int]]) -> dict[str, int]:
    """The highest sampled RSS of the process during each step."""
    return {step: max((rss for t, rss in samples if start <= t <= end), default=0)
            for step, (start, end) in windows.items()}


def run_size(url: str, label: str, reuse: bool) -> tuple[dict, list[str]]:
    n_items, n_students = SIZES[label]
    bank = f"scale{label}"
    env = {**os.environ, "IRT_DATABASE_URL": url}
    if not (reuse and seeded_items(url, bank) == n_items):
        t0 = time.perf_counter()
        subprocess.run([*CLI, "seed-demo", "--bank", bank, "--items", str(n_items), "--students", str(n_students)],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"[{label}] seeded {bank} in {time.perf_counter() - t0:.0f} s", flush=True)
    attempts = bank_attempts(url, bank)
    copy_before, copy_bytes = raw_copy(url, bank)
    with tempfile.TemporaryDirectory(prefix="irt-bench-scale-home-") as folder:
        home = Path(folder)
        code, wall, rss, out, samples = calibrate(url, bank, home)
        match = re.search(r"dagster_run_id: (\S+)", out)
        windows = run_step_windows(home, match.group(1)) if match else {}
    steps = {step: end - start for step, (start, end) in windows.items()}
    copy_after, _ = raw_copy(url, bank)
    row = dict(size=label, attempts=attempts, items=n_items, students=n_students, status=code,
               wall=wall, rss=rss, copy=min(copy_before, copy_after), copy_bytes=copy_bytes,
               copies=(copy_before, copy_after), steps=steps, peaks=step_peaks(windows, samples))
    return row, missed(row)


def missed(row: dict) -> list[str]:
    problems = []
    steps, label = row["steps"], row["size"]
    if row["status"] != 0:
        problems.append(f"calibrate exited with {row['status']}")
    if label not in ("10m", "50m"):
        return problems
    ratio = steps.get("response_matrix", float("inf")) / row["copy"]
    if ratio > MAX_READ_RATIO:
        problems.append(f"response_matrix is {ratio:.2f}x the raw COPY (target <= {MAX_READ_RATIO})")
    if row["rss"] > MAX_RSS_BYTES[label]:
        problems.append(f"peak RSS {row['rss'] / 2**20:.0f} MiB > {MAX_RSS_BYTES[label] >> 20} MiB")
    em = steps.get(EM_STEP, 0.0)
    for step, seconds in steps.items():
        if step != EM_STEP and seconds > em:
            problems.append(f"{step} {seconds:.2f} s > the EM step's {em:.2f} s")
    return problems


def print_table(rows: list[dict]) -> None:
    width = 26
    print(f"\n{'':<{width}}" + "".join(f"{r['size']:>12}" for r in rows))

    def line(name: str, values) -> None:
        print(f"{name:<{width}}" + "".join(f"{v:>12}" for v in values))

    line("attempts", [f"{r['attempts']:,}" for r in rows])
    line("items x students", [f"{r['items']}x{r['students'] // 1000}k" for r in rows])
    line("raw binary COPY s", [f"{r['copy']:.2f}" for r in rows])
    line("  (before / after)", [f"{r['copies'][0]:.1f}/{r['copies'][1]:.1f}" for r in rows])
    line("  MB moved", [f"{r['copy_bytes'] / 1e6:.0f}" for r in rows])
    for step in STEPS:
        line(f"{step} s", [f"{r['steps'].get(step, float('nan')):.2f}" for r in rows])
    line("response_matrix / COPY", [f"{r['steps'].get('response_matrix', float('nan')) / r['copy']:.2f}"
                                    for r in rows])
    line("calibrate wall s", [f"{r['wall']:.1f}" for r in rows])
    line("calibrate peak RSS MiB", [f"{r['rss'] / 2**20:.0f}" for r in rows])
    for step in STEPS:
        line(f"  RSS in {step}", [f"{r['peaks'].get(step, 0) / 2**20:.0f}" for r in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL URL (default: IRT_DATABASE_URL, else the embedded database)")
    parser.add_argument("--sizes", default="1m,10m", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--with-50m", action="store_true", help="also 50M attempts (500,000 students)")
    parser.add_argument("--reuse", action="store_true", help="do not re-seed a bank that has its items")
    args = parser.parse_args(argv)
    if args.database_url:
        url = args.database_url
    else:
        from irt_pipeline.storage import database_url

        url = database_url()
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()] + (["50m"] if args.with_50m else [])
    subprocess.run([*CLI, "migrate"], env={**os.environ, "IRT_DATABASE_URL": url}, check=True,
                   stdout=subprocess.DEVNULL)
    rows, problems = [], []
    for label in sizes:
        row, missed_here = run_size(url, label, args.reuse)
        rows.append(row)
        problems += [f"{label}: {p}" for p in missed_here]
        print_table(rows)
    for problem in problems:
        print(f"MISSED: {problem}", file=sys.stderr)
    print("targets met" if not problems else "targets NOT met")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
