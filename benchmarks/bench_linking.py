"""Linking benchmark: issue 9's two-cohort study over several seeds, linked vs unlinked.

Design (irt_pipeline_tests/engine/two_cohorts.py): a bank of 200 items (a ~ U(0.5, 2.5),
b ~ N(0, 1), c ~ U(0.05, 0.3)); cohort 1 (2,000 students, theta ~ N(0, 1)) answers items 1-150,
cohort 2 (2,000, theta ~ N(0.7, 1)) items 51-200, each student a random form of 40-140 items;
6 random shared items are 1 logit easier for cohort 2. Run 1 = cohort 1 (defines the scale);
run 2 = every attempt (both cohorts), linked to run 1 over the 100 shared items (Stocking-Lord
with the drift screen, engine/linking.py) and scored (EAP, engine/abilities.py). Truth is on
run 1's scale (cohort 1's drawn sample standardised).

Columns: steady shift = mean (run-2 b - run-1 b) over the 94 steady shared items; new b bias /
RMSE = run 2's b of items 151-200 against the truth; power = share of the 6 drifted anchors
flagged, false alarms = share of the steady ones flagged; theta_mean error = B - the true mean of
run 2's students; cohort errors = mean EAP of each cohort - its true mean; link ms = link_to_bank
+ transform_result. "unlinked" is run 2 as calibrated (its own N(0, 1)).

    python benchmarks/bench_linking.py [--seeds 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from irt_pipeline_tests.engine.two_cohorts import run_study, simulate

COLUMNS = [("steady shift", "steady_shift", "{:+.3f}"), ("new b bias", "new_bias", "{:+.3f}"),
           ("new b RMSE", "new_rmse", "{:.3f}"), ("drift power", "drift_power", "{:.0%}"),
           ("false alarms", "false_alarms", "{:.1%}"), ("theta_mean error", "theta_mean_error", "{:+.3f}"),
           ("cohort 1 error", "cohort1_error", "{:+.3f}"), ("cohort 2 error", "cohort2_error", "{:+.3f}"),
           ("link ms", "link_seconds", "{:.1f}")]


def row(label: str, outcomes, linked: bool) -> str:
    cells = []
    for _, name, fmt in COLUMNS:
        values = np.array([getattr(o, name) for o in outcomes], float)
        if name == "link_seconds":
            values = values * 1000
        if not linked and name in ("drift_power", "false_alarms", "link_seconds"):
            cells.append("-")
        elif name in ("drift_power", "false_alarms", "link_seconds"):
            cells.append(fmt.format(values.mean()))
        else:
            cells.append(f"{fmt.format(values.mean())} ({np.abs(values).max():.3f})")
    return f"| {label} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    linked, unlinked = [], []
    started = time.perf_counter()
    print("| seed | steady shift | new b bias | new b RMSE | drift power | false alarms | theta_mean error "
          "| cohort 1 error | cohort 2 error | A | B | link ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for seed in range(args.seeds):
        study = run_study(simulate(seed))
        o = study.linked
        linked.append(o)
        unlinked.append(study.unlinked)
        print(f"| {seed} | {o.steady_shift:+.3f} | {o.new_bias:+.3f} | {o.new_rmse:.3f} | {o.drift_power:.0%} "
              f"| {o.false_alarms:.1%} | {o.theta_mean_error:+.3f} | {o.cohort1_error:+.3f} "
              f"| {o.cohort2_error:+.3f} | {o.link.A:.3f} | {o.link.B:.3f} | {o.link_seconds * 1000:.1f} |",
              flush=True)
    print()
    print(f"Over {args.seeds} seeds: mean (largest |value| of any seed); power and false alarms pooled.")
    print()
    print("| run 2 | " + " | ".join(label for label, _, _ in COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    print(row("linked (Stocking-Lord + drift screen)", linked, True))
    print(row("unlinked (its own N(0, 1))", unlinked, False))
    print(f"\n({time.perf_counter() - started:.0f} s in all, calibrations included)")


if __name__ == "__main__":
    main()
