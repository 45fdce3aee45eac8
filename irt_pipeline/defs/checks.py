"""Asset checks of the calibration, evaluated inside the asset they check.

* ``parameters_within_bounds`` (ERROR, blocking) on ``fit_statistics``: audits the exact table
  ``supabase_writes`` would publish; any non-finite value, a outside [0.2, 3], c outside
  [0, 0.35] or a standard error <= 0 fails the check: the ``fit_statistics`` step fails with
  DagsterAssetCheckFailedError, ``supabase_writes`` never runs, and the audit row becomes
  ``failed`` through the failure hook/sensor (write-audit-publish).
* ``item_fit_within_range`` (WARN) on ``fit_statistics``: lists the items whose infit or
  outfit MNSQ lies outside 0.7-1.3 (they are still published, with is_flagged = true).
* ``em_converged`` (WARN) on ``item_parameters``: EM stopped at max_iterations.
* ``anchors_stable`` (WARN) on ``scale_linking``: more than 10% of the anchor candidates drifted
  (the link still holds on the rest, but a psychometrician should look at why so many items moved).

Why in the asset (``check_specs``) and not ``@asset_check``: in Dagster 1.13 a separate check of
a partitioned asset is itself unpartitioned unless given ``partitions_def`` (a preview feature),
and then loads EVERY partition of the asset as its input (a dict keyed by bank) as soon as the
instance knows two banks. In-asset checks run in the asset's own step, on the partition being
materialized, with the value already in memory.
"""

import dagster as dg
import numpy as np
import pandas as pd

from irt_pipeline.defs.reporting import MAX_LISTED, id_list
from irt_pipeline.engine.linking import DRIFT_FLOOR, DRIFT_Z
from irt_pipeline.defs.values import FIT_LOWER, FIT_UPPER, FitStatistics, ItemParameters, ScaleLinking

CHECK_PARAMETERS_WITHIN_BOUNDS = "parameters_within_bounds"
CHECK_ITEM_FIT_WITHIN_RANGE = "item_fit_within_range"
CHECK_EM_CONVERGED = "em_converged"
CHECK_ANCHORS_STABLE = "anchors_stable"
# anchors_stable warns when more than this share of the anchor candidates drifted.
MAX_DRIFTED_SHARE = 0.10

A_BOUNDS = (0.2, 3.0)
C_BOUNDS = (0.0, 0.35)
_TOL = 1e-9
_FINITE_COLUMNS = ("a", "b", "c", "a_se", "b_se", "c_se", "infit_mnsq", "outfit_mnsq")
_SE_COLUMNS = ("a_se", "b_se", "c_se")


def invalid_parameter_rows(table: pd.DataFrame) -> list[dict[str, str]]:
    """One entry per item whose row must not be published, with the problems found."""
    problems: dict[int, list[str]] = {}

    def add(mask: np.ndarray, text: str) -> None:
        for i in np.flatnonzero(mask):
            problems.setdefault(int(i), []).append(text)

    values = {col: table[col].to_numpy(dtype=float) for col in _FINITE_COLUMNS}
    for col, v in values.items():
        add(~np.isfinite(v), f"{col} is not finite")
    with np.errstate(invalid="ignore"):
        a, c = values["a"], values["c"]
        add(np.isfinite(a) & ((a < A_BOUNDS[0] - _TOL) | (a > A_BOUNDS[1] + _TOL)), f"a outside {list(A_BOUNDS)}")
        add(np.isfinite(c) & ((c < C_BOUNDS[0] - _TOL) | (c > C_BOUNDS[1] + _TOL)), f"c outside {list(C_BOUNDS)}")
        for col in _SE_COLUMNS:
            se = values[col]
            add(np.isfinite(se) & (se <= 0), f"{col} <= 0")
    item_ids = table["item_id"].astype(str).to_numpy()
    return [{"item_id": item_ids[i], "problems": "; ".join(p)} for i, p in sorted(problems.items())]


