"""The production topology as three processes, the way README "Deploying" runs them:

* the code server, with the command of the code-location image (the Dockerfile's CMD, host and
  port replaced by loopback and a free port): `dagster code-server start -m irt_pipeline.definitions
  --location-name irt_pipeline ...`;
* the webserver and the daemon, on `deploy/workspace.yaml` (a grpc_server entry that points at
  that server) and a DAGSTER_HOME holding an unchanged copy of `deploy/dagster.yaml`
  (dagster-postgres, the run queue's one-run-per-bank limits, run monitoring).

Two fresh databases on the test server (the system PostgreSQL in CI, IRT_TEST_DATABASE_URL; the
embedded one otherwise), dropped afterwards: one for Dagster's storage (schema `dagster`, as
deploy/dagster.yaml asks), one migrated for the data (IRT_DATABASE_URL). Every process gets the
environment deploy/dagster.yaml and the code location need; the run workers are started by the
code server (the default run launcher) and inherit its environment, as in a container.

The tests drive the webserver's GraphQL API (what the UI does: launch runs, a backfill, turn a
sensor on). Each process runs in its own session and its whole process group is stopped
afterwards (dev_server.stop_group); the logs go to e2e-artifacts/topology-*.log.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict

from irt_pipeline_tests.conftest import fresh_database
from irt_pipeline_tests.dev_server import free_port, log_tail, stop_group, wait_for_server

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ARTIFACTS = REPO / "e2e-artifacts"
LOCATION = "irt_pipeline"
REPOSITORY = "__repository__"  # the repository of a Definitions-based code location
REPOSITORY_SELECTOR = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
LOCATION_LOAD_SECONDS = 120


def code_server_command(host: str, port: int) -> list[str]:
    """The Dockerfile's CMD with `host` and `port`: the test runs the image's own command."""
    (line,) = [l for l in (REPO / "Dockerfile").read_text().splitlines() if l.startswith("CMD ")]
    command = json.loads(line[len("CMD "):])
    assert command[:3] == ["dagster", "code-server", "start"], command
    command[command.index("-h") + 1] = host
    command[command.index("-p") + 1] = str(port)
    return [str(BIN / command[0]), *command[1:]]


def dagster_pg_env(storage_url: str) -> dict[str, str]:
    """DAGSTER_PG_* (deploy/dagster.yaml) for a database URL; PGHOST for a Unix-socket server."""
    info = conninfo_to_dict(storage_url)
    host = info.get("host", "")
    env = {}
    if host.startswith("/"):  # the embedded server: an empty host makes libpq read PGHOST
        env["PGHOST"] = host
        host = ""
    env.update({
        "DAGSTER_PG_HOST": host,
        "DAGSTER_PG_PORT": str(info.get("port") or 5432),
        "DAGSTER_PG_USER": info.get("user") or "postgres",
        "DAGSTER_PG_PASSWORD": info.get("password") or "",
        "DAGSTER_PG_DB": info["dbname"],
    })
    return env


@dataclass
class Topology:
    url: str                       # the webserver
    data_url: str                  # IRT_DATABASE_URL of the code location
    dagster_home: Path
    code_server_port: int
    logs: dict[str, Path] = field(default_factory=dict)

    # -- GraphQL -------------------------------------------------------------------------------
    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = json.loads(response.read())
        assert not payload.get("errors"), payload["errors"]
        return payload["data"]

    def launch_run(self, bank: str, run_config: Mapping[str, Any] | None = None) -> str:
        """A run of calibration_job for one bank, as the launchpad submits it (tag dagster/partition)."""
        data = self.graphql(LAUNCH_RUN, {"executionParams": {
            "selector": {**REPOSITORY_SELECTOR, "jobName": "calibration_job"},
            "runConfigData": dict(run_config or {}),
            "mode": "default",
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": bank}]},
        }})["launchPipelineExecution"]
        assert data["__typename"] == "LaunchRunSuccess", data
        return data["run"]["runId"]

    def launch_asset_backfill(self, banks: Sequence[str], assets: Sequence[str],
                              run_config: Mapping[str, Any] | None = None) -> str:
        """The asset graph's "Materialize all..." over several banks: an asset backfill."""
        data = self.graphql(LAUNCH_BACKFILL, {"backfillParams": {
            "partitionNames": list(banks),
            "assetSelection": [{"path": [name]} for name in assets],
            "runConfigData": dict(run_config or {}),
            "title": "parallel banks test",
        }})["launchPartitionBackfill"]
        assert data["__typename"] == "LaunchBackfillSuccess", data
        return data["backfillId"]

    def add_bank(self, bank: str) -> None:
        data = self.graphql(ADD_PARTITION, {"repositorySelector": REPOSITORY_SELECTOR,
                                            "partitionsDefName": "item_bank", "partitionKey": bank})
        assert data["addDynamicPartition"]["__typename"] in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"), data

    def runs(self, *, run_ids: Sequence[str] | None = None, tags: Mapping[str, str] | None = None) -> list[dict]:
        run_filter: dict[str, Any] = {}
        if run_ids is not None:
            run_filter["runIds"] = list(run_ids)
        if tags:
            run_filter["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        data = self.graphql(RUNS, {"filter": run_filter})["runsOrError"]
        assert data["__typename"] == "Runs", data
        return [{**r, "tags": {t["key"]: t["value"] for t in r["tags"]}} for r in data["results"]]

    def wait_for_runs(self, *, count: int, timeout: float, poll: float = 0.5, **filters) -> list[dict]:
        """The `count` runs matching `filters` once all have finished (fails after `timeout` s)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.runs(**filters)
            if len(found) >= count and all(r["status"] in FINISHED for r in found):
                return found
            if time.monotonic() > deadline:
                pytest.fail(f"runs {filters} not finished within {timeout} s: "
                            f"{[(r['runId'][:8], r['status']) for r in found]}\n{self.log_tails()}")
            time.sleep(poll)

    def log_tails(self) -> str:
        return "\n".join(f"--- {name} ---\n{log_tail(path)[-2500:]}" for name, path in self.logs.items())


LAUNCH_RUN = """
mutation ($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}"""
LAUNCH_BACKFILL = """
mutation ($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}"""
ADD_PARTITION = """
mutation ($repositorySelector: RepositorySelector!, $partitionsDefName: String!, $partitionKey: String!) {
  addDynamicPartition(repositorySelector: $repositorySelector, partitionsDefName: $partitionsDefName,
                      partitionKey: $partitionKey) {
    __typename
    ... on PythonError { message }
    ... on Error { message }
  }
}"""
RUNS = """
query ($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId status creationTime startTime endTime tags { key value } } }
    ... on PythonError { message }
  }
}"""
WORKSPACE = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name loadStatus
        displayMetadata { key value }
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
}"""


