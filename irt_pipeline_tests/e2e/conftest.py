"""`dagster dev` on loopback over the embedded demo data, and a headless Debian Chromium.

Everything lives in fresh temporary folders: IRT_HOME (the embedded PostgreSQL, migrated and
seeded with the demo bank by the real CLI) and DAGSTER_HOME (a copy of the root dagster.yaml, the
local instance `make dev` uses, with the `demo` bank registered as an item_bank partition). `dagster dev` is
started as `make dev` starts it (`-w workspace.yaml`), in its own session, and its whole process
group is stopped afterwards (SIGTERM, then SIGKILL: it does not always exit on SIGTERM).

Screenshots and the server log go to e2e-artifacts/ (gitignored).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from irt_pipeline_tests.dev_server import free_port, stop_embedded_postgres, stop_group, wait_for_server

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "e2e-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
DEMO_BANK = "demo"


@dataclass(frozen=True)
class DevServer:
    url: str
    irt_home: Path
    dagster_home: Path

    @property
    def pgdata(self) -> Path:
        return self.irt_home / ".irt" / "pgdata"

    def database_conninfo(self) -> str:
        return f"host={self.pgdata} dbname=postgres user=postgres"




def _cli(env: dict[str, str], *args: str) -> None:
    exe = Path(sys.executable).parent / "irt-pipeline"
    proc = subprocess.run([str(exe), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"irt-pipeline {' '.join(args)}: {proc.stdout}\n{proc.stderr}"








@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def dev_server(artifacts: Path) -> Iterator[DevServer]:
    # not under pytest's basetemp: the embedded server runs as another OS user when we are root
    root = Path(tempfile.mkdtemp(prefix="irt-e2e-"))
    root.chmod(0o755)
    irt_home, dagster_home = root / "irt", root / "dagster_home"
    irt_home.mkdir()
    dagster_home.mkdir()
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {**os.environ, "IRT_HOME": str(irt_home), "DAGSTER_HOME": str(dagster_home)}
    env.pop("IRT_DATABASE_URL", None)  # the embedded database
    env.pop("IRT_TEST_DATABASE_URL", None)
    server = DevServer(url="", irt_home=irt_home, dagster_home=dagster_home)
    proc = None
    try:
        _cli(env, "migrate")
        _cli(env, "seed-demo", "--bank", DEMO_BANK)
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            instance.add_dynamic_partitions("item_bank", [DEMO_BANK])

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = artifacts / "dagster-dev.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml",
                 "-h", "127.0.0.1", "-p", str(port)],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        wait_for_server(url, proc, log)
        yield DevServer(url=url, irt_home=irt_home, dagster_home=dagster_home)
    finally:
        if proc is not None:
            stop_group(proc)
        stop_embedded_postgres(server.pgdata)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():  # never skipped: .ci/run installs it; never downloaded
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        context.close()
