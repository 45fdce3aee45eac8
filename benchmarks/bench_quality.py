"""Item quality: detection and false-alarm rates of every flag, and the cost of the diagnostics.

    python benchmarks/bench_quality.py [--seeds N]

1. Planted banks (issue 10's shape: 100 items, 3,000 students, 45% of cells) with 4 items of
   each bad kind (irt_pipeline_tests/engine/planted.py): the share of each kind flagged, and
   flagged for its own reason; the false-alarm rate on the 3PL items of the same banks; for the
   upper-asymptote and non-monotone items, the most that any test could flag at a 1% and a 3%
   false-alarm rate (the Neyman-Pearson envelope, irt_pipeline_tests/engine/detection_envelope.py),
   and what the flags do with the 3PL items that upper-asymptote items are fitted as.
2. Banks simulated from the model: the share of items flagged (all reasons together) on complete
   short tests (5, 10, 30 items) and on sparse forms of the product's shape (40-140 items per
   student), with the predictive mean squares (the flags) and the plug-in ones (R mirt's
   itemfit) side by side; the Q1 p-values' rates below 0.05 and 0.01.
3. Time: calibrate_3pl (EM + standard errors) against item_fit + assess_items in the same run,
   on the brief's 1000 x 500 and on a sparse bank of 1.2M responses, and the item_fit of the
   commit before issue 10 (loaded from git) on the same fit.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from irt_pipeline.engine import calibrate_3pl, item_fit  # noqa: E402
from irt_pipeline.engine.fit import plugin_item_fit  # noqa: E402
from irt_pipeline.engine.quality import assess_items  # noqa: E402
from irt_pipeline.engine.responses import prepare_responses  # noqa: E402
from irt_pipeline_tests.engine.detection_envelope import GRID, envelope_power, pseudo_true_3pl  # noqa: E402
from irt_pipeline_tests.engine.planted import planted_bank, true_curve  # noqa: E402
from irt_pipeline_tests.engine.simulate import brief_large_matrix, dense, sparse  # noqa: E402

RIGHT_REASONS = {
    "miskey": {"possible_miskey"},
    "random": {"low_discrimination"},
    "guttman": {"infit", "outfit", "at_bound"},
    "upper": None,          # any reason
    "nonmonotone": None,
}


def assess(responses):
    result = calibrate_3pl(responses)
    fit = item_fit(responses, result)
    return result, fit, assess_items(responses, fit, at_bound=result.at_bound)


# False-alarm rates at which the envelope (the most any test can flag) is reported.
ENVELOPE_ALPHAS = (0.01, 0.03)


def planted_study(seeds: int, n_students: int = 3000) -> None:
    planted = {"miskey": 4, "random": 4, "guttman": 4, "upper": 4, "nonmonotone": 4}
    hits = {k: [0, 0, 0] for k in planted}     # flagged, for the right reason, count
    envelope: dict[str, list] = {"upper": [], "nonmonotone": []}
    why: dict[str, dict[str, int]] = {k: {} for k in planted}
    false_alarms = []
    for seed in range(seeds):
        bank = planted_bank(1000 + seed, n_students=n_students, planted=planted)
        _, _, quality = assess(bank.responses)
        for j, kind in enumerate(bank.kinds):
            if kind == "ok":
                false_alarms.append(bool(quality.reasons[j]))
                continue
            reasons = set(quality.reasons[j])
            for reason in reasons:
                why[kind][reason] = why[kind].get(reason, 0) + 1
            right = RIGHT_REASONS[kind]
            hits[kind][0] += bool(reasons)
            hits[kind][1] += bool(reasons & right) if right else bool(reasons)
            hits[kind][2] += 1
            if kind in envelope:
                curve = true_curve(kind, bank.a[j], bank.b[j], bank.c[j], GRID)
                envelope[kind].append(envelope_power(curve, quality.grouped.group_n[j].sum(), ENVELOPE_ALPHAS,
                                                     start=(bank.a[j], bank.b[j], bank.c[j])))
    rate = np.mean(false_alarms)
    print(f"\n1. Planted banks ({seeds} seeds; 100 items, {n_students:,} students, 45% of cells)\n")
    alphas = " | ".join(f"most any test can flag at {a:.0%} false alarms" for a in ENVELOPE_ALPHAS)
    print(f"| item kind | flagged | for the right reason | reasons (items) | {alphas} |")
    print("|---|---|---|---|" + "---|" * len(ENVELOPE_ALPHAS))
    for kind, (flagged, right, n) in hits.items():
        reason = "/".join(sorted(RIGHT_REASONS[kind])) if RIGHT_REASONS[kind] else "any"
        bound = " | ".join(f"{v:.0%}" for v in np.mean(envelope[kind], axis=0)) if kind in envelope else \
            " | ".join("" for _ in ENVELOPE_ALPHAS)
        counts = ", ".join(f"{r} {k}" for r, k in sorted(why[kind].items()))
        print(f"| {kind} (n = {n}) | {flagged / n:.0%} | {right / n:.0%} ({reason}) | {counts} | {bound} |")
    print(f"| 3PL items (n = {len(false_alarms)}) | {rate:.1%} (false alarms) | | |" + " |" * len(ENVELOPE_ALPHAS))


def twin_study(seeds: int, n_students: int = 3000) -> None:
    """The 3PL items that upper-asymptote items are fitted as: banks whose first 20 items are
    the pseudo-true 3PL of a planted upper-asymptote item (a real 3PL item with the curve the
    calibration converges to). What the flags do with them is the false-alarm rate that any
    detection of the ceiling is paid with."""
    twins, others, reasons = [], [], {}
    for seed in range(seeds):
        rng = np.random.default_rng(500 + seed)
        a, b, c = np.clip(rng.lognormal(0, 0.3, 100), 0.5, 2.5), rng.normal(0, 1, 100), rng.uniform(0.05, 0.25, 100)
        for j in range(20):
            curve = true_curve("upper", a[j], b[j], c[j], GRID)
            _, (a[j], b[j], c[j]) = pseudo_true_3pl(curve, start=(a[j], b[j], c[j]))
        theta = rng.normal(0, 1, n_students)
        p = true_curve("ok", a, b, c, theta[:, None])
        responses = (rng.random(p.shape) < p).astype(float)
        responses[rng.random(p.shape) >= 0.45] = np.nan
        _, _, quality = assess(responses)
        twins += list(quality.is_flagged[:20])
        others += list(quality.is_flagged[20:])
        for item in quality.reasons[:20]:
            for reason in item:
                reasons[reason] = reasons.get(reason, 0) + 1
    why = ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())) or "none"
    print(f"\nTheir 3PL twins ({seeds} seeds, {n_students:,} students): {np.mean(twins):.1%} of {len(twins)} "
          f"flagged ({why}); the other 3PL items {np.mean(others):.1%}")


def shape_study(seeds: int) -> None:
    def params(rng, n):
        return np.clip(rng.lognormal(0, 0.3, n), 0.5, 2.5), rng.normal(0, 1, n), rng.uniform(0.05, 0.25, n)

    shapes = [
        ("complete, 5 items x 1,000 students", lambda rng, s: dense(*params(rng, 5), 1000, seed=s).responses, 4 * seeds),
        ("complete, 10 items x 1,000", lambda rng, s: dense(*params(rng, 10), 1000, seed=s).responses, 2 * seeds),
        ("complete, 30 items x 1,000", lambda rng, s: dense(*params(rng, 30), 1000, seed=s).responses, seeds),
        ("sparse, 200 items, 40 per student, 5,000", lambda rng, s: sparse(*params(rng, 200), 5000, 40, seed=s).responses, seeds),
        ("sparse, 300 items, 140 per student, 4,000", lambda rng, s: sparse(*params(rng, 300), 4000, 140, seed=s).responses, seeds),
    ]
    print("\n2. Banks simulated from the model: share of items flagged\n")
    print("| bank | items | flagged (all reasons) | MNSQ flags: predictive | MNSQ flags: plug-in (R mirt) | Q1 p < 0.05 | Q1 p < 0.01 |")
    print("|---|---|---|---|---|---|---|")
    for label, make, n in shapes:
        flagged, predictive, plugin, p = [], [], [], []
        for s in range(n):
            responses = make(np.random.default_rng(2000 + s), s)
            result, fit, quality = assess(responses)
            flagged += list(quality.is_flagged)
            predictive += list(fit.flagged())
            plugin += list(plugin_item_fit(responses, result).flagged())
            p += list(quality.grouped.p_value)
        p = np.array(p)
        print(f"| {label} | {len(flagged)} | {np.mean(flagged):.1%} | {np.mean(predictive):.1%} | "
              f"{np.mean(plugin):.1%} | {np.nanmean(p < 0.05):.1%} | {np.nanmean(p < 0.01):.1%} |")


# The engine's item_fit before issue 10 (posterior-expected mean squares, one pass over the
# cells), loaded from git so that old and new are timed in the same run.
OLD_FIT_COMMIT = "12ccb47"


def old_item_fit():
    """The pre-issue-10 item_fit, or None outside a git checkout."""
    try:
        source = subprocess.run(["git", "show", f"{OLD_FIT_COMMIT}:irt_pipeline/engine/fit.py"],
                                capture_output=True, text=True, check=True, cwd=ROOT).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    source = source.replace("from irt_pipeline.engine.result import CalibrationResult, ItemFit",
                            "from irt_pipeline.engine.result import CalibrationResult\n"
                            "from irt_pipeline.engine.fit import ItemFit")
    namespace: dict = {}
    exec(compile(source, f"{OLD_FIT_COMMIT}:fit.py", "exec"), namespace)  # noqa: S102 (our own file)
    return namespace["item_fit"]


def time_study() -> None:
    rng = np.random.default_rng(7)
    a, b, c = np.clip(rng.lognormal(0, 0.3, 1000), 0.5, 2.5), rng.normal(0, 1, 1000), rng.uniform(0.05, 0.25, 1000)
    banks = [
        ("brief 1000 students x 500 items (dense)", brief_large_matrix(n_students=1000, n_items=500).responses.astype(float)),
        ("sparse 20,000 students x 1,000 items, 60 each (1.2M)", sparse(a, b, c, 20_000, 60, seed=8).responses),
    ]
    print("\n3. Cost of the diagnostics (same run)\n")
    old_fit = old_item_fit()
    print("| bank | EM | SEs (block) | item_fit + assess_items (new) | old item_fit | new diagnostics / (EM + SEs) | new path / old path |")
    print("|---|---|---|---|---|---|---|")
    for label, responses in banks:
        result = calibrate_3pl(responses)
        t0 = time.perf_counter()
        data = prepare_responses(responses)
        assess_items(data, item_fit(data, result), at_bound=result.at_bound)
        diag = time.perf_counter() - t0
        old = float("nan")
        if old_fit is not None:
            t0 = time.perf_counter()
            old_fit(responses, result)
            old = time.perf_counter() - t0
        base = result.fit_seconds + result.se_seconds
        print(f"| {label} | {result.fit_seconds:.2f} s | {result.se_seconds:.2f} s | {diag:.2f} s | {old:.2f} s | "
              f"{diag / base:.0%} | {(base + diag) / (base + old):.2f} (same SEs) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only-time", action="store_true", help="part 3 only")
    parser.add_argument("--only-planted", action="store_true", help="part 1 only")
    args = parser.parse_args()
    if not args.only_time:
        planted_study(args.seeds)
        twin_study(args.seeds)
        planted_study(max(1, args.seeds // 2), n_students=10_000)
        if args.only_planted:
            return
        shape_study(args.seeds)
    time_study()


if __name__ == "__main__":
    main()
