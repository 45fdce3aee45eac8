"""Asset checks of the calibration, evaluated inside the asset they check.

* ``parameters_within_bounds`` (ERROR, blocking) on ``fit_statistics``: audits the exact table
  ``supabase_writes`` would publish; any non-finite value, a outside [0.2, 3], c outside
  [0, 0.35], a standard error <= 0, or a missing (NULL) standard error without the reason
  ``at_bound`` or ``se_unavailable`` fails the check: the ``fit_statistics`` step fails with
  DagsterAssetCheckFailedError, ``supabase_writes`` never runs, and the audit row becomes
  ``failed`` through the failure hook/sensor (write-audit-publish).
* ``item_quality`` (WARN) on ``fit_statistics``: lists the flagged items by reason (mean
  squares outside the run's limits, possible miskey, low discrimination, model misfit, at a
  bound, no SE); they are still published, with is_flagged = true and their flag_reasons.
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

from irt_pipeline.defs.calibration.reporting import MAX_LISTED, id_list
from irt_pipeline.defs.calibration.values import FitStatistics, ItemParameters, ScaleLinking
from irt_pipeline.engine.linking import DRIFT_FLOOR, DRIFT_Z
from irt_pipeline.engine.quality import REASON_AT_BOUND, REASON_SE_UNAVAILABLE, REASONS

CHECK_PARAMETERS_WITHIN_BOUNDS = "parameters_within_bounds"
CHECK_ITEM_QUALITY = "item_quality"
CHECK_EM_CONVERGED = "em_converged"
CHECK_ANCHORS_STABLE = "anchors_stable"
# anchors_stable warns when more than this share of the anchor candidates drifted.
MAX_DRIFTED_SHARE = 0.10

A_BOUNDS = (0.2, 3.0)
C_BOUNDS = (0.0, 0.35)
_TOL = 1e-9
_FINITE_COLUMNS = ("a", "b", "c", "infit_mnsq", "outfit_mnsq")
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
        reasons = table["flag_reasons"] if "flag_reasons" in table.columns else [()] * len(table)
        excused = np.array([REASON_AT_BOUND in r or REASON_SE_UNAVAILABLE in r for r in reasons], bool)
        for col in _SE_COLUMNS:
            se = table[col].to_numpy(dtype=float)
            add(np.isfinite(se) & (se <= 0), f"{col} <= 0")
            add(np.isinf(se), f"{col} is not finite")
            add(np.isnan(se) & ~excused, f"{col} is missing without the reason at_bound or se_unavailable")
    item_ids = table["item_id"].astype(str).to_numpy()
    return [{"item_id": item_ids[i], "problems": "; ".join(p)} for i, p in sorted(problems.items())]


FIT_STATISTICS_CHECKS = [
    dg.AssetCheckSpec(
        CHECK_PARAMETERS_WITHIN_BOUNDS,
        asset="fit_statistics",
        blocking=True,
        description="Blocks publication if any estimate is non-finite or out of bounds "
        "(a in [0.2, 3], c in [0, 0.35]), or an SE is <= 0, or missing (NULL) without the item "
        "being at a bound or having singular information.",
    ),
    dg.AssetCheckSpec(
        CHECK_ITEM_QUALITY,
        asset="fit_statistics",
        description="Warns about the items that should not be used, by reason: infit/outfit outside "
        "the run's limits (default 0.7-1.3), possible_miskey and low_discrimination (item-rest "
        "correlation), model_misfit (Q1, Benjamini-Hochberg), at_bound, se_unavailable.",
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


def item_quality(fit_statistics: FitStatistics) -> dg.AssetCheckResult:
    """WARN listing the flagged items by reason (README, "Item quality")."""
    table = fit_statistics.table
    flagged = table.loc[table["is_flagged"]]
    by_reason = {
        reason: [str(i) for i, r in zip(flagged["item_id"], flagged["flag_reasons"]) if reason in r]
        for reason in REASONS
    }
    by_reason = {reason: ids for reason, ids in by_reason.items() if ids}
    rows = flagged.head(MAX_LISTED)
    return dg.AssetCheckResult(
        check_name=CHECK_ITEM_QUALITY,
        passed=flagged.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(flagged)} of {len(table)} item(s) flagged: "
            + ", ".join(f"{reason} {len(ids)}" for reason, ids in by_reason.items())
        ) if not flagged.empty else None,
        metadata={
            "flagged_count": len(flagged),
            "flagged_by_reason": dg.MetadataValue.json({reason: len(ids) for reason, ids in by_reason.items()}),
            "items_by_reason": dg.MetadataValue.json({reason: ids[:MAX_LISTED] for reason, ids in by_reason.items()}),
            "flagged_items": dg.MetadataValue.json([
                {"item_id": str(r.item_id), "reasons": list(r.flag_reasons),
                 "infit_mnsq": _number(r.infit_mnsq), "outfit_mnsq": _number(r.outfit_mnsq),
                 "item_rest_corr": _number(r.item_rest_corr), "q1_p_adjusted": _number(r.q1_p_adjusted)}
                for r in rows.itertuples(index=False)
            ]),
        },
    )


def _number(value) -> float | None:
    value = float(value)
    return round(value, 4) if np.isfinite(value) else None


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
