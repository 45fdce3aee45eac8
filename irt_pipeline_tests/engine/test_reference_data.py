"""Checks of the mirt reference fixtures against numbers published with R mirt."""

import numpy as np

from irt_pipeline_tests.engine import reference_data as rd

# Marginal proportions correct of LSAT section 7 (Bock & Lieberman, 1970).
LSAT7_P_CORRECT = [0.828, 0.658, 0.772, 0.606, 0.843]

# head(SAT12) as printed in mirt's pkgdown reference page for itemstats()
# (philchalmers/mirt, reference/itemstats.md); 8 = omitted.
SAT12_HEAD = np.array(
    [
        [1, 4, 5, 2, 3, 1, 2, 1, 3, 1, 2, 4, 2, 1, 5, 3, 4, 4, 1, 4, 3, 3, 4, 1, 3, 5, 1, 3, 1, 5, 4, 5],
        [3, 4, 2, 8, 3, 3, 2, 8, 3, 1, 2, 8, 2, 1, 5, 2, 4, 1, 1, 4, 3, 3, 8, 1, 8, 4, 1, 4, 5, 8, 4, 8],
        [1, 4, 5, 4, 3, 2, 2, 3, 3, 2, 2, 1, 3, 1, 5, 5, 4, 1, 3, 4, 3, 3, 1, 1, 3, 4, 1, 3, 4, 4, 4, 1],
        [2, 4, 4, 2, 3, 3, 2, 4, 3, 2, 2, 4, 2, 1, 5, 2, 4, 1, 3, 4, 3, 1, 5, 2, 5, 4, 1, 3, 4, 2, 4, 2],
        [2, 4, 5, 2, 3, 2, 2, 1, 1, 2, 2, 4, 2, 1, 5, 4, 4, 5, 1, 4, 3, 3, 3, 1, 1, 5, 1, 3, 1, 2, 4, 1],
        [1, 4, 3, 1, 3, 2, 2, 3, 3, 1, 2, 3, 2, 1, 5, 5, 4, 4, 1, 4, 3, 3, 4, 1, 1, 4, 1, 4, 2, 3, 4, 3],
    ]
)




def test_lsat7_shape_and_published_proportions():
    x = rd.load_lsat7()
    assert x.shape == (1000, 5)
    assert x.dtype == float
    assert set(np.unique(x)) == {0.0, 1.0}
    np.testing.assert_allclose(x.mean(axis=0), LSAT7_P_CORRECT, atol=1e-3)
    # expand.table order: first 12 rows are the all-wrong pattern, last 308 all-right.
    assert x[:12].sum() == 0 and x[-308:].min() == 1


def test_sat12_scoring_matches_key2binary_conventions():
    as_nan = rd.score_sat12(SAT12_HEAD, missing="nan")
    as_zero = rd.score_sat12(SAT12_HEAD, missing="incorrect")
    assert as_nan.shape == (6, 32)
    assert np.array_equal(as_nan[0], np.ones(32))  # first student answers the key exactly
    assert np.isnan(as_nan).sum() == 7  # student 2 omitted items 4, 8, 12, 23, 25, 30, 32
    assert not np.isnan(as_zero).any()
    assert np.array_equal(np.nan_to_num(as_nan, nan=0.0), as_zero)
