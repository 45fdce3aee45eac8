"""The production topology end to end: an exam import becomes a published calibration.

The code server (the Dockerfile's command), the webserver and the daemon run as three processes
on deploy/workspace.yaml and deploy/dagster.yaml (see conftest.py). `exam_import_sensor` is
set to start from "now" (its cursor set to the newest attempt id, as README documents for turning
it on in production), an exam import arrives (a bank's items and one attempt per student and
item, COPYed into student_attempts), and the sensor is turned on through the webserver (turned
on first, its first tick could come before the import and the next one a minute later). With
IRT_IMPORT_QUIET_MINUTES=0 the sensor's next tick requests one run of `calibration_job` for the
bank, with the production run config (the default multiprocess executor); the daemon's run queue
launches it through the code server, and the run publishes.
"""

from __future__ import annotations

import time

import pytest
import yaml

from irt_pipeline_tests.defs.conftest import load_standard_bank, parameter_rows, query, runs
from irt_pipeline_tests.deploy.conftest import REPO, REPOSITORY_SELECTOR, Topology, code_server_command

SENSOR = {**REPOSITORY_SELECTOR, "sensorName": "exam_import_sensor"}
SET_CURSOR = """
mutation ($sensorSelector: SensorSelector!, $cursor: String) {
  setSensorCursor(sensorSelector: $sensorSelector, cursor: $cursor) {
    __typename ... on PythonError { message } ... on Error { message }
  }
}"""
START_SENSOR = """
mutation ($sensorSelector: SensorSelector!) {
  startSensor(sensorSelector: $sensorSelector) {
    __typename
    ... on Sensor { sensorState { id status } }
    ... on PythonError { message } ... on Error { message }
  }
}"""
STOP_SENSOR = """
mutation ($id: String) { stopSensor(id: $id) { __typename ... on PythonError { message } } }"""
RUN_TIMEOUT = 300


@pytest.mark.db
@pytest.mark.e2e
def test_an_exam_import_is_calibrated_and_published_by_the_three_processes(topology: Topology):
    (entry,) = topology.graphql(WORKSPACE_METADATA)["workspaceOrError"]["locationEntries"]
    metadata = {m["key"]: m["value"] for m in entry["displayMetadata"]}
    assert entry["name"] == "irt_pipeline" and metadata["port"] == str(topology.code_server_port)
    assert "module_name" not in metadata  # loaded from the gRPC server, not imported by the webserver

    # start from now: the attempts other tests loaded are not this import
    (newest,) = query(topology.data_url, "SELECT coalesce(max(id), 0) AS id FROM student_attempts")
    cursor = topology.graphql(SET_CURSOR, {"sensorSelector": SENSOR, "cursor": str(newest["id"])})
    assert cursor["setSensorCursor"]["__typename"] == "Sensor", cursor
    t0 = time.monotonic()
    bank = load_standard_bank(topology.data_url, bank="import-bank", n_students=250, prefix="import/")
    started = topology.graphql(START_SENSOR, {"sensorSelector": SENSOR})["startSensor"]
    assert started["__typename"] == "Sensor" and started["sensorState"]["status"] == "RUNNING", started
    try:
        (run,) = topology.wait_for_runs(count=1, timeout=RUN_TIMEOUT, poll=1.0,
                                        tags={"irt/trigger": "exam_import"})
        print(f"\nexam import -> published calibration: {time.monotonic() - t0:.1f} s "
              f"(run {run['endTime'] - run['startTime']:.1f} s)")
    finally:
        topology.graphql(STOP_SENSOR, {"id": started["sensorState"]["id"]})

    assert run["status"] == "SUCCESS", topology.log_tails()
    assert run["tags"]["dagster/partition"] == bank.name
    (latest,) = query(topology.data_url, "SELECT max(id) AS id FROM student_attempts")
    assert run["tags"]["irt/attempts_through_id"] == str(latest["id"])
    (row,) = runs(topology.data_url, bank.name)
    assert row["status"] == "completed" and row["dagster_run_id"] == run["runId"]
    published = parameter_rows(topology.data_url, row["id"])
    assert {str(p["item_id"]) for p in published} == bank.eligible_ids
    assert row["items_calibrated"] == len(published)


WORKSPACE_METADATA = """
query { workspaceOrError { ... on Workspace { locationEntries { name displayMetadata { key value } } } } }"""


def test_the_deploy_files_name_one_code_server():
    """deploy/workspace.yaml points at a gRPC server named like the location the image serves."""
    workspace = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    assert entry["grpc_server"] == {"host": {"env": "IRT_CODE_SERVER_HOST"},
                                    "port": {"env": "IRT_CODE_SERVER_PORT"}, "location_name": "irt_pipeline"}
    command = code_server_command("0.0.0.0", 4000)
    assert command[1:] == ["code-server", "start", "-m", "irt_pipeline.definitions",
                           "--location-name", entry["grpc_server"]["location_name"], "-h", "0.0.0.0", "-p", "4000"]
