"""Banks with planted bad items, for the item-quality tests and benchmarks/bench_quality.py.

The bank of issue 10: items answered by a share of the students (random sparse forms), most
items 3PL, plus items that must not be used:
* miskey: the key is wrong, P = 1 - P_3PL (the abler the student, the likelier a "wrong" answer);
* random: answered at random, P ~ U(0.3, 0.7) per item, independent of ability;
* guttman: a deterministic step, correct exactly when theta > b;
* upper: an upper asymptote of 0.7, P = c + (0.7 - c) logistic(a (theta - b));
* nonmonotone: P = 0.2 + 0.6 exp(-(theta - b)^2), rising then falling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("miskey", "random", "guttman", "upper", "nonmonotone")


@dataclass(frozen=True)
class PlantedBank:
    responses: np.ndarray        # students x items, 1 / 0 / NaN
    kinds: np.ndarray            # per item: "ok" or one of KINDS
    theta: np.ndarray
    a: np.ndarray                # the generating a, b, c of every item (planted kinds use b,
    b: np.ndarray                # and upper uses all three)
    c: np.ndarray


def true_curve(kind: str, a: float, b: float, c: float, theta: np.ndarray) -> np.ndarray:
    """P(correct | theta) of an item of `kind` ("ok" for a 3PL item; "random" has no curve:
    planted_bank draws its constant level)."""
    logistic = 1.0 / (1.0 + np.exp(-a * (theta - b)))
    if kind == "ok":
        return c + (1.0 - c) * logistic
    if kind == "miskey":
        return 1.0 - (c + (1.0 - c) * logistic)
    if kind == "guttman":
        return (theta > b).astype(float)
    if kind == "upper":
        return c + (0.7 - c) * logistic
    if kind == "nonmonotone":
        return 0.2 + 0.6 * np.exp(-((theta - b) ** 2))
    raise ValueError(f"no fixed curve for kind {kind!r}")


def planted_bank(seed: int, n_items: int = 100, n_students: int = 3000, share: float = 0.45,
                 planted: dict[str, int] | None = None) -> PlantedBank:
    """`planted` items of each kind (default 4 miskey, 4 random, 4 guttman) first, then 3PL items
    with a ~ lognormal(0, 0.3) in [0.5, 2.5], b ~ N(0, 1), c ~ U(0.05, 0.25); theta ~ N(0, 1)."""
    planted = {"miskey": 4, "random": 4, "guttman": 4} if planted is None else planted
    rng = np.random.default_rng(seed)
    a = np.clip(rng.lognormal(0.0, 0.3, n_items), 0.5, 2.5)
    b = rng.normal(0.0, 1.0, n_items)
    c = rng.uniform(0.05, 0.25, n_items)
    theta = rng.normal(0.0, 1.0, n_students)
    kinds = np.full(n_items, "ok", dtype=object)
    j = 0
    for kind, count in planted.items():
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; one of {KINDS}")
        kinds[j:j + count] = kind
        j += count
    p = np.column_stack([true_curve("ok" if kind == "random" else kind, a[j], b[j], c[j], theta)
                         for j, kind in enumerate(kinds)])
    random = np.flatnonzero(kinds == "random")       # a constant level instead
    p[:, random] = rng.uniform(0.3, 0.7, random.size)
    responses = (rng.random(p.shape) < p).astype(float)
    responses[rng.random(p.shape) >= share] = np.nan
    return PlantedBank(responses=responses, kinds=kinds, theta=theta, a=a, b=b, c=c)
