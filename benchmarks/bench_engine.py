"""Engine benchmark: speed, accuracy and memory of `calibrate_3pl`, beside the PyPI `mirt` peer.

Data sets (generating distributions of the brief's `generate_large_response_matrix`:
a ~ U(0.5, 2.5), b ~ N(0, 1), c ~ U(0.05, 0.3), theta ~ N(0, 1)):
  (a) the brief's 500 students x 1000 items, every cell observed (seed 42);
  (b) 20,000 students x 1,000 items, 60 random items per student (1.2M responses);
  (c) only with --only c: 1,000 students x 2,000 items, every cell observed, the largest bank
      the full-information SEs accept (FULL_INFORMATION_MAX_ITEMS), with and without them.

Rows: irt-pipeline with its default priors, the same with full-information standard errors
(`se_method="full"`: the 3J x 3J observed information by Louis's identity, opt-in; its "SE s"
is the cost of that option), irt-pipeline with priors=None (plain ML), and, if
`pip install -e '.[bench]'` installed it, `mirt` (Rust backend, 3PL, its defaults, 21 nodes)
beside irt-pipeline's ML within mirt's wider box (a <= 5, c <= 0.5), so that the likelihoods
compare like with like.
Each row runs in a fresh process, so "peak MB" is that process's maximum resident memory,
data included. "LL" is each engine's own report; "LL@241" re-evaluates every engine's
estimates on one 241-node grid, the fair comparison.

    python benchmarks/bench_engine.py [--only a|b|c] [--no-mirt] [--no-full]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time

import numpy as np
import scipy.sparse as sp


def dataset(name: str):
    """(responses, a, b, c): dense floats for (a) and (c), signed CSR for (b)."""
    if name in ("a", "c"):
        rng = np.random.default_rng(42 if name == "a" else 43)
        n_students, n_items = (500, 1000) if name == "a" else (1000, 2000)
        theta = rng.normal(0, 1, n_students)
        a, b = rng.uniform(0.5, 2.5, n_items), rng.normal(0, 1, n_items)
        c = rng.uniform(0.05, 0.3, n_items)
        p = c + (1 - c) / (1 + np.exp(-a * (theta[:, None] - b)))
        return (rng.random(p.shape) < p).astype(float), a, b, c
    rng = np.random.default_rng(2026)
    n_students, n_items, per = 20_000, 1000, 60
    theta = rng.normal(0, 1, n_students)
    a, b, c = rng.uniform(0.5, 2.5, n_items), rng.normal(0, 1, n_items), rng.uniform(0.05, 0.3, n_items)
    cols = np.argsort(rng.random((n_students, n_items)), axis=1)[:, :per].ravel()
    rows = np.repeat(np.arange(n_students), per)
    p = c[cols] + (1 - c[cols]) / (1 + np.exp(-a[cols] * (theta[rows] - b[cols])))
    signed = np.where(rng.random(rows.size) < p, 1.0, -1.0)
    return sp.csr_matrix((signed, (rows, cols)), shape=(n_students, n_items)), a, b, c


def reference_log_likelihood(responses, a, b, c, nodes: int = 241) -> float:
    from irt_pipeline.engine.estep import expected_counts
    from irt_pipeline.engine.quadrature import normal_grid
    from irt_pipeline.engine.responses import prepare_responses

    grid, weights = normal_grid(nodes)
    return expected_counts(prepare_responses(responses), a, b, c, grid, weights).log_likelihood


# mirt's own box for the 3PL (read off its estimates: a up to 5, c up to 0.5, b within +-6), for
# the like-for-like likelihood comparison.
MIRT_BOUNDS = dict(a=(0.01, 5.0), b=(-6.0, 6.0), c=(0.0, 0.5))


def run_ours(responses, engine: str) -> dict:
    from irt_pipeline.engine import Bounds, calibrate_3pl

    kwargs = {} if engine in ("ours", "full") else {"priors": None}
    if engine == "full":
        kwargs["se_method"] = "full"
    if engine == "ml-wide":
        kwargs["bounds"] = Bounds(**MIRT_BOUNDS)
    result = calibrate_3pl(responses, max_iterations=500, **kwargs)
    return dict(fit=result.fit_seconds, se=result.se_seconds, iterations=result.iterations,
                converged=result.converged, ll=result.log_likelihood, a=result.a, b=result.b,
                c=result.c, nodes=result.nodes.size)


def run_mirt(responses) -> dict:
    import mirt

    dense = responses.toarray() if sp.issparse(responses) else responses.copy()
    if sp.issparse(responses):
        dense[dense == 0] = np.nan
        dense[dense == -1] = 0.0
    started = time.perf_counter()
    fitted = mirt.fit_mirt(dense, model="3PL", compute_standard_errors=False)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    mirt.fit_mirt(dense, model="3PL", compute_standard_errors=True)
    with_se = time.perf_counter() - started
    coef = fitted.coef()
    return dict(fit=fit_seconds, se=max(with_se - fit_seconds, 0.0), iterations=fitted.n_iterations,
                converged=bool(fitted.converged), ll=float(fitted.log_likelihood),
                a=coef["discrimination"].to_numpy(), b=coef["difficulty"].to_numpy(),
                c=coef["guessing"].to_numpy(), nodes=21)


def _row(name: str, engine: str, queue) -> None:
    responses, a, b, c = dataset(name)
    out = run_mirt(responses) if engine == "mirt" else run_ours(responses, engine)
    rmse = lambda x, y: float(np.sqrt(np.mean((x - y) ** 2)))  # noqa: E731
    out.update(rmse_a=rmse(out["a"], a), rmse_b=rmse(out["b"], b), rmse_c=rmse(out["c"], c),
               ll_ref=reference_log_likelihood(responses, out["a"], out["b"], out["c"]),
               responses=int(responses.nnz if sp.issparse(responses) else responses.size),
               peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    for key in ("a", "b", "c"):
        out.pop(key)
    queue.put(out)


def measure(name: str, engine: str) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_row, args=(name, engine, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


LABELS = {"ours": "irt-pipeline (priors)", "full": "irt-pipeline (priors, full-information SEs)",
          "ml": "irt-pipeline (ML)",
          "ml-wide": "irt-pipeline (ML, mirt's bounds)", "mirt": "mirt 1.2 (Rust)"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["a", "b", "c"])
    parser.add_argument("--no-mirt", action="store_true")
    parser.add_argument("--no-full", action="store_true", help="skip the full-information SE row")
    args = parser.parse_args()
    engines = ["ours"] + ([] if args.no_full else ["full"]) + ["ml"]
    try:
        import mirt  # noqa: F401
        if not args.no_mirt:
            engines += ["ml-wide", "mirt"]
    except ImportError:
        print("(mirt not installed: pip install -e '.[bench]' to compare)", file=sys.stderr)
    print("| data | engine | fit s | SE s | fit+SE s | iterations | conv | nodes | LL | LL@241 "
          "| LL@241 per 1k resp | RMSE a | RMSE b | RMSE c | peak MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in (["a", "b"] if args.only is None else [args.only]):
        for engine in (engines if name != "c" else ["ours", "full"]):
            r = measure(name, engine)
            print(f"| ({name}) | {LABELS[engine]} | {r['fit']:.2f} | {r['se']:.2f} | {r['fit'] + r['se']:.2f} "
                  f"| {r['iterations']} | {'yes' if r['converged'] else 'no'} | {r['nodes']} | {r['ll']:.1f} "
                  f"| {r['ll_ref']:.1f} | {1000 * r['ll_ref'] / r['responses']:.3f} | {r['rmse_a']:.3f} "
                  f"| {r['rmse_b']:.3f} | {r['rmse_c']:.3f} | {r['peak_mb']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
