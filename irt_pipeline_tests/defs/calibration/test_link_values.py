"""`link_calibration` (values.py) and the `anchors_stable` check, without Dagster or a database:
the method chosen, the id mapping between the run's items and the bank values, the per-item
anchor columns, and the WARN threshold."""

from __future__ import annotations

import dataclasses

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from irt_pipeline.defs.calibration.checks import anchors_stable
from irt_pipeline.defs.calibration.config import CalibrationConfig
from irt_pipeline.defs.calibration.reporting import drifted_items_markdown
from irt_pipeline.defs.calibration.values import (
    METHOD_INITIAL,
    METHOD_NONE,
    METHOD_STOCKING_LORD,
    ItemParameters,
    link_calibration,
)
from irt_pipeline.engine import calibrate_3pl
from irt_pipeline.engine.linking import LinkingError, transform_parameters
from irt_pipeline.storage.scale import BankScale
from irt_pipeline_tests.brief_fixtures import item_uuid

N_ITEMS = 12
ITEM_IDS = tuple(item_uuid(f"link-{j}") for j in range(N_ITEMS))
SCALE_RUN = "00000000-0000-4000-8000-0000000000aa"


@pytest.fixture(scope="module")
def fitted() -> ItemParameters:
    rng = np.random.default_rng(5)
    a, b, c = rng.uniform(0.8, 2.0, N_ITEMS), rng.normal(0, 1, N_ITEMS), rng.uniform(0.05, 0.2, N_ITEMS)
    theta = rng.normal(0, 1, 1500)
    p = c + (1 - c) / (1 + np.exp(-a * (theta[:, None] - b)))
    result = calibrate_3pl((rng.random(p.shape) < p).astype(float))
    return ItemParameters(calibration_run_id="00000000-0000-4000-8000-000000000001", item_bank="bank",
                          settings=CalibrationConfig().settings(), item_ids=ITEM_IDS, result=result,
                          started_at=0.0, calibration_seconds=0.0)


def bank_values(fitted: ItemParameters, rows, A: float, B: float, shift=None) -> BankScale:
    """Bank values of the run's items `rows` = the run's estimates moved by (A, B), listed in
    reverse order (the database returns them sorted by id, not in the run's order)."""
    r = fitted.result
    a, b, c = transform_parameters(r.a[rows], r.b[rows], r.c[rows], A, B)
    if shift is not None:
        b = b + shift
    frame = pd.DataFrame({"item_id": [ITEM_IDS[j] for j in rows], "a": a, "b": b, "c": c})
    return BankScale(SCALE_RUN, frame.iloc[::-1].reset_index(drop=True))


def test_a_bank_without_a_scale_gets_an_initial_run(fitted):
    empty = BankScale(None, pd.DataFrame({"item_id": [], "a": [], "b": [], "c": []}))
    linking = link_calibration(fitted, empty)
    assert linking.record.method == METHOD_INITIAL and linking.record.scale_run_id is None
    assert (linking.A, linking.B) == (1.0, 0.0) and linking.result is fitted.result
    assert not linking.is_anchor.any() and np.isnan(linking.b_drift).all()


def test_linking_none_ignores_the_bank_scale(fitted):
    settings = dataclasses.replace(fitted.settings, linking="none")
    linking = link_calibration(dataclasses.replace(fitted, settings=settings),
                               bank_values(fitted, list(range(N_ITEMS)), 1.2, 0.5))
    assert linking.record.method == METHOD_NONE and linking.record.scale_run_id is None
    assert linking.result is fitted.result and not linking.is_anchor.any()


def test_anchors_are_matched_by_item_id_and_linked(fitted):
    rows = [0, 2, 3, 5, 7, 8, 11]
    linking = link_calibration(fitted, bank_values(fitted, rows, 1.3, -0.4))
    record = linking.record
    assert record.method == METHOD_STOCKING_LORD and record.scale_run_id == SCALE_RUN
    assert record.theta_sd == pytest.approx(1.3, abs=1e-6) and record.theta_mean == pytest.approx(-0.4, abs=1e-6)
    assert record.anchor_items == len(rows) and record.drifted_items == 0
    assert np.flatnonzero(linking.is_anchor).tolist() == rows
    np.testing.assert_allclose(linking.b_drift[rows], 0.0, atol=1e-6)
    assert np.isnan(linking.b_drift[[1, 4, 6, 9, 10]]).all()
    np.testing.assert_allclose(linking.result.b, 1.3 * fitted.result.b - 0.4)
    assert linking.result.a.max() <= 3.0  # clipped to the brief's bounds on the bank scale


def test_a_drifted_anchor_is_reported_and_the_check_warns(fitted):
    rows = list(range(N_ITEMS))
    shift = np.zeros(N_ITEMS)
    shift[4] = 1.0  # the bank thought item 4 one logit harder than it now is
    linking = link_calibration(fitted, bank_values(fitted, rows, 1.0, 0.0, shift=shift))
    assert linking.drifted_item_ids == [ITEM_IDS[4]]
    assert linking.b_drift[4] == pytest.approx(-1.0, abs=1e-6) and not linking.is_anchor[4]
    check = anchors_stable(linking)  # 1 of 12 drifted: 8% <= 10%
    assert check.passed and check.severity == dg.AssetCheckSeverity.WARN
    shift[7] = -1.0
    linking = link_calibration(fitted, bank_values(fitted, rows, 1.0, 0.0, shift=shift))
    check = anchors_stable(linking)  # 2 of 12: 17% > 10%
    assert not check.passed and "2 of 12 anchor items drifted" in check.description
    table = drifted_items_markdown(linking.item_ids, linking.bank_b, linking.result.b, linking.b_drift,
                                   linking.displacement, linking.is_drifted)
    assert ITEM_IDS[4] in table and ITEM_IDS[7] in table and ITEM_IDS[0] not in table


def test_too_few_anchors_raise_linking_error(fitted):
    with pytest.raises(LinkingError, match="only 3 item"):
        link_calibration(fitted, bank_values(fitted, [1, 2, 3], 1.0, 0.0))
