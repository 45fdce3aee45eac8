"""Item quality end to end: planted bad items reach irt_item_parameters flagged for the right
reason, with their statistics, under thresholds from the run config (kept in its snapshot)."""

from __future__ import annotations

import numpy as np
import pytest

from irt_pipeline_tests.brief_fixtures import item_uuid
from irt_pipeline_tests.defs.conftest import failure_text, load_matrix, parameter_rows, run_job, runs
from irt_pipeline_tests.engine.planted import planted_bank

pytestmark = pytest.mark.db


def _load(url: str, bank: str = "quality") -> tuple[list[str], np.ndarray]:
    planted = planted_bank(11, n_items=40, n_students=1500, share=0.6,
                           planted={"miskey": 2, "random": 2, "guttman": 2})
    names = [f"{kind}-{j:03d}" for j, kind in enumerate(planted.kinds)]
    load_matrix(url, bank, planted.responses, names)
    return names, planted.kinds


def test_planted_items_are_published_with_their_reasons(database_url, instance, calibration_job):
    names, kinds = _load(database_url)
    result = run_job(calibration_job, instance, database_url, "quality")
    assert result.success, failure_text(result)
    rows = {str(r["item_id"]): r for r in parameter_rows(database_url)}
    by_name = {name: rows[item_uuid(name)] for name in names}
    for name, kind in zip(names, kinds):
        row = by_name[name]
        assert row["is_flagged"] == bool(row["flag_reasons"]), name
        if kind == "miskey":
            assert "possible_miskey" in row["flag_reasons"] and row["item_rest_corr"] < -0.1, (name, row["flag_reasons"])
        elif kind == "random":
            assert "low_discrimination" in row["flag_reasons"], (name, row["flag_reasons"])
        elif kind == "guttman":
            assert {"infit", "outfit", "at_bound"} & set(row["flag_reasons"]), (name, row["flag_reasons"])
        else:
            assert row["q1_p_value"] is not None and 0 <= row["q1_p_value"] <= row["q1_p_adjusted"] <= 1
    clean = [by_name[n] for n, k in zip(names, kinds) if k == "ok"]
    assert sum(r["is_flagged"] for r in clean) <= 1
    # an SE is NULL exactly where the item has a parameter at its bound
    for row in rows.values():
        missing = any(row[f"{p}_se"] is None for p in "abc")
        assert missing == bool({"at_bound", "se_unavailable"} & set(row["flag_reasons"])), row
    (run,) = runs(database_url, "quality")
    assert run["items_flagged"] == sum(r["is_flagged"] for r in rows.values())


def test_thresholds_come_from_the_run_config_and_are_kept_in_its_snapshot(database_url, instance, calibration_job):
    _load(database_url)
    flags = {"mnsq_lower": 0.5, "mnsq_upper": 1.5, "low_discrimination_item_rest": 0.95, "misfit_fdr": 0.05}
    result = run_job(calibration_job, instance, database_url, "quality", config={"flags": flags})
    assert result.success, failure_text(result)
    rows = parameter_rows(database_url)
    # every item correlates below 0.95 with its rest score: all flagged, for that reason or a miskey
    assert all({"low_discrimination", "possible_miskey"} & set(r["flag_reasons"]) for r in rows)
    (run,) = runs(database_url, "quality")
    assert run["config"]["flags"] == {**flags, "miskey_item_rest": -0.05}
    assert run["config"]["se_method"] == "block"


def test_contradictory_thresholds_fail_the_run_before_anything_is_read(database_url, instance, calibration_job):
    _load(database_url)
    result = run_job(calibration_job, instance, database_url, "quality",
                     config={"flags": {"miskey_item_rest": -0.01, "low_discrimination_item_rest": -0.2}})
    assert not result.success
    assert "miskey_item_rest (-0.01) must not exceed low_discrimination_item_rest (-0.2)" in failure_text(result)
    assert runs(database_url, "quality") == []


def test_full_information_standard_errors_on_request(database_url, instance, calibration_job):
    """se_method: full gives the SEs with the cross-item terms (Louis 1982 over all items): never
    smaller than the per-item blocks' by more than rounding, and NULL at the same bounds."""
    _load(database_url)
    blocks = run_job(calibration_job, instance, database_url, "quality")
    assert blocks.success, failure_text(blocks)
    block_rows = {str(r["item_id"]): r for r in parameter_rows(database_url)}
    full = run_job(calibration_job, instance, database_url, "quality", config={"se_method": "full"})
    assert full.success, failure_text(full)
    (event,) = [e for e in full.get_asset_materialization_events() if e.asset_key.to_user_string() == "item_parameters"]
    assert event.materialization.metadata["se_method"].value == "full"
    second = runs(database_url, "quality")[-1]
    assert second["config"]["se_method"] == "full"
    ratios = []
    for r in parameter_rows(database_url, str(second["id"])):
        block = block_rows[str(r["item_id"])]
        for p in "abc":
            assert (r[f"{p}_se"] is None) == (block[f"{p}_se"] is None) or abs(r[p] - block[p]) > 1e-3
            if r[f"{p}_se"] is not None and block[f"{p}_se"] is not None and abs(r[p] - block[p]) < 1e-6:
                ratios.append(r[f"{p}_se"] / block[f"{p}_se"])
    assert ratios and min(ratios) > 0.99 and np.median(ratios) > 1.0
