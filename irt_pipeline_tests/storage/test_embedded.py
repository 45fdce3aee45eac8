"""Where the database is: IRT_DATABASE_URL, else one embedded server shared by every process."""

from __future__ import annotations

import json
import os
import signal
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from irt_pipeline.storage import embedded

PROBE = """
import json
from irt_pipeline.storage import connect, database_url
url = database_url()
with connect(url) as conn:
    started, data_dir = conn.execute("SELECT pg_postmaster_start_time()::text, current_setting('data_directory')").fetchone()
print(json.dumps([url, started, data_dir]))
"""


def test_database_url_prefers_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("IRT_DATABASE_URL", "postgresql://u:p@db.example:5432/irt")
    monkeypatch.setenv("IRT_HOME", str(tmp_path))
    assert embedded.database_url() == "postgresql://u:p@db.example:5432/irt"
    assert not (tmp_path / ".irt").exists()


def test_project_root_is_irt_home_else_the_checkout(monkeypatch, tmp_path):
    monkeypatch.delenv("IRT_HOME", raising=False)
    assert (embedded.project_root() / "pyproject.toml").is_file()
    assert (embedded.project_root() / "irt_pipeline" / "storage" / "embedded.py").is_file()
    monkeypatch.setenv("IRT_HOME", str(tmp_path))
    assert embedded.project_root() == tmp_path.resolve()


def probe_concurrently(home: Path, n: int) -> list[list[str]]:
    env = {k: v for k, v in os.environ.items() if k != "IRT_DATABASE_URL"} | {"IRT_HOME": str(home)}
    procs = [subprocess.Popen([sys.executable, "-c", PROBE], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(n)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    return results


def stop_server(pgdata: Path) -> None:
    """Fast shutdown of the server this test started, by its PID; waits until it is down."""
    pid_file = pgdata / "postmaster.pid"
    try:
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
    except (FileNotFoundError, ProcessLookupError):
        return
    deadline = time.monotonic() + 20
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.db
def test_concurrent_processes_share_one_embedded_server():
    # Not pytest's tmp_path: a pytest session starting meanwhile makes its root private again,
    # and the server runs as the "pgserver" OS user when we are root.
    home = Path(tempfile.mkdtemp(prefix="irt-test-home-"))
    pgdata = home / ".irt" / "pgdata"
    try:
        results = probe_concurrently(home, 3)
        assert len({tuple(r) for r in results}) == 1          # same URL, same server start
        assert Path(results[0][2]) == pgdata.resolve()

        # It outlives the processes that started it: a later process reuses it.
        assert probe_concurrently(home, 1)[0] == results[0]

        # A stale postmaster.pid naming a live process that is not postgres does not fool it.
        stop_server(pgdata)
        (pgdata / "postmaster.pid").write_text(f"{os.getpid()}\n{pgdata}\n0\n5432\n{pgdata}\n\n  1 1\nready\n")
        restarted = probe_concurrently(home, 2)
        assert restarted[0] == restarted[1] and restarted[0][1] != results[0][1]
    finally:
        stop_server(pgdata)
        shutil.rmtree(home, ignore_errors=True)
