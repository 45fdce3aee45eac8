"""A simulated sparse item bank drawn from known 3PL parameters (pure numpy, no database).

P(correct | theta) = c + (1 - c) / (1 + exp(-a (theta - b))), theta ~ N(0, 1).

* a ~ lognormal around 1.1, b ~ N(0, 1), c ~ Beta(4, 16) (mean 0.2) clipped to [0, 0.35].
* Sparse and uneven exposure: each student sees a random form of 60-140 items; about 7% of
  the items are rarely used (20-95 expected responses) and about 0.5% almost never (2-8).
* About 0.8% of the well-exposed items MISFIT: a deterministic step (Guttman item, a = 40,
  c = 0), far steeper than the a <= 3 the calibration allows, so their infit/outfit mean squares
  fall well below 0.7 (overfit; measured with the project's engine: infit ~0.5, outfit ~0.2).
  Items answered 50/50 whatever theta, or reversed ones, were tried first: the 3PL absorbs
  them as nearly flat curves and their mean squares stay near 1.0, so they are not flagged.
* A few repeated attempts: a student answers an item again a week later, with the opposite
  result; only the first attempt counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FORM_LENGTH = (60, 140)          # items a student sees (inclusive range)
LOW_EXPOSURE_SHARE, LOW_EXPOSURE_RESPONSES = 0.07, (20, 95)
RARE_SHARE, RARE_RESPONSES = 0.005, (2, 8)
MISFIT_SHARE, MISFIT_A, MISFIT_B = 0.008, 40.0, (-1.5, 1.5)
REPEATS_PER_1000_STUDENTS = 2
N_EXAM_IMPORTS = 6
_STUDENT_CHUNK = 1024            # students simulated at once (bounds memory to chunk x items)


@dataclass(frozen=True)
class DemoBank:
    """Generating parameters per item, abilities per student, and every attempt."""

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    misfit: np.ndarray           # bool per item
    theta: np.ndarray            # per student
    student: np.ndarray          # per attempt: student index
    item: np.ndarray             # per attempt: item index
    correct: np.ndarray          # per attempt: bool
    exam: np.ndarray             # per attempt: exam import index
    minutes: np.ndarray          # per attempt: minutes after the first exam import began
    n_repeats: int               # the last n_repeats attempts repeat earlier ones


def simulate_bank(n_items: int, n_students: int, seed: int) -> DemoBank:
    """Simulate the bank; the same arguments always give the same bank."""
    rng = np.random.default_rng(seed)
    a = np.clip(rng.lognormal(np.log(1.1), 0.3, n_items), 0.3, 2.8)
    b = np.clip(rng.normal(0.0, 1.0, n_items), -3.0, 3.0)
    c = np.clip(rng.beta(4.0, 16.0, n_items), 0.0, 0.35)
    theta = rng.normal(0.0, 1.0, n_students)
    lengths = np.minimum(rng.integers(FORM_LENGTH[0], FORM_LENGTH[1] + 1, n_students), n_items)

    roles = rng.permutation(n_items)
    n_rare = max(1, round(RARE_SHARE * n_items))
    n_low = round(LOW_EXPOSURE_SHARE * n_items)
    n_misfit = max(2, round(MISFIT_SHARE * n_items))
    rare, low = roles[:n_rare], roles[n_rare:n_rare + n_low]
    misfit_items = roles[n_rare + n_low:n_rare + n_low + n_misfit]

    # Exposure weight per item: 1 for regular items; the scarce ones get weights that make
    # their expected response counts the targets drawn here.
    targets = np.zeros(n_items)
    targets[rare] = rng.uniform(*RARE_RESPONSES, n_rare)
    targets[low] = rng.uniform(*LOW_EXPOSURE_RESPONSES, n_low)
    scarce = targets > 0
    scale = (n_items - scarce.sum()) / (lengths.sum() - targets.sum())
    weight = np.where(scarce, targets * scale, 1.0)
    see_rate = lengths[:, None] / weight.sum()

    misfit = np.zeros(n_items, dtype=bool)
    misfit[misfit_items] = True
    a[misfit], b[misfit], c[misfit] = MISFIT_A, rng.uniform(*MISFIT_B, n_misfit), 0.0

    student, item, correct = [], [], []
    for start in range(0, n_students, _STUDENT_CHUNK):
        rows = slice(start, min(start + _STUDENT_CHUNK, n_students))
        seen = rng.random((rows.stop - start, n_items)) < np.minimum(1.0, see_rate[rows] * weight)
        s, j = np.nonzero(seen)
        p = c[j] + (1.0 - c[j]) / (1.0 + np.exp(-a[j] * (theta[start + s] - b[j])))
        student.append(start + s)
        item.append(j)
        correct.append(rng.random(p.size) < p)
    student, item, correct = (np.concatenate(x) for x in (student, item, correct))

    exam_of_student = rng.integers(0, N_EXAM_IMPORTS, n_students)
    exam = exam_of_student[student]
    # Exam imports two weeks apart; a student's answers one minute apart from a random start.
    minutes = exam * 14 * 24 * 60 + rng.integers(0, 6 * 60, n_students)[student] + _rank_within(student)

    n_repeats = min(student.size, max(2, REPEATS_PER_1000_STUDENTS * n_students // 1000))
    again = rng.choice(student.size, n_repeats, replace=False)
    return DemoBank(
        a=a, b=b, c=c, misfit=misfit, theta=theta,
        student=np.concatenate([student, student[again]]),
        item=np.concatenate([item, item[again]]),
        correct=np.concatenate([correct, ~correct[again]]),
        exam=np.concatenate([exam, np.minimum(exam[again] + 1, N_EXAM_IMPORTS - 1)]),
        minutes=np.concatenate([minutes, minutes[again] + 7 * 24 * 60]),
        n_repeats=int(n_repeats),
    )


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal values of the sorted array ``groups``."""
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    return np.arange(groups.size) - np.repeat(starts, np.diff(np.r_[starts, groups.size]))
