"""Pictures of a calibration for the asset pages, as markdown image strings (PNG, base64).

No Dagster and no pyplot here: each function draws on its own `matplotlib.figure.Figure`
(the Agg canvas, no display, no global state, safe in any thread) and returns
``![alt](data:image/png;base64,...)``, which the assets wrap in ``MetadataValue.md``. The images
live in the event log, so they are kept small (about 600 x 330 px, a few tens of kB).

* `convergence_plot`: marginal log-likelihood and largest parameter change by EM iteration;
* `parameter_scatter`: discrimination a against difficulty b, flagged items marked;
* `empirical_icc_plot`: empirical item characteristic curves of the flagged items: the fitted
  curve against the observed proportion correct in the Q1 test's ability groups, with 95%
  intervals, so the misfit can be seen (a miskey falling where the curve rises, say);
* `anchor_drift_plot`: each anchor's bank difficulty against its new, linked difficulty
  (``scale_linking``), the identity line with the drift floor around it, drifted anchors marked;
* `wright_map`: the person-item map on the bank scale, binned abilities (left) against binned
  item difficulties (right) on one shared theta axis; no per-student marks, so 100,000 students
  cost no more than 100.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator
from PIL import Image

from irt_pipeline.engine import CalibrationResult
from irt_pipeline.engine.linking import DRIFT_FLOOR
from irt_pipeline.engine.quality import ItemQuality

DPI = 80
PALETTE_COLORS = 64
WIDE = (7.5, 4.1)      # inches at DPI: 600 x 328 px
MAX_ICC_ITEMS = 6      # flagged items drawn (the most severe: plots.most_severe)
FLAG_COLOR, ITEM_COLOR = "#d62728", "#1f77b4"
PERSON_COLOR = "#7f7f7f"
TALL = (7.5, 4.6)      # 600 x 368 px: the Wright map's theta axis is vertical
WRIGHT_BIN = 0.25      # logits per histogram bin of the Wright map
WRIGHT_LIMIT = 6.0     # theta/b beyond +-this are counted in the outermost bin


def png_bytes(fig: Figure) -> bytes:
    """The figure as a PNG with a 64-colour palette (a third of the size of full colour)."""
    raw = io.BytesIO()
    fig.savefig(raw, format="png", dpi=DPI, bbox_inches="tight")
    raw.seek(0)
    with Image.open(raw) as image:
        small = image.convert("RGB").quantize(colors=PALETTE_COLORS)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def image_markdown(fig: Figure, alt: str) -> str:
    """The figure as a markdown image with a base64 PNG data URI."""
    data = base64.b64encode(png_bytes(fig)).decode("ascii")
    return f"![{alt}](data:image/png;base64,{data})"


def short_id(item_id: str) -> str:
    return str(item_id)[:8]


def convergence_plot(
    log_likelihood_trace: Sequence[float], max_change_trace: Sequence[float], threshold: float
) -> str:
    """Log-likelihood by iteration (left) and the largest |change| of a, b, c (right, log scale)."""
    ll = np.asarray(log_likelihood_trace, dtype=float)
    change = np.asarray(max_change_trace, dtype=float)
    fig = Figure(figsize=WIDE)
    left, right = fig.subplots(1, 2)
    left.plot(np.arange(1, ll.size + 1), ll, marker="o", markersize=3, color=ITEM_COLOR)
    left.set(title="Marginal log-likelihood", xlabel="EM iteration", ylabel="log-likelihood")
    left.ticklabel_format(axis="y", style="plain", useOffset=False)
    positive = np.where(change > 0, change, np.nan)
    right.semilogy(np.arange(1, change.size + 1), positive, marker="o", markersize=3, color=ITEM_COLOR)
    right.axhline(threshold, color=FLAG_COLOR, linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    right.set(title="Largest parameter change", xlabel="EM iteration")
    right.legend(loc="upper right", fontsize="small")
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return image_markdown(fig, "EM convergence")


def parameter_scatter(a: np.ndarray, b: np.ndarray, flagged: np.ndarray | None = None) -> str:
    """a against b; flagged items as red crosses."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    flagged = np.zeros(a.size, dtype=bool) if flagged is None else np.asarray(flagged, dtype=bool)
    fig = Figure(figsize=WIDE)
    ax = fig.subplots()
    ok = ~flagged
    ax.scatter(b[ok], a[ok], s=10, alpha=0.6, color=ITEM_COLOR, label=f"fitting ({int(ok.sum())})")
    if flagged.any():
        ax.scatter(b[flagged], a[flagged], s=45, marker="x", color=FLAG_COLOR,
                   label=f"flagged ({int(flagged.sum())})")
    ax.set(title="Discrimination against difficulty", xlabel="difficulty b", ylabel="discrimination a")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return image_markdown(fig, "a vs b")


