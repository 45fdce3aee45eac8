"""When each step of a Dagster run started and ended, from the instance's event log."""

from __future__ import annotations

import dagster as dg


def step_windows(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    """(start, end) wall-clock times of every finished step, STEP_START to STEP_SUCCESS or
    STEP_FAILURE, in start order."""
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for record in instance.get_records_for_run(run_id, limit=100_000).records:
        entry = record.event_log_entry
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = entry.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            ends[event.step_key] = entry.timestamp
    return {k: (starts[k], ends[k]) for k in sorted(starts, key=starts.get) if k in ends}
