"""The demo bank: deterministic, sparse, with misfits and retakes, replaced on re-seeding."""

from __future__ import annotations

import numpy as np
import pytest

from irt_pipeline import storage
from irt_pipeline.errors import ValidationError
from irt_pipeline.storage.demo_simulation import simulate_bank
from irt_pipeline_tests.storage.helpers import add_items

pytestmark = pytest.mark.db

SMALL = {"n_items": 300, "n_students": 1500, "seed": 7}
TINY = {"n_items": 80, "n_students": 200, "seed": 7}


def fingerprint(conn, bank: str) -> tuple:
    return conn.execute(
        "SELECT count(*), md5(string_agg(a.student_id::text || a.item_id::text || a.correct::text"
        " || a.attempted_at::text || a.exam_import_id::text, ',' ORDER BY a.student_id, a.item_id, a.attempted_at))"
        " FROM student_attempts a JOIN items i ON i.id = a.item_id WHERE i.item_bank = %s", (bank,)).fetchone()


def test_seed_demo_is_plausible_and_matches_its_summary(conn):
    summary = storage.seed_demo(conn, item_bank="demo", **SMALL)
    assert summary == {
        "item_bank": "demo", "items": 300, "students": summary["students"], "attempts": summary["attempts"],
        "repeated_attempts": 3, "exam_imports": 6, "low_exposure_items": summary["low_exposure_items"],
        "misfitting_items": 2,
    }
    assert 1400 <= summary["students"] <= 1500
    assert conn.execute("SELECT count(*) FROM items WHERE item_bank = 'demo'").fetchone() == (300,)
    assert conn.execute("SELECT count(*), count(DISTINCT student_id), count(DISTINCT exam_import_id)"
                        " FROM student_attempts").fetchone() == (summary["attempts"], summary["students"], 6)

    # Sparse: about 100 of 300 items per student, so well under half the cells are observed.
    first = storage.read_attempts(conn, "demo")
    assert len(first) == summary["attempts"] - summary["repeated_attempts"]
    assert 0.2 < len(first) / (300 * summary["students"]) < 0.45
    counts = first.groupby("item_id").size().reindex(storage.bank_items(conn, "demo"), fill_value=0)
    assert (counts < 100).sum() == summary["low_exposure_items"]
    assert 15 <= summary["low_exposure_items"] <= 40 and counts.min() < 20 and counts.median() > 300

    # Retakes: a later attempt with the opposite result, which read_attempts ignores.
    retakes = conn.execute(
        "SELECT bool_and(f.correct <> l.correct AND l.attempted_at > f.attempted_at), count(*)"
        " FROM student_attempts f JOIN student_attempts l"
        " ON (l.student_id, l.item_id) = (f.student_id, f.item_id) AND l.id > f.id").fetchone()
    assert retakes == (True, 3)

    truth = conn.execute("SELECT count(*), count(*) FILTER (WHERE misfit), min(c), max(c),"
                         " min(a) FILTER (WHERE NOT misfit) FROM demo_item_truth WHERE item_bank = 'demo'").fetchone()
    assert truth[:2] == (300, 2)
    assert 0 <= truth[2] and truth[3] <= 0.35 and truth[4] >= 0.3
    assert conn.execute("SELECT bool_and(a = 40 AND c = 0) FROM demo_item_truth WHERE misfit").fetchone() == (True,)


def test_seed_demo_is_deterministic_and_reseeding_replaces(conn):
    summary = storage.seed_demo(conn, item_bank="demo", **TINY)
    once = fingerprint(conn, "demo")
    assert once[0] == summary["attempts"]
    assert storage.seed_demo(conn, item_bank="demo", **TINY) == summary
    assert fingerprint(conn, "demo") == once
    storage.seed_demo(conn, item_bank="demo", **{**TINY, "seed": 8})
    assert fingerprint(conn, "demo") != once
    storage.seed_demo(conn, item_bank="other", **{**TINY, "n_items": 50})
    assert conn.execute("SELECT item_bank, count(*) FROM items GROUP BY 1 ORDER BY 1").fetchall() == [
        ("demo", 80), ("other", 50)]
    assert conn.execute("SELECT count(*) FROM demo_item_truth").fetchone() == (130,)


def test_seed_demo_refuses_a_bank_with_real_items(conn):
    add_items(conn, "default", 1)
    with pytest.raises(ValidationError, match="'default' holds 1 item"):
        storage.seed_demo(conn, item_bank="default", **TINY)
    assert conn.execute("SELECT count(*) FROM items").fetchone() == (1,)


def test_simulation_follows_the_3pl_and_misfits_are_steps():
    bank = simulate_bank(n_items=400, n_students=3000, seed=11)
    assert np.array_equal(simulate_bank(400, 3000, 11).correct, bank.correct)
    first = slice(0, bank.item.size - bank.n_repeats)
    theta, item, correct = bank.theta[bank.student[first]], bank.item[first], bank.correct[first]
    p = bank.c[item] + (1 - bank.c[item]) / (1 + np.exp(-bank.a[item] * (theta - bank.b[item])))
    # Observed vs expected correct answers per decile of P: the data follow the stated model.
    deciles = np.minimum((p * 10).astype(int), 9)
    observed = np.bincount(deciles, correct) / np.bincount(deciles)
    expected = np.bincount(deciles, p) / np.bincount(deciles)
    assert np.abs(observed - expected).max() < 0.02
    # Misfits are deterministic steps: right above b, wrong below (nearly always).
    step = bank.misfit[item]
    assert step.sum() > 1000
    assert np.mean(correct[step] == (theta[step] > bank.b[item][step])) > 0.97


def test_reseeding_a_calibrated_bank_replaces_its_calibration_history(conn):
    """irt_item_parameters.item_id is ON DELETE RESTRICT (migration 0007): re-seeding deletes the
    demo bank's runs and their parameter rows first (the items they describe are replaced), and
    only the demo bank's; while a run of the bank is running it refuses with a clear message."""
    from irt_pipeline_tests.storage.helpers import parameter_frame, publish

    storage.seed_demo(conn, item_bank="demo", **TINY)
    other = add_items(conn, "default", 2)
    for bank, items in (("demo", [str(i) for i in storage.bank_items(conn, "demo")][:5]), ("default", other)):
        run_id = storage.start_run(conn, item_bank=bank, config={"model": "3pl"}, dagster_run_id=None)
        publish(conn, run_id, parameter_frame(items))

    storage.seed_demo(conn, item_bank="demo", **{**TINY, "seed": 8})
    assert conn.execute("SELECT item_bank, count(*) FROM irt_calibration_runs GROUP BY 1").fetchall() == [("default", 1)]
    assert conn.execute("SELECT count(*) FROM irt_item_parameters").fetchone() == (2,)
    assert conn.execute("SELECT count(*) FROM items WHERE item_bank = 'demo'").fetchone() == (80,)

    running = storage.start_run(conn, item_bank="demo", config={"model": "3pl"}, dagster_run_id=None)
    with pytest.raises(ValidationError, match=f"'demo' has a calibration running \\(run {running}"):
        storage.seed_demo(conn, item_bank="demo", **TINY)
    assert conn.execute("SELECT count(*) FROM items WHERE item_bank = 'demo'").fetchone() == (80,)
