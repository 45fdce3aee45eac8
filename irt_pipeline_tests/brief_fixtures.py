"""The brief's test fixtures (STORY-ST-4 section 9), shared by the engine and Dagster tests, plus
what the database needs: UUID ids.

Item and student ids in the database are UUIDs, so the brief's readable ids ("item-001") are
mapped with uuid5 (`item_uuid`, `student_uuid`): stable across runs and readable in failures.
"""

from __future__ import annotations

import uuid

import numpy as np

NAMESPACE = uuid.UUID("5b1d3c2e-6f0a-4c1e-9a57-3f1e2d4c5b6a")


def item_uuid(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"item:{name}"))


def student_uuid(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"student:{name}"))


# 10 students x 5 items binary response matrix (small, for unit tests)
SMALL_RESPONSE_MATRIX = np.array([
    [1, 1, 0, 1, 0],
    [1, 0, 0, 0, 0],
    [1, 1, 1, 1, 1],
    [0, 0, 0, 1, 0],
    [1, 1, 0, 0, 0],
    [1, 1, 1, 1, 0],
    [0, 0, 0, 0, 0],
    [1, 1, 1, 0, 1],
    [1, 0, 1, 1, 0],
    [0, 1, 0, 0, 0],
])

SMALL_ITEM_IDS = ["item-001", "item-002", "item-003", "item-004", "item-005"]

SMALL_STUDENT_IDS = [f"student-{i:03d}" for i in range(1, 11)]

# Known 3PL parameters for validation (from psychometrics textbook examples)
KNOWN_PARAMS = [
    {"item_id": "item-001", "a": 1.5, "b": -1.0, "c": 0.2},
    {"item_id": "item-002", "a": 1.0, "b": 0.0, "c": 0.15},
    {"item_id": "item-003", "a": 0.8, "b": 0.5, "c": 0.25},
    {"item_id": "item-004", "a": 2.0, "b": -0.5, "c": 0.1},
    {"item_id": "item-005", "a": 1.2, "b": 1.0, "c": 0.2},
]


def generate_large_response_matrix(n_students: int = 500, n_items: int = 1000, seed: int = 42) -> np.ndarray:
    """Generate a realistic binary response matrix using known 3PL parameters."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 1, n_students)  # student abilities
    a = rng.uniform(0.5, 2.5, n_items)    # discrimination
    b = rng.normal(0, 1, n_items)          # difficulty
    c = rng.uniform(0.05, 0.3, n_items)   # guessing
    theta_matrix = theta[:, np.newaxis]  # (n_students, 1)
    prob = c + (1 - c) / (1 + np.exp(-a * (theta_matrix - b)))
    responses = (rng.random((n_students, n_items)) < prob).astype(int)
    return responses


# Item with insufficient responses (below threshold)
INSUFFICIENT_ITEM = {"item_id": "item-low-001", "response_count": 42}

# Poorly fitting item (MNSQ outside 0.7-1.3)
MISFIT_ITEM_PARAMS = {
    "item_id": "item-misfit-001",
    "a": 0.3,
    "b": 2.5,
    "c": 0.4,
    "infit_mnsq": 1.45,
    "outfit_mnsq": 1.62,
    "is_flagged": True,
}

# Calibration request fixtures
VALID_CALIBRATION_REQUEST = {"min_responses": 100, "max_iterations": 100, "convergence_threshold": 0.001}

CUSTOM_CALIBRATION_REQUEST = {
    "item_ids": ["item-001", "item-002"],
    "min_responses": 50,
    "max_iterations": 200,
    "convergence_threshold": 0.0001,
}