def _wait_for_location(topology: Topology, procs: Mapping[str, subprocess.Popen]) -> list[dict]:
    """The webserver's workspace once the gRPC location has loaded (it answers before that)."""
    deadline = time.monotonic() + LOCATION_LOAD_SECONDS
    while True:
        for name, proc in procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}:\n{topology.log_tails()}")
        entries = topology.graphql(WORKSPACE)["workspaceOrError"]["locationEntries"]
        loaded = [e for e in entries if e["loadStatus"] == "LOADED"]
        if loaded and loaded[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation":
            return entries
        if loaded and loaded[0]["locationOrLoadError"]["__typename"] == "PythonError":
            # the code server was still loading when the webserver asked: load it again
            topology.graphql('mutation { reloadRepositoryLocation(repositoryLocationName: "%s") '
                             '{ __typename } }' % LOCATION)
        if time.monotonic() > deadline:
            pytest.fail(f"the code location did not load within {LOCATION_LOAD_SECONDS} s: {entries}\n"
                        f"{topology.log_tails()}")
        time.sleep(0.5)


@pytest.fixture(scope="package")
def topology(pg_server_url: str) -> Iterator[Topology]:
    ARTIFACTS.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="irt-topology-"))
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")  # unchanged
    procs: dict[str, subprocess.Popen] = {}
    with ExitStack() as stack:
        storage_url = stack.enter_context(
            fresh_database(pg_server_url, prepare="CREATE SCHEMA dagster", migrate=False))
        data_url = stack.enter_context(fresh_database(pg_server_url))
        grpc_port, web_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DAGSTER_", "IRT_")) and k not in ("PGSSLMODE", "PGHOST")}
        env.update({
            **dagster_pg_env(storage_url),
            "DAGSTER_HOME": str(home),
            "IRT_DATABASE_URL": data_url,
            "IRT_CODE_SERVER_HOST": "127.0.0.1",      # deploy/workspace.yaml
            "IRT_CODE_SERVER_PORT": str(grpc_port),
            "IRT_IMPORT_QUIET_MINUTES": "0",          # an import counts as complete at once
            "NO_COLOR": "1",
        })
        topology = Topology(url=f"http://127.0.0.1:{web_port}", data_url=data_url, dagster_home=home,
                            code_server_port=grpc_port)
        commands = {
            "code-server": code_server_command("127.0.0.1", grpc_port),
            "webserver": [str(BIN / "dagster-webserver"), "-w", "deploy/workspace.yaml",
                          "-h", "127.0.0.1", "-p", str(web_port)],
            "daemon": [str(BIN / "dagster-daemon"), "run", "-w", "deploy/workspace.yaml"],
        }
        try:
            for name, command in commands.items():
                topology.logs[name] = ARTIFACTS / f"topology-{name}.log"
                with open(topology.logs[name], "w") as log:
                    procs[name] = subprocess.Popen(command, cwd=REPO, env=env, stdout=log,
                                                   stderr=subprocess.STDOUT, start_new_session=True)
            wait_for_server(topology.url, procs["webserver"], topology.logs["webserver"])
            _wait_for_location(topology, procs)
            yield topology
        finally:
            for name in ("webserver", "daemon", "code-server"):
                if name in procs:
                    stop_group(procs[name])
    shutil.rmtree(root, ignore_errors=True)
