"""Recovery with and without the default priors, on banks unlike the brief's generator too.

The evidence behind the engine's default `priors`: RMSE of a, b and c against the generating
values for plain ML (priors=None), the default (BILOG-MG style: log a ~ N(0, 0.5), b ~ N(0, 2),
c ~ Beta(5, 17)) and a c-only prior, on six simulated banks:

  brief-a     the brief's 500 x 1000, complete (a ~ U(0.5, 2.5), b ~ N(0, 1), c ~ U(.05, .3))
  brief-b     20,000 x 1,000, 60 random items each, same generator
  shifted     2,000 x 200, 50% missing, log a ~ N(0, .35), b ~ N(0.8, 1.5), c ~ U(0, .25)
  low-c       1,000 x 100, complete, a ~ U(0.8, 2), b ~ N(-0.5, 1), c ~ U(0, 0.08)
  small       300 x 40, complete, log a ~ N(0.2, 0.3), b ~ N(0, 1), c ~ U(0.1, 0.3)
  high-c      5,000 x 400, 80 random items each, log a ~ N(0.1, 0.4), b ~ N(0, 1.2), c ~ U(.15, .33)

    python benchmarks/bench_priors.py
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from irt_pipeline.engine import Priors, calibrate_3pl


def _responses(rng, n_students, a, b, c, missing=0.0, per_student=None):
    theta = rng.normal(0, 1, n_students)
    if per_student is None:
        p = c + (1 - c) / (1 + np.exp(-a * (theta[:, None] - b)))
        x = (rng.random(p.shape) < p).astype(float)
        x[rng.random(x.shape) < missing] = np.nan
        return x
    cols = np.argsort(rng.random((n_students, a.size)), axis=1)[:, :per_student].ravel()
    rows = np.repeat(np.arange(n_students), per_student)
    p = c[cols] + (1 - c[cols]) / (1 + np.exp(-a[cols] * (theta[rows] - b[cols])))
    signed = np.where(rng.random(rows.size) < p, 1.0, -1.0)
    return sp.csr_matrix((signed, (rows, cols)), shape=(n_students, a.size))


def banks():
    def brief_params(rng, n):
        return rng.uniform(0.5, 2.5, n), rng.normal(0, 1, n), rng.uniform(0.05, 0.3, n)

    rng = np.random.default_rng(42)
    theta = rng.normal(0, 1, 500)
    a, b, c = brief_params(rng, 1000)
    p = c + (1 - c) / (1 + np.exp(-a * (theta[:, None] - b)))
    yield "brief-a", (rng.random(p.shape) < p).astype(float), a, b, c
    rng = np.random.default_rng(2026)
    a, b, c = brief_params(rng, 1000)
    yield "brief-b", _responses(rng, 20_000, a, b, c, per_student=60), a, b, c
    rng = np.random.default_rng(1)
    a, b, c = rng.lognormal(0, 0.35, 200).clip(0.3, 2.8), rng.normal(0.8, 1.5, 200).clip(-4, 4), rng.uniform(0, 0.25, 200)
    yield "shifted", _responses(rng, 2000, a, b, c, missing=0.5), a, b, c
    a, b, c = rng.uniform(0.8, 2, 100), rng.normal(-0.5, 1, 100), rng.uniform(0, 0.08, 100)
    yield "low-c", _responses(rng, 1000, a, b, c), a, b, c
    a, b, c = rng.lognormal(0.2, 0.3, 40), rng.normal(0, 1, 40), rng.uniform(0.1, 0.3, 40)
    yield "small", _responses(rng, 300, a, b, c), a, b, c
    a, b, c = rng.lognormal(0.1, 0.4, 400).clip(0.3, 2.8), rng.normal(0, 1.2, 400), rng.uniform(0.15, 0.33, 400)
    yield "high-c", _responses(rng, 5000, a, b, c, per_student=80), a, b, c


VARIANTS = {
    "ML (priors=None)": None,
    "default priors": Priors(),
    "c prior only": Priors(log_a_normal=None, b_normal=None),
}


def main() -> None:
    rmse = lambda x, y: np.sqrt(np.mean((x - y) ** 2))  # noqa: E731
    print("| bank | estimation | RMSE a | RMSE b | RMSE c | iterations | seconds |")
    print("|---|---|---|---|---|---|---|")
    for name, responses, a, b, c in banks():
        for label, priors in VARIANTS.items():
            started = time.perf_counter()
            result = calibrate_3pl(responses, priors=priors, max_iterations=500)
            elapsed = time.perf_counter() - started
            print(f"| {name} | {label} | {rmse(result.a, a):.3f} | {rmse(result.b, b):.3f} "
                  f"| {rmse(result.c, c):.3f} | {result.iterations} | {elapsed:.2f} |", flush=True)


if __name__ == "__main__":
    main()