FIT_STATISTICS_CHECKS = [
    dg.AssetCheckSpec(
        CHECK_PARAMETERS_WITHIN_BOUNDS,
        asset="fit_statistics",
        blocking=True,
        description="Blocks publication if any estimate or SE is non-finite or out of bounds "
        "(a in [0.2, 3], c in [0, 0.35], SE > 0).",
    ),
    dg.AssetCheckSpec(
        CHECK_ITEM_FIT_WITHIN_RANGE,
        asset="fit_statistics",
        description=f"Warns about items whose infit or outfit MNSQ lies outside {FIT_LOWER}-{FIT_UPPER}.",
    ),
]
ITEM_PARAMETERS_CHECKS = [
    dg.AssetCheckSpec(
        CHECK_EM_CONVERGED,
        asset="item_parameters",
        description="Warns when EM stopped at max_iterations without meeting the convergence threshold.",
    ),
]

SCALE_LINKING_CHECKS = [
    dg.AssetCheckSpec(
        CHECK_ANCHORS_STABLE,
        asset="scale_linking",
        description=f"Warns when more than {MAX_DRIFTED_SHARE:.0%} of the anchor items drifted "
        f"(their curve moved, for this run's students, by a robust z > {DRIFT_Z} and more than "
        f"{DRIFT_FLOOR} logits).",
    ),
]


def parameters_within_bounds(fit_statistics: FitStatistics) -> dg.AssetCheckResult:
    invalid = invalid_parameter_rows(fit_statistics.table)
    return dg.AssetCheckResult(
        check_name=CHECK_PARAMETERS_WITHIN_BOUNDS,
        passed=not invalid,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(invalid)} item(s) with invalid estimates: "
            + "; ".join(f"{r['item_id']}: {r['problems']}" for r in invalid[:5])
        ) if invalid else None,
        metadata={
            "calibration_run_id": fit_statistics.calibration_run_id,
            "items_checked": fit_statistics.items_calibrated,
            "invalid_count": len(invalid),
            "invalid_items": dg.MetadataValue.json(invalid[:MAX_LISTED]),
        },
    )


def item_fit_within_range(fit_statistics: FitStatistics) -> dg.AssetCheckResult:
    flagged = fit_statistics.flagged_item_ids
    table = fit_statistics.table
    rows = table.loc[table["is_flagged"], ["item_id", "infit_mnsq", "outfit_mnsq"]].head(MAX_LISTED)
    return dg.AssetCheckResult(
        check_name=CHECK_ITEM_FIT_WITHIN_RANGE,
        passed=not flagged,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "misfit_count": len(flagged),
            "misfit_items": id_list(flagged),
            "misfit_mnsq": dg.MetadataValue.json(
                [
                    {"item_id": str(r.item_id), "infit_mnsq": float(r.infit_mnsq), "outfit_mnsq": float(r.outfit_mnsq)}
                    for r in rows.itertuples(index=False)
                ]
            ),
        },
    )


def em_converged(item_parameters: ItemParameters) -> dg.AssetCheckResult:
    result = item_parameters.result
    trace = np.asarray(result.max_change_trace, dtype=float)
    return dg.AssetCheckResult(
        check_name=CHECK_EM_CONVERGED,
        passed=bool(result.converged),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "iterations": int(result.iterations),
            "max_iterations": item_parameters.settings.max_iterations,
            "convergence_threshold": item_parameters.settings.convergence_threshold,
            "last_max_change": float(trace[-1]) if trace.size else float("nan"),
        },
    )


def anchors_stable(linking: ScaleLinking) -> dg.AssetCheckResult:
    candidates = int(linking.is_anchor.sum() + linking.is_drifted.sum())
    drifted = linking.drifted_item_ids
    share = len(drifted) / candidates if candidates else 0.0
    return dg.AssetCheckResult(
        check_name=CHECK_ANCHORS_STABLE,
        passed=share <= MAX_DRIFTED_SHARE,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(drifted)} of {candidates} anchor items drifted ({share:.0%} > {MAX_DRIFTED_SHARE:.0%})"
            if share > MAX_DRIFTED_SHARE else None
        ),
        metadata={
            "linking_method": linking.record.method,
            "anchor_candidates": candidates,
            "drifted_count": len(drifted),
            "drifted_share": round(share, 4),
            "drifted_items": id_list(drifted),
        },
    )
