"""Starting and stopping `dg dev` / `dagster dev` in tests (the first-commands test and the
browser test): a free loopback port, waiting for the webserver, and stopping everything the
command started (its process group, and an embedded PostgreSQL a sensor may have started)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

SERVER_START_SECONDS = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(log_path: Path) -> str:
    return log_path.read_text()[-4000:] if log_path.exists() else ""


def wait_for_server(url: str, proc: subprocess.Popen, log_path: Path) -> None:
    """Return once `url`/server_info answers 200; fail the test (with the log's tail) if the
    process exits first or nothing answers within SERVER_START_SECONDS."""
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[:3]} exited with {proc.returncode}:\n{log_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{proc.args[:3]} did not answer {url}/server_info within {SERVER_START_SECONDS} s:\n"
                f"{log_tail(log_path)}")


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the whole process group (dg, webserver, daemon, code servers, run workers), then
    SIGKILL (the dev server does not always exit on SIGTERM); wait until the group is gone."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)
    for _ in range(50):  # the group's other members are reaped by init: wait until they are gone
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def stop_embedded_postgres(pgdata: Path) -> None:
    """Fast shutdown of an embedded server started with cleanup_mode=None (it outlives the
    process that started it)."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        os.kill(pid, signal.SIGINT)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