def wilson_interval(successes: np.ndarray, n: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """95% Wilson score interval of a proportion (Wilson 1927), elementwise; n > 0."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return np.clip(centre - half, 0.0, p), np.clip(centre + half, p, 1.0)


def most_severe(quality: ItemQuality, limit: int) -> np.ndarray:
    """Indices of up to `limit` flagged items: the smallest adjusted Q1 p first, then |log MNSQ|."""
    idx = np.flatnonzero(quality.is_flagged)
    with np.errstate(divide="ignore", invalid="ignore"):
        severity = np.maximum(np.abs(np.log(quality.infit_mnsq[idx])), np.abs(np.log(quality.outfit_mnsq[idx])))
    p = np.nan_to_num(quality.grouped.p_adjusted[idx], nan=1.0)
    return idx[np.lexsort((-np.nan_to_num(severity, nan=0.0), p))][:limit]


def empirical_icc_plot(result: CalibrationResult, item_ids: Sequence[str], quality: ItemQuality) -> str | None:
    """Empirical item characteristic curves of the most severe flagged items (None if none),
    like R mirt's itemfit(empirical.plot =): the fitted 3PL curve (line) against the observed
    proportion correct in each ability group of the Q1 test (dots at the group's mean cavity
    ability, 95% Wilson intervals), with the model's expected proportion in the group (circles)."""
    columns = most_severe(quality, MAX_ICC_ITEMS)
    if columns.size == 0:
        return None
    grouped = quality.grouped
    lo, hi = float(result.nodes[0]), float(result.nodes[-1])
    span = np.nanpercentile(grouped.group_theta[columns], [0, 100]) if np.isfinite(grouped.group_theta[columns]).any() else (lo, hi)
    grid = np.linspace(max(lo, span[0] - 1.0), min(hi, span[1] + 1.0), 161)
    n_cols = min(3, columns.size)
    n_rows = int(np.ceil(columns.size / n_cols))
    fig = Figure(figsize=(2.6 * n_cols, 2.3 * n_rows + 0.3))
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols, sharex=True, sharey=True)).ravel()
    for ax, j in zip(axes, columns):
        a, b, c = float(result.a[j]), float(result.b[j]), float(result.c[j])
        ax.plot(grid, c + (1 - c) / (1 + np.exp(-a * (grid - b))), color=ITEM_COLOR, linewidth=1.5)
        used = grouped.group_n[j] > 0
        n, t = grouped.group_n[j][used], grouped.group_theta[j][used]
        observed = grouped.group_observed[j][used]
        low, high = wilson_interval(observed, n)
        ax.errorbar(t, observed / n, yerr=[observed / n - low, high - observed / n], fmt="o", ms=3,
                    color=FLAG_COLOR, elinewidth=0.8, capsize=1.5, zorder=3)
        ax.scatter(t, grouped.group_expected[j][used] / n, s=14, facecolors="none", edgecolors=ITEM_COLOR,
                   zorder=4)
        reasons = ", ".join(quality.reasons[j]).replace("_", " ")
        ax.set_title(f"{short_id(item_ids[j])}: {reasons}", fontsize="x-small")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    for ax in axes[columns.size:]:
        ax.set_visible(False)
    fig.supxlabel("ability (theta, bank scale)", fontsize="small")
    fig.supylabel("P(correct)", fontsize="small")
    fig.suptitle("Flagged items: 3PL curve, observed proportion by ability group (95% CI), "
                 "model expectation (circles)", fontsize="x-small")
    fig.tight_layout()
    return image_markdown(fig, "empirical ICCs of flagged items")


def anchor_drift_plot(
    bank_b: np.ndarray, linked_b: np.ndarray, drifted: np.ndarray, A: float, B: float,
    band: float = DRIFT_FLOOR,
) -> str | None:
    """Bank b (x) against the linked run b (y) per anchor, identity line with a +-`band` logit
    band, drifted anchors as red crosses (None if no anchor has both values finite)."""
    x, y = np.asarray(bank_b, dtype=float).ravel(), np.asarray(linked_b, dtype=float).ravel()
    drifted = np.asarray(drifted, dtype=bool).ravel()
    finite = np.isfinite(x) & np.isfinite(y)
    if not finite.any():
        return None
    x, y, drifted = x[finite], y[finite], drifted[finite]
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    pad = max(0.1 * (hi - lo), band + 0.2)
    lo, hi = lo - pad, hi + pad
    fig = Figure(figsize=WIDE)
    ax = fig.subplots()
    line = np.array([lo, hi])
    ax.fill_between(line, line - band, line + band, color=ITEM_COLOR, alpha=0.12, linewidth=0,
                    label=f"within {band:g} logits")
    ax.plot(line, line, color="black", linewidth=1, linestyle="--", label="identity (no drift)")
    kept = ~drifted
    if kept.any():
        ax.scatter(x[kept], y[kept], s=16, alpha=0.7, color=ITEM_COLOR,
                   label=f"anchors used in the link ({int(kept.sum())})")
    if drifted.any():
        ax.scatter(x[drifted], y[drifted], s=55, marker="x", linewidths=2, color=FLAG_COLOR, zorder=3,
                   label=f"drifted, dropped from the link ({int(drifted.sum())})")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal", adjustable="box")
    ax.grid(alpha=0.3)
    left_out = int((~finite).sum())
    note = f", {left_out} without finite b not drawn" if left_out else ""
    ax.set_title(f"Anchor drift: linked with A = {A:.3f}, B = {B:+.3f}{note}", fontsize="medium")
    ax.set(xlabel="bank difficulty b (before)", ylabel="linked run difficulty b (A b_run + B)")
    ax.legend(loc="center left", bbox_to_anchor=(1.03, 0.5), fontsize="small")  # off the data
    fig.tight_layout()
    return image_markdown(fig, "anchor drift")


