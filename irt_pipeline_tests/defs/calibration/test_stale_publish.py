"""No stale publish, one snapshot per run (issue 12, section 2).

* A run that does not read its own data (a selection without response_matrix, which would load
  an earlier run's stored matrix) is refused before any audit row is started.
* The run row keeps the data watermark of its snapshot; a run older in data than a completed
  run of its bank is refused publication, with nothing written.
* Items, first attempts and the watermark come from one REPEATABLE READ snapshot: an attempt
  committed in the middle of the read is in none of them.
"""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from irt_pipeline import storage
from irt_pipeline.defs.calibration.assets import ASSETS, CHAIN
from irt_pipeline.defs.resources import RESOURCE_KEY, IrtDatabase
from irt_pipeline.errors import CalibrationFailedError
from irt_pipeline.storage import attempts as attempts_module
from irt_pipeline.storage.runs import ScaleRecord
from irt_pipeline_tests.brief_fixtures import student_uuid
from irt_pipeline_tests.defs.conftest import (
    add_bank_partition,
    failure_text,
    insert_attempts,
    load_standard_bank,
    parameter_rows,
    query,
    run_job,
    runs,
)
from irt_pipeline_tests.storage.helpers import add_items, parameter_frame

pytestmark = pytest.mark.db


def more_attempts(url: str, bank, n_students: int) -> None:
    """n_students new students answer every eligible item of the bank (all correct)."""
    rows = [(student_uuid(f"late-{i}"), item, True, "2026-03-01T10:00:00Z")
            for i in range(n_students) for item in sorted(bank.eligible_ids)]
    insert_attempts(url, rows)


def max_attempt_id(url: str) -> int:
    return query(url, "SELECT max(id) AS m FROM student_attempts")[0]["m"]


def test_a_selection_without_response_matrix_is_refused(database_url, instance, calibration_job):
    bank = load_standard_bank(database_url)
    assert run_job(calibration_job, instance, database_url, bank.name).success
    more_attempts(database_url, bank, 50)
    before = runs(database_url, bank.name)

    add_bank_partition(instance, bank.name)
    # what the UI's "Materialize selected" does: the unselected upstream values are loaded from
    # the IO manager, i.e. the matrix the first run read
    stale = dg.materialize(
        ASSETS, selection=[name for name in CHAIN if name not in ("response_matrix", "eligible_items")],
        instance=instance, partition_key=bank.name, raise_on_error=False,
        resources={RESOURCE_KEY: IrtDatabase(url=database_url), "io_manager": dg.FilesystemIOManager()},
    )
    assert not stale.success
    assert [e.step_key for e in stale.get_step_failure_events()] == ["item_parameters"]
    text = failure_text(stale)
    assert "VALIDATION_ERROR" in text and "must read its own data" in text
    assert "missing from this run: response_matrix, eligible_items" in text
    assert runs(database_url, bank.name) == before  # no audit row started, nothing published


def test_the_run_row_keeps_the_watermark_of_its_snapshot(database_url, instance, calibration_job):
    bank = load_standard_bank(database_url)
    result = run_job(calibration_job, instance, database_url, bank.name)
    assert result.success, failure_text(result)
    (run,) = runs(database_url, bank.name)
    assert run["data_watermark"] == max_attempt_id(database_url)
    assert run["data_read_at"] <= run["started_at"]
    (materialization,) = [e for e in result.get_asset_materialization_events()
                          if e.asset_key.to_user_string() == "response_matrix"]
    assert materialization.materialization.metadata["data_watermark"].value == run["data_watermark"]


