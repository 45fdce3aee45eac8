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
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from irt_pipeline_tests.dev_server import free_port, log_tail, stop_embedded_postgres, stop_group, wait_for_server

REPO = Path(__file__).resolve().parents[2]
DG = Path(sys.executable).parent / "dg"
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
        stop_embedded_postgres(root / ".irt" / "pgdata")
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
    port = free_port()
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
        wait_for_server(url, proc, log_path)
        with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
            assert b"dagster_webserver_version" in response.read()
        text = log_path.read_text()
        assert "DagsterInvalidConfigError" not in text and "DAGSTER_PG" not in text, log_tail(log_path)
        assert "for storage" in text  # Dagster's temporary DAGSTER_HOME, configured by ./dagster.yaml
    finally:
        if proc is not None:
            stop_group(proc)
        log_path.unlink(missing_ok=True)
    with pytest.raises(ProcessLookupError):  # nothing of the dev server is left behind
        os.killpg(proc.pid, 0)