def wright_map(theta: np.ndarray, item_b: np.ndarray, flagged: np.ndarray | None = None) -> str | None:
    """Wright map: histogram of abilities (left, bars to the left) and of item difficulties
    (right, flagged items stacked in red) on one vertical theta axis, binned at `WRIGHT_BIN`
    logits; values beyond +-`WRIGHT_LIMIT` go into the outermost bin. Non-finite values are
    left out. None if there is neither a finite ability nor a finite difficulty."""
    theta = np.asarray(theta, dtype=float).ravel()
    b = np.asarray(item_b, dtype=float).ravel()
    flagged = np.zeros(b.size, dtype=bool) if flagged is None else np.asarray(flagged, dtype=bool).ravel()
    if flagged.size != b.size:
        raise ValueError(f"flagged has {flagged.size} entries for {b.size} items")
    theta = theta[np.isfinite(theta)]
    finite_b = np.isfinite(b)
    b, flagged = b[finite_b], flagged[finite_b]
    if theta.size == 0 and b.size == 0:
        return None
    both = np.concatenate([theta, b])
    lo = np.floor(max(both.min(), -WRIGHT_LIMIT) / WRIGHT_BIN) * WRIGHT_BIN
    hi = np.ceil(min(both.max(), WRIGHT_LIMIT) / WRIGHT_BIN) * WRIGHT_BIN
    if hi - lo < 2.0:
        mid = (hi + lo) / 2
        lo, hi = np.floor((mid - 1.0) / WRIGHT_BIN) * WRIGHT_BIN, np.ceil((mid + 1.0) / WRIGHT_BIN) * WRIGHT_BIN
    edges = np.arange(lo, hi + WRIGHT_BIN / 2, WRIGHT_BIN)
    centres, height = (edges[:-1] + edges[1:]) / 2, WRIGHT_BIN * 0.9

    def counts(values: np.ndarray) -> np.ndarray:
        return np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)[0]

    fig = Figure(figsize=TALL)
    persons, items = fig.subplots(1, 2, sharey=True)
    if theta.size:
        persons.barh(centres, counts(theta), height=height, color=PERSON_COLOR, alpha=0.8)
        mean_theta = float(theta.mean())
        persons.axhline(mean_theta, color="black", linestyle="--", linewidth=1,
                        label=f"mean ability {mean_theta:.2f}")
        persons.legend(loc="upper left", fontsize="small")
    else:
        persons.text(0.5, 0.5, "no students", transform=persons.transAxes, ha="center", color="gray")
    if b.size:
        fitting, flagged_counts = counts(b[~flagged]), counts(b[flagged])
        items.barh(centres, fitting, height=height, color=ITEM_COLOR, alpha=0.8,
                   label=f"items ({int((~flagged).sum())})")
        if flagged.any():
            items.barh(centres, flagged_counts, left=fitting, height=height, color=FLAG_COLOR,
                       label=f"flagged items ({int(flagged.sum())})")
        mean_b = float(b.mean())
        items.axhline(mean_b, color="black", linestyle=":", linewidth=1, label=f"mean difficulty {mean_b:.2f}")
        items.legend(loc="upper right", fontsize="small")
    else:
        items.text(0.5, 0.5, "no items", transform=items.transAxes, ha="center", color="gray")
    persons.invert_xaxis()  # students' bars grow to the left, away from the shared axis
    persons.set_xlim(left=max(persons.get_xlim()[0], 1.0) * 1.25)  # room for the legend
    items.set_xlim(right=max(items.get_xlim()[1], 1.0) * 1.25)
    def beyond(values: np.ndarray, noun: str) -> str:
        outside = int(((values < edges[0]) | (values > edges[-1])).sum())
        return f"{noun} ({outside:,} beyond the axis, in the end bins)" if outside else noun

    persons.set(xlabel=beyond(theta, "students"), ylabel="theta, bank scale (logits)", ylim=(edges[0], edges[-1]))
    items.set(xlabel=beyond(b, "items"))
    items.tick_params(axis="y", labelleft=False, labelright=True, right=True)
    for ax, zero in ((persons, ""), (items, "0")):  # one "0" where the two panels meet
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _, zero=zero: f"{v:,.0f}" if v else zero))
        ax.grid(axis="y", alpha=0.3)
    mean_text = f"mean ability {float(theta.mean()):.2f}" if theta.size else "no abilities"
    flag_text = f", {int(flagged.sum())} flagged" if flagged.any() else ""
    fig.suptitle(f"Wright map: {theta.size:,} students ({mean_text}) and {b.size:,} items{flag_text}",
                 fontsize="medium")
    fig.tight_layout()
    fig.subplots_adjust(wspace=0.03)  # the two panels meet at the shared theta axis
    return image_markdown(fig, "Wright map")
