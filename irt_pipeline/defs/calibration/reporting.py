"""Metadata helpers: small markdown tables and table metadata shown on the asset pages
(the pictures are in plots.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dagster as dg
import numpy as np
import pandas as pd

from irt_pipeline.defs.calibration.values import SkippedItem
from irt_pipeline.engine.linking import DRIFT_FLOOR, DRIFT_Z

MAX_LISTED = 200  # ids listed in one metadata entry; the event log stores every entry


def _fmt(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{x:.3f}"


def summary_markdown(columns: Mapping[str, np.ndarray]) -> str:
    """| parameter | min | q1 | median | q3 | max | of each column (finite values only)."""
    lines = ["| parameter | n | min | q1 | median | q3 | max |", "|---|---|---|---|---|---|---|"]
    for name, values in columns.items():
        v = np.asarray(values, dtype=float)
        finite = v[np.isfinite(v)]
        if finite.size:
            q = np.quantile(finite, [0.0, 0.25, 0.5, 0.75, 1.0])
            cells = " | ".join(_fmt(x) for x in q)
        else:
            cells = " | ".join(["-"] * 5)
        lines.append(f"| {name} | {finite.size} | {cells} |")
    return "\n".join(lines)


def skipped_table(skipped: Sequence[SkippedItem]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({"item_id": s.item_id, "reason": s.reason, "response_count": s.response_count})
            for s in skipped[:MAX_LISTED]
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("item_id", "string"),
                dg.TableColumn("reason", "string"),
                dg.TableColumn("response_count", "int"),
            ]
        ),
    )


def id_list(ids: Sequence[str]) -> dg.JsonMetadataValue:
    return dg.MetadataValue.json(list(ids)[:MAX_LISTED])


FLAGGED_TABLE_ROWS = 25  # rows of the flagged-items table (the most extreme first)


def flagged_items_markdown(table: pd.DataFrame, limit: int = FLAGGED_TABLE_ROWS) -> str:
    """| item_id | reasons | a | b | c | infit | outfit | item-rest | Q1 p (BH) | responses | of the
    flagged rows of a parameter table, the most severe first (smallest Q1 p, then the largest
    |log MNSQ|); a sentence when nothing is flagged."""
    flagged = table.loc[table["is_flagged"]]
    if flagged.empty:
        return "No item flagged (every statistic within the run's limits; README, \"Item quality\")."
    order = flagging_order(flagged)
    lines = [
        "| item_id | reasons | a | b | c | infit MNSQ | outfit MNSQ | item-rest r | Q1 p (BH) | responses |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in flagged.iloc[order[:limit]].itertuples(index=False):
        lines.append(
            f"| {row.item_id} | {', '.join(row.flag_reasons)} | {_fmt(row.a)} | {_fmt(row.b)} | {_fmt(row.c)} | "
            f"{_fmt(row.infit_mnsq)} | {_fmt(row.outfit_mnsq)} | {_fmt(row.item_rest_corr)} | "
            f"{_fmt(row.q1_p_adjusted)} | {int(row.response_count)} |"
        )
    if len(flagged) > limit:
        lines.append(f"\n{len(flagged) - limit} more flagged item(s) not shown (see flagged_items).")
    return "\n".join(lines)


def flagging_order(flagged: pd.DataFrame) -> np.ndarray:
    """Positions of the rows, most severe first: smallest adjusted Q1 p, then largest |log MNSQ|."""
    with np.errstate(divide="ignore", invalid="ignore"):
        severity = np.maximum(np.abs(np.log(flagged["infit_mnsq"].to_numpy(dtype=float))),
                              np.abs(np.log(flagged["outfit_mnsq"].to_numpy(dtype=float))))
    p = np.nan_to_num(flagged["q1_p_adjusted"].to_numpy(dtype=float), nan=1.0)
    return np.lexsort((-np.nan_to_num(severity, nan=0.0), p))


def drifted_items_markdown(item_ids, bank_b, linked_b, b_drift, displacement, drifted,
                           limit: int = FLAGGED_TABLE_ROWS) -> str:
    """| item_id | bank b | linked b | b drift | displacement | of the drifted anchors, the largest
    |displacement| first; a sentence when none drifted."""
    rows = np.flatnonzero(np.asarray(drifted, bool))
    if rows.size == 0:
        return ("No anchor drifted: every anchor's displacement stayed within the screen "
                f"(robust z <= {DRIFT_Z} or at most {DRIFT_FLOOR} logits).")
    rows = rows[np.argsort(-np.abs(np.asarray(displacement)[rows]), kind="stable")]
    lines = ["| item_id | bank b | linked b | b drift | displacement |", "|---|---|---|---|---|"]
    for j in rows[:limit]:
        lines.append(f"| {item_ids[j]} | {_fmt(bank_b[j])} | {_fmt(linked_b[j])} | {_fmt(b_drift[j])} | "
                     f"{_fmt(displacement[j])} |")
    if rows.size > limit:
        lines.append(f"\n{rows.size - limit} more drifted item(s) not shown.")
    return "\n".join(lines)
