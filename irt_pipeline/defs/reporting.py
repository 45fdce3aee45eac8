"""Metadata helpers: small markdown tables and table metadata shown on the asset pages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dagster as dg
import numpy as np

from irt_pipeline.defs.values import SkippedItem

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
