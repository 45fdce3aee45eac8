"""A Dagster user's first commands, from the root of a clean checkout with no DAGSTER_HOME.

`dg check defs`, `dg dev` and `dagster dev -w workspace.yaml` (the commands Dagster's docs teach)
then read the root dagster.yaml as their instance config: it must be the local instance (SQLite,
no environment variables), not the production one (deploy/dagster.yaml, dagster-postgres from
DAGSTER_PG_*).

The checkout is a copy of the files git tracks or would track (`git ls-files --cached --others
--exclude-standard`: the working tree as a clean clone of it would be, uncommitted edits
included), so ignored local state (.dagster_home, .irt, .venv, e2e-artifacts) cannot help. It is
made outside pytest's basetemp, world-readable: the default-running sensors may start the
embedded PostgreSQL in its .irt, which runs as another OS user when we are root (as in the
browser test). The dev server runs in its own session; its whole process group is stopped
afterwards (SIGTERM, then SIGKILL: like `dagster dev`, it does not always exit on SIGTERM), and
so is an embedded server the sensors may have started.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DG = Path(sys.executable).parent / "dg"
SERVER_START_SECONDS = 120
# What a new user's shell has: none of these (the Makefile exports DAGSTER_HOME; CI may set the rest)
UNSET = ("DAGSTER_HOME", "IRT_DATABASE_URL", "IRT_TEST_DATABASE_URL", "IRT_HOME",
         "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")


@pytest.fixture
def clean_checkout() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="irt-first-commands-"))
    root.chmod(0o755)
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    try:
        for name in filter(None, listed):
            source = REPO / name
            if source.is_file():  # a tracked file deleted in the working tree is left out
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, root / name)
        assert not (root / ".dagster_home").exists() and not (root / ".irt").exists()
        yield root
    finally:
        _stop_embedded_postgres(root / ".irt" / "pgdata")
        shutil.rmtree(root, ignore_errors=True)


def _user_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env["NO_COLOR"] = "1"
    return env


def test_dg_check_defs_from_a_clean_checkout_without_dagster_home(clean_checkout):
    proc = subprocess.run([str(DG), "check", "defs"], cwd=clean_checkout, env=_user_env(),
                          capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "All definitions loaded successfully" in output
    assert "DAGSTER_PG" not in output


@pytest.mark.parametrize("command", [
    [str(DG), "dev"],  # the project from [tool.dg.project] in pyproject.toml
    [str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml"],
], ids=["dg-dev", "dagster-dev-workspace"])
def test_dev_server_from_a_clean_checkout_without_dagster_home_serves_the_ui(clean_checkout, command):
    port = _free_port()
    log_path = clean_checkout.parent / f"{clean_checkout.name}-dev.log"
    proc = None
    try:
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                [*command, "--port", str(port), "--host", "127.0.0.1"],
                cwd=clean_checkout, env=_user_env(), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}"
        status = _wait_for_server(url, proc, log_path)
        assert status == 200, _tail(log_path)
        with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
            assert b"dagster_webserver_version" in response.read()
        text = log_path.read_text()
        assert "DagsterInvalidConfigError" not in text and "DAGSTER_PG" not in text, _tail(log_path)
        assert "for storage" in text  # Dagster's temporary DAGSTER_HOME, configured by ./dagster.yaml
    finally:
        if proc is not None:
            _stop_group(proc)
        log_path.unlink(missing_ok=True)
    with pytest.raises(ProcessLookupError):  # nothing of the dev server is left behind
        os.killpg(proc.pid, 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(log_path: Path) -> str:
    return log_path.read_text()[-4000:] if log_path.exists() else ""


def _wait_for_server(url: str, proc: subprocess.Popen, log_path: Path) -> int | None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[1:3]} exited with {proc.returncode}:\n{_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
                return response.status
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"{proc.args[1:3]} did not answer {url}/server_info within {SERVER_START_SECONDS} s:\n"
                f"{_tail(log_path)}")


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the whole group (dg, webserver, daemon, code servers), then SIGKILL."""
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


def _stop_embedded_postgres(pgdata: Path) -> None:
    """Fast shutdown of an embedded server a sensor started (cleanup_mode=None: it outlives the dev server)."""
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
