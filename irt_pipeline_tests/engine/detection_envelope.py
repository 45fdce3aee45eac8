"""The most any test can detect: the Neyman-Pearson power envelope of a misfitting item.

A study tool (benchmarks/bench_quality.py, test_detection_envelope.py), not product code: it
bounds the detection rate that any flag can reach, so that a measured rate can be read against
what is possible rather than against 100%.

Let P1(t) be an item's true curve (not a 3PL) and P0 the 3PL closest to it in expected
Kullback-Leibler divergence over abilities t ~ N(0, 1), the pseudo-true 3PL that a calibration
converges to (White 1982):

    P0 = argmin_(a, b, c) E_t[ KL(Bernoulli(P1(t)) || Bernoulli(P_3PL(t; a, b, c))) ]

A flag with false-alarm rate alpha must keep that rate on a real 3PL item with curve P0. Give
the test more than any real test has, each student's TRUE ability: the other responses then
add nothing (given t they have the same distribution whichever curve item j has). By the
Neyman-Pearson lemma no level-alpha test of P0 against P1 is more powerful than the likelihood
ratio of the two simple hypotheses, whose logarithm over n responses is a sum of n independent
terms

    lambda(x, t) = x log(P1 / P0) + (1 - x) log((1 - P1) / (1 - P0)),

with mean mu_h and variance s_h^2 under hypothesis h (t ~ N(0, 1), x ~ Bernoulli(P_h(t))).
By the central limit theorem its power is

    power(alpha) = 1 - Phi( (n mu0 + z_(1-alpha) sqrt(n) s0 - n mu1) / (sqrt(n) s1) ).

This is an upper bound for every flag (Q1, mean squares, a 4PL likelihood-ratio test, ...) at
that false-alarm rate (Lehmann & Romano, Testing Statistical Hypotheses, 2005, ch. 3 and 13).
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, stats

GRID = np.linspace(-6.0, 6.0, 241)
_WEIGHTS = stats.norm.pdf(GRID) / stats.norm.pdf(GRID).sum()
_CLIP = 1e-12


def three_pl(a: float, b: float, c: float, theta: np.ndarray = GRID) -> np.ndarray:
    """P(correct | theta) of the 3PL (no 1.7 constant, as in engine.model)."""
    return c + (1.0 - c) / (1.0 + np.exp(-a * (theta - b)))


def _parameters(free: np.ndarray) -> tuple[float, float, float]:
    """(a, b, c) from the unconstrained (log a, b, logit c)."""
    log_a, b, logit_c = free
    return float(np.exp(np.clip(log_a, -10.0, 5.0))), float(b), float(1.0 / (1.0 + np.exp(-np.clip(logit_c, -30.0, 30.0))))


def _curve(free: np.ndarray) -> np.ndarray:
    return np.clip(three_pl(*_parameters(free)), _CLIP, 1.0 - _CLIP)


def _divergence(free: np.ndarray, curve: np.ndarray) -> float:
    p0 = _curve(free)
    return float(np.sum(_WEIGHTS * (curve * np.log(curve / p0) + (1 - curve) * np.log((1 - curve) / (1 - p0)))))


def pseudo_true_3pl(curve: np.ndarray, start: tuple[float, float, float] = (1.0, 0.0, 0.15)) -> tuple[np.ndarray, float]:
    """(the closest 3PL curve on GRID, its (a, b, c)) for a true curve given on GRID."""
    curve = np.clip(np.asarray(curve, float), _CLIP, 1.0 - _CLIP)
    a0, b0, c0 = start
    starts = [(np.log(a0), b0, np.log(c0 / (1 - c0))), (np.log(a0 / 2), b0 + 0.5, -2.0), (0.0, b0, -1.0)]
    best = min((optimize.minimize(_divergence, np.array(s), args=(curve,), method="Nelder-Mead",
                                  options={"xatol": 1e-8, "fatol": 1e-14, "maxiter": 4000}) for s in starts),
               key=lambda r: r.fun)
    return _curve(best.x), _parameters(best.x)


def envelope_power(curve: np.ndarray, n_responses: float, alpha: float | np.ndarray,
                   start: tuple[float, float, float] = (1.0, 0.0, 0.15)) -> np.ndarray:
    """Upper bound on the power of any level-`alpha` test to tell `curve` (on GRID) from the
    3PL, with `n_responses` responses by students of known ability (module docstring)."""
    p1 = np.clip(np.asarray(curve, float), _CLIP, 1.0 - _CLIP)
    p0, _ = pseudo_true_3pl(p1, start)
    log_hit, log_miss = np.log(p1 / p0), np.log((1 - p1) / (1 - p0))

    def moments(p):
        mean = np.sum(_WEIGHTS * (p * log_hit + (1 - p) * log_miss))
        second = np.sum(_WEIGHTS * (p * log_hit**2 + (1 - p) * log_miss**2))
        return mean, np.sqrt(max(second - mean**2, 1e-300))

    (mu0, s0), (mu1, s1) = moments(p0), moments(p1)
    n = float(n_responses)
    critical = n * mu0 + stats.norm.isf(np.asarray(alpha, float)) * np.sqrt(n) * s0
    return stats.norm.sf((critical - n * mu1) / (np.sqrt(n) * s1))
