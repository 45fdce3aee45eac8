"""select_eligible's one-pass column selection against scipy's fancy indexing (the code it replaced)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from irt_pipeline.defs.calibration.values import _select_columns, column_correct


@pytest.mark.parametrize("seed", range(5))
def test_select_columns_equals_fancy_indexing_without_empty_rows(seed):
    rng = np.random.default_rng(seed)
    dense = rng.choice([0.0, 1.0, -1.0], size=(60, 25), p=[0.8, 0.12, 0.08])
    dense[:5] = 0.0                                            # students who answered nothing kept
    matrix = sp.csr_matrix(dense.astype(np.int8))          # ResponseMatrix keeps int8
    columns = list(rng.permutation(25)[:rng.integers(0, 25)])  # the item_ids filter's order
    expected = matrix[:, columns].tocsr()
    answered = np.flatnonzero(expected.getnnz(axis=1) > 0)
    expected = expected[answered, :].tocsr()
    expected.sort_indices()

    reduced, rows = _select_columns(matrix, columns)
    assert np.array_equal(rows, answered)
    assert reduced.shape == expected.shape and reduced.has_sorted_indices and reduced.dtype == matrix.dtype
    for name in ("indptr", "indices", "data"):
        assert np.array_equal(getattr(reduced, name), getattr(expected, name)), name
    assert np.array_equal(column_correct(matrix), (dense > 0).sum(axis=0))
