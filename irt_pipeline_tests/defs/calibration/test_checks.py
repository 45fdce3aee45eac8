"""The asset checks: the blocking bounds check stops publication; the WARN checks only report."""

from __future__ import annotations

import dataclasses

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from irt_pipeline.defs.calibration import assets as assets_module
from irt_pipeline.defs.calibration.checks import (
    CHECK_EM_CONVERGED,
    CHECK_PARAMETERS_WITHIN_BOUNDS,
    item_quality,
    parameters_within_bounds,
)
from irt_pipeline.defs.calibration.values import PARAMETER_COLUMNS, FitStatistics, SkippedItem
from irt_pipeline_tests.defs.conftest import (
    failure_text,
    load_standard_bank,
    materialized_keys,
    parameter_rows,
    run_job,
    runs,
)


def _stats(rows: list[dict]) -> FitStatistics:
    return FitStatistics(
        calibration_run_id="00000000-0000-4000-8000-000000000001",
        item_bank="b",
        table=pd.DataFrame(rows, columns=list(PARAMETER_COLUMNS)),
        skipped=(SkippedItem(item_id="x", reason="no_variance", response_count=3),),
        convergence_achieved=True,
        iterations_used=3,
        log_likelihood=-10.0,
        started_at=0.0,
    )


def _row(item_id: str, **overrides) -> dict:
    row = dict(item_id=item_id, a=1.0, b=0.0, c=0.2, a_se=0.1, b_se=0.1, c_se=0.05,
               infit_mnsq=1.0, outfit_mnsq=1.0, is_flagged=False, response_count=200,
               flag_reasons=[], item_status="ok", item_rest_corr=0.3, q1_statistic=7.0, q1_df=7.5,
               q1_p_value=0.5, q1_p_adjusted=0.9)
    row.update(overrides)
    return row


def test_item_quality_check_lists_flagged_items_by_reason():
    stats = _stats([
        _row("i1"),
        _row("i2", infit_mnsq=1.45, outfit_mnsq=1.62, is_flagged=True, flag_reasons=["infit", "outfit"]),
        _row("i3", item_rest_corr=-0.3, is_flagged=True, flag_reasons=["possible_miskey", "model_misfit"]),
        _row("i4", a=3.0, a_se=float("nan"), is_flagged=True, flag_reasons=["outfit", "at_bound"]),
    ])
    result = item_quality(stats)
    assert result.passed is False and result.severity == dg.AssetCheckSeverity.WARN
    assert result.metadata["flagged_count"].value == 3
    assert result.metadata["items_by_reason"].value == {
        "infit": ["i2"], "outfit": ["i2", "i4"], "possible_miskey": ["i3"], "model_misfit": ["i3"], "at_bound": ["i4"]}
    assert "3 of 4 item(s) flagged: infit 1, outfit 2, possible_miskey 1, model_misfit 1, at_bound 1" == result.description
    assert item_quality(_stats([_row("i1")])).passed is True


def test_bounds_check_directly():
    bad = _stats([_row("i1"), _row("i2", c=0.4), _row("i3", a_se=float("nan")),
                  _row("i4", a_se=float("nan"), is_flagged=True, flag_reasons=["at_bound"]),
                  _row("i5", b_se=float("inf"))])
    result = parameters_within_bounds(bad)
    assert result.passed is False and result.severity == dg.AssetCheckSeverity.ERROR
    assert result.check_name == CHECK_PARAMETERS_WITHIN_BOUNDS
    assert result.metadata["invalid_count"].value == 3
    assert "i2: c outside" in result.description
    assert "i3: a_se is missing without the reason at_bound or se_unavailable" in result.description
    assert "i5: b_se is not finite" in result.description and "i4" not in result.description
    assert parameters_within_bounds(_stats([_row("i1")])).passed is True


@pytest.mark.db
def test_blocking_check_stops_publication(database_url, instance, calibration_job, monkeypatch):
    bank = load_standard_bank(database_url)
    real_engine = assets_module.calibrate_3pl

    def corrupted_engine(*args, **kwargs):
        result = real_engine(*args, **kwargs)
        a, b_se = result.a.copy(), result.b_se.copy()
        free = int(np.flatnonzero(~result.at_bound.any(axis=1))[1])  # an item with every SE
        a[0], b_se[free] = 5.0, np.nan
        return dataclasses.replace(result, a=a, b_se=b_se)

    monkeypatch.setattr(assets_module, "calibrate_3pl", corrupted_engine)
    result = run_job(calibration_job, instance, database_url, bank.name)
    assert not result.success
    (evaluation,) = [e for e in result.get_asset_check_evaluations()
                     if e.check_name == CHECK_PARAMETERS_WITHIN_BOUNDS]
    assert evaluation.passed is False
    assert evaluation.metadata["invalid_count"].value == 2
    assert "supabase_writes" not in materialized_keys(result)
    assert "fit_statistics" in materialized_keys(result)  # audited, never published
    assert parameter_rows(database_url) == []
    (run,) = runs(database_url, bank.name)
    assert run["status"] == "failed"
    assert run["error"].startswith("CALIBRATION_FAILED: publication stopped by a blocking check")
    assert CHECK_PARAMETERS_WITHIN_BOUNDS in run["error"]
    assert "DagsterAssetCheckFailedError" in failure_text(result)
    assert [e.step_key for e in result.get_step_failure_events()] == ["fit_statistics"]


@pytest.mark.db
def test_non_convergence_warns_but_publishes(database_url, instance, calibration_job):
    bank = load_standard_bank(database_url)
    result = run_job(calibration_job, instance, database_url, bank.name,
                     {"max_iterations": 2, "convergence_threshold": 1e-9})
    assert result.success, failure_text(result)
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == CHECK_EM_CONVERGED]
    assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.WARN
    (run,) = runs(database_url, bank.name)
    assert run["status"] == "completed"
    assert run["convergence_achieved"] is False and run["iterations_used"] == 2
