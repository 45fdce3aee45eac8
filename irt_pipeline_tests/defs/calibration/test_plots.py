"""Pictures and flagged-item tables on the asset pages (plots.py, reporting.py, the assets)."""

from __future__ import annotations

import base64
import dataclasses
import re

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from irt_pipeline.defs.calibration import assets as assets_module
from irt_pipeline.defs.calibration import plots
from irt_pipeline.defs.calibration.reporting import flagged_items_markdown
from irt_pipeline.engine import calibrate_3pl, item_fit
from irt_pipeline.engine.quality import assess_items
from irt_pipeline_tests.brief_fixtures import item_uuid
from irt_pipeline_tests.defs.conftest import failure_text, load_standard_bank, run_job

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_PNG_BYTES = 40_000  # stored in the event log with every materialization


def png_of(markdown: str) -> bytes:
    match = re.fullmatch(r"!\[[^\]]+\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert match, markdown[:80]
    return base64.b64decode(match.group(1))


@pytest.fixture(scope="module")
def calibrated():
    """400 students x 25 items: 24 from the 3PL and one Guttman step (flagged)."""
    rng = np.random.default_rng(3)
    theta = rng.normal(size=400)
    a, b, c = rng.uniform(0.8, 1.8, 24), rng.normal(size=24), np.full(24, 0.15)
    p = c + (1 - c) / (1 + np.exp(-a * (theta[:, None] - b)))
    dense = np.column_stack([(rng.random(p.shape) < p), theta > 0.1]).astype(float)
    matrix = sp.csr_matrix(np.where(dense > 0, 1.0, -1.0))
    result = calibrate_3pl(matrix)
    fit = item_fit(matrix, result)
    return matrix, result, fit, fit.flagged()


def test_convergence_plot_is_a_small_png(calibrated):
    _, result, _, _ = calibrated
    data = png_of(plots.convergence_plot(result.log_likelihood_trace, result.max_change_trace, 0.001))
    assert data.startswith(PNG_MAGIC) and len(data) < MAX_PNG_BYTES


def test_scatter_marks_flagged_items(calibrated):
    _, result, _, flagged = calibrated
    assert flagged[-1] and flagged.sum() == 1
    data = png_of(plots.parameter_scatter(result.a, result.b, flagged))
    assert data.startswith(PNG_MAGIC) and len(data) < MAX_PNG_BYTES
    assert png_of(plots.parameter_scatter(result.a, result.b)).startswith(PNG_MAGIC)  # nothing flagged


def test_empirical_icc_plot_draws_the_flagged_items_only(calibrated):
    matrix, result, fit, flagged = calibrated
    ids = [f"item-{j}" for j in range(matrix.shape[1])]
    quality = assess_items(matrix, fit)
    assert quality.is_flagged[-1]
    data = png_of(plots.empirical_icc_plot(result, ids, quality))
    assert data.startswith(PNG_MAGIC) and len(data) < MAX_PNG_BYTES
    quiet = dataclasses.replace(quality, reasons=tuple(() for _ in quality.reasons))
    assert plots.empirical_icc_plot(result, ids, quiet) is None


def test_most_severe_orders_by_q1_then_mean_square(calibrated):
    matrix, _, fit, _ = calibrated
    quality = assess_items(matrix, fit)
    flagged = np.flatnonzero(quality.is_flagged)
    order = plots.most_severe(quality, limit=len(flagged))
    assert sorted(order.tolist()) == flagged.tolist()
    p = np.nan_to_num(quality.grouped.p_adjusted[order], nan=1.0)
    assert (np.diff(p) >= 0).all()


def test_wilson_interval_contains_the_proportion_and_stays_in_0_1():
    low, high = plots.wilson_interval(np.array([0.0, 5.0, 20.0]), np.array([20.0, 20.0, 20.0]))
    assert (low >= 0).all() and (high <= 1).all() and low[0] == 0 and high[2] == pytest.approx(1.0)
    assert low[1] < 0.25 < high[1]


def test_flagged_items_table():
    table = pd.DataFrame({
        "item_id": ["i1", "i2", "i3"], "a": [1.0, 3.0, 0.5], "b": [0.0, 1.0, -1.0], "c": [0.1, 0.0, 0.2],
        "infit_mnsq": [1.0, 0.5, 1.4], "outfit_mnsq": [1.0, 0.2, 1.2], "is_flagged": [False, True, True],
        "response_count": [200, 300, 400], "flag_reasons": [[], ["outfit", "at_bound"], ["infit", "model_misfit"]],
        "item_rest_corr": [0.3, 0.6, 0.1], "q1_p_adjusted": [0.9, 0.02, 1e-5],
    })
    lines = flagged_items_markdown(table).splitlines()
    assert lines[0].startswith("| item_id | reasons | a | b | c | infit MNSQ | outfit MNSQ | item-rest r | Q1 p (BH) |")
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["i3", "i2"]  # the smallest Q1 p first
    assert "| i2 | outfit, at_bound | 3.000 | 1.000 | 0.000 | 0.500 | 0.200 | 0.600 | 0.020 | 300 |" in lines
    assert "1 more flagged item(s) not shown" in flagged_items_markdown(table, limit=1)
    assert flagged_items_markdown(table.assign(is_flagged=False)).startswith("No item flagged")


def _metadata(result, asset: str) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    return event.materialization.metadata


@pytest.mark.db
def test_the_asset_pages_carry_the_pictures_and_the_table(database_url, instance, calibration_job):
    bank = load_standard_bank(database_url, n_students=300)
    result = run_job(calibration_job, instance, database_url, bank.name)
    assert result.success, failure_text(result)
    params = _metadata(result, "item_parameters")
    assert png_of(params["convergence_plot"].value).startswith(PNG_MAGIC)
    fit = _metadata(result, "fit_statistics")
    for key in ("a_vs_b_plot", "empirical_icc_plot"):
        assert png_of(fit[key].value).startswith(PNG_MAGIC)
    assert item_uuid(bank.misfit) in fit["flagged_items_table"].value


@pytest.mark.db
def test_a_picture_that_fails_is_left_out_and_the_run_succeeds(database_url, instance, calibration_job, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no canvas")

    monkeypatch.setattr(assets_module.plots, "parameter_scatter", broken)
    bank = load_standard_bank(database_url, n_students=300)
    result = run_job(calibration_job, instance, database_url, bank.name)
    assert result.success, failure_text(result)
    fit = _metadata(result, "fit_statistics")
    assert "a_vs_b_plot" not in fit and "empirical_icc_plot" in fit
    warnings = [e.message for e in instance.all_logs(result.run_id) if "not drawn" in (e.user_message or "")]
    assert warnings, "the failed picture is logged"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk."""
    assert data.startswith(PNG_MAGIC) and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def assert_small_png(markdown: str | None) -> bytes:
    assert markdown is not None
    data = png_of(markdown)
    width, height = png_size(data)
    assert 200 <= width <= 800 and 200 <= height <= 500, (width, height)
    assert len(data) < MAX_PNG_BYTES
    return data


@pytest.fixture(scope="module")
def anchors():
    """40 anchors linked close to the identity, three of them moved by more than half a logit."""
    rng = np.random.default_rng(5)
    bank_b = rng.normal(size=40)
    linked_b = bank_b + rng.normal(scale=0.08, size=40)
    drifted = np.zeros(40, dtype=bool)
    drifted[[3, 17, 30]] = True
    linked_b[drifted] += [0.7, -0.9, 0.55]
    return bank_b, linked_b, drifted


def test_anchor_drift_plot_marks_the_drifted_anchors(anchors):
    bank_b, linked_b, drifted = anchors
    markdown = plots.anchor_drift_plot(bank_b, linked_b, drifted, A=1.08, B=-0.13)
    assert markdown.startswith("![anchor drift](data:image/png;base64,")
    assert_small_png(markdown)


@pytest.mark.parametrize("share", ["none", "all"])
def test_anchor_drift_plot_with_no_or_every_anchor_drifted(anchors, share):
    bank_b, linked_b, _ = anchors
    drifted = np.full(bank_b.size, share == "all")
    assert_small_png(plots.anchor_drift_plot(bank_b, linked_b, drifted, 1.0, 0.0))


def test_anchor_drift_plot_without_anchors_is_none():
    empty = np.array([])
    assert plots.anchor_drift_plot(empty, empty, np.array([], dtype=bool), 1.0, 0.0) is None
    nan = np.array([np.nan, 1.0])
    assert plots.anchor_drift_plot(nan, nan[::-1], [False, True], 1.0, 0.0) is None  # no finite pair


def test_anchor_drift_plot_skips_non_finite_values(anchors):
    bank_b, linked_b, drifted = (x.copy() for x in anchors)
    bank_b[0], linked_b[1], linked_b[2] = np.nan, np.inf, -np.inf
    assert_small_png(plots.anchor_drift_plot(bank_b, linked_b, drifted, np.nan, np.inf))
    assert_small_png(plots.anchor_drift_plot([0.5], [0.5], [False], 1.0, 0.0))  # one anchor


def test_wright_map_of_a_large_run_is_small_and_quick():
    import time

    rng = np.random.default_rng(7)
    theta, item_b = rng.normal(0.3, 1.1, 100_000), rng.normal(0.0, 1.2, 2_000)
    flagged = rng.random(2_000) < 0.04
    started = time.perf_counter()
    markdown = plots.wright_map(theta, item_b, flagged)
    assert time.perf_counter() - started < 10  # binned: about half a second, not one mark per student
    assert markdown.startswith("![Wright map](data:image/png;base64,")
    assert_small_png(markdown)
    assert_small_png(plots.wright_map(theta, item_b))  # nothing flagged


def test_wright_map_with_empty_or_non_finite_input():
    assert plots.wright_map([], []) is None
    assert plots.wright_map([np.nan, np.inf], [-np.inf]) is None
    theta = np.array([0.1, np.nan, np.inf, -0.4, 25.0])  # 25: counted in the top bin
    item_b = np.array([0.0, np.nan, -1e6, 1.2])
    assert_small_png(plots.wright_map(theta, item_b, [False, True, True, False]))
    assert_small_png(plots.wright_map(theta, []))  # students only
    assert_small_png(plots.wright_map([], item_b))  # items only
    assert_small_png(plots.wright_map(np.zeros(50), np.zeros(3)))  # a single bin


def test_wright_map_rejects_a_flag_per_wrong_item():
    with pytest.raises(ValueError, match="flagged"):
        plots.wright_map([0.0, 1.0], [0.0, 1.0], [True])