def test_a_run_older_in_data_than_a_completed_run_is_not_published(database_url):
    with storage.connect(database_url) as conn:
        items = add_items(conn, "bank-w", 3)
        newer = storage.start_run(conn, item_bank="bank-w", config={}, dagster_run_id=None, data_watermark=200)
        storage.publish_calibration(conn, newer, parameter_frame(items), items_calibrated=3, items_skipped=0,
                                    items_flagged=0, convergence_achieved=True, iterations_used=5,
                                    elapsed_seconds=1.0)
        older = storage.start_run(conn, item_bank="bank-w", config={}, dagster_run_id=None, data_watermark=150)
        with pytest.raises(CalibrationFailedError, match=r"read newer data \(up to id 200\)"):
            storage.publish_calibration(conn, older, parameter_frame(items), items_calibrated=3, items_skipped=0,
                                        items_flagged=0, convergence_achieved=True, iterations_used=5,
                                        elapsed_seconds=1.0)
        assert parameter_rows(database_url, older) == []
        assert storage.get_run(conn, older)["status"] == "running"
        storage.fail_run(conn, older, "test")
        # the same data as the completed run (an equal watermark) is not stale
        same = storage.start_run(conn, item_bank="bank-w", config={}, dagster_run_id=None, data_watermark=200)
        storage.publish_calibration(conn, same, parameter_frame(items), items_calibrated=3, items_skipped=0,
                                    items_flagged=0, convergence_achieved=True, iterations_used=5,
                                    elapsed_seconds=1.0)
        assert storage.get_run(conn, same)["status"] == "completed"
        # another bank's newer data is no reason to refuse
        other_items = add_items(conn, "bank-x", 2)
        other = storage.start_run(conn, item_bank="bank-x", config={}, dagster_run_id=None, data_watermark=10)
        storage.publish_calibration(conn, other, parameter_frame(other_items), items_calibrated=2,
                                    items_skipped=0, items_flagged=0, convergence_achieved=True,
                                    iterations_used=5, elapsed_seconds=1.0)
        assert storage.get_run(conn, other)["status"] == "completed"


def test_items_attempts_and_watermark_come_from_one_snapshot(database_url, monkeypatch):
    bank = load_standard_bank(database_url, n_students=150)
    before_max = max_attempt_id(database_url)
    late_item = sorted(bank.eligible_ids)[0]
    original = attempts_module.bank_items

    def bank_items_then_an_import_commits(conn, item_bank):
        items = original(conn, item_bank)
        # another session commits a new attempt and a new item while the snapshot is being read
        with psycopg.connect(database_url, autocommit=True) as other:
            other.execute("INSERT INTO student_attempts (student_id, item_id, correct) VALUES (%s, %s, true)",
                          (student_uuid("mid-read"), late_item))
        return items

    monkeypatch.setattr(attempts_module, "bank_items", bank_items_then_an_import_commits)
    with storage.connect(database_url) as conn:
        snapshot = attempts_module.read_bank_snapshot(conn, bank.name)
    assert max_attempt_id(database_url) > before_max  # the attempt was committed...
    assert snapshot.data_watermark == before_max      # ...after the snapshot was taken
    assert student_uuid("mid-read") not in set(snapshot.attempts.student_ids)
    assert len(snapshot.attempts) == query(
        database_url, "SELECT count(DISTINCT (student_id, item_id)) AS n FROM student_attempts WHERE id <= %s",
        [before_max])[0]["n"]


def test_a_linked_run_whose_bank_scale_changed_meanwhile_is_not_published(database_url):
    publish = dict(items_calibrated=3, items_skipped=0, items_flagged=0, convergence_achieved=True,
                   iterations_used=5, elapsed_seconds=1.0)
    with storage.connect(database_url) as conn:
        items = add_items(conn, "bank-s", 3)
        first = storage.start_run(conn, item_bank="bank-s", config={}, dagster_run_id=None)
        storage.publish_calibration(conn, first, parameter_frame(items), **publish,
                                    scale=ScaleRecord("initial", None, 0.0, 1.0))
        linked = storage.start_run(conn, item_bank="bank-s", config={}, dagster_run_id=None)
        # linked to the scale of `first`, but meanwhile a `linking: none` run reset the scale
        conn.execute("UPDATE irt_calibration_runs SET scale_run_id = %s WHERE id = %s",
                     (linked, first))  # stands for a newer scale of the bank
        with pytest.raises(CalibrationFailedError, match="is now on the scale of run"):
            storage.publish_calibration(conn, linked, parameter_frame(items), **publish,
                                        scale=ScaleRecord("stocking_lord", first, 0.1, 1.1, 3, 0))
        assert parameter_rows(database_url, linked) == []
        conn.execute("UPDATE irt_calibration_runs SET scale_run_id = id WHERE id = %s", (first,))
        storage.publish_calibration(conn, linked, parameter_frame(items), **publish,
                                    scale=ScaleRecord("stocking_lord", first, 0.1, 1.1, 3, 0))
        row = storage.get_run(conn, linked)
        assert (row["status"], str(row["scale_run_id"]), row["theta_mean"], row["theta_sd"], row["anchor_items"]) \
            == ("completed", first, 0.1, 1.1, 3)
