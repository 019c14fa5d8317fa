"""Metric statistics on feature sets with known answers."""
import numpy as np
import pytest

from plugin.metrics import fid, kid, precision_recall


def gaussian(n, d, mean=0.0, scale=1.0, seed=0):
    return np.random.RandomState(seed).randn(n, d) * scale + mean


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_the_shift():
    a = gaussian(500, 8)
    assert fid(a, a) == pytest.approx(0, abs=1e-6)
    near, far = fid(a, gaussian(500, 8, seed=1)), fid(a, gaussian(500, 8, mean=3.0, seed=1))
    assert near < 0.5 and far > 60                      # a mean shift of 3 in 8 dims: ~72
    # Closed form for Gaussians with identity covariance: |mu_a - mu_b|^2.
    assert fid(gaussian(20000, 2), gaussian(20000, 2, mean=[1.0, 2.0], seed=2)) == pytest.approx(5.0, rel=0.05)


def test_kid_is_unbiased_near_zero_for_the_same_distribution():
    values = [kid(gaussian(200, 6, seed=s), gaussian(200, 6, seed=100 + s), num_subsets=10) for s in range(10)]
    assert abs(np.mean(values)) < 3 * np.std(values) / np.sqrt(len(values)) + 1e-3
    assert min(values) < 0 < max(values)                # unbiased: negative values occur
    assert kid(gaussian(200, 6), gaussian(200, 6, mean=2.0, seed=5), num_subsets=10) > 0.5


def test_precision_recall():
    real = gaussian(300, 4)
    p, r = precision_recall(real, gaussian(300, 4, seed=1))
    assert p > 0.8 and r > 0.8
    collapsed = gaussian(300, 4, scale=0.05, seed=2)     # all fakes in one corner of the real set
    p, r = precision_recall(real, collapsed)
    assert p > 0.9 and r < 0.3
    p, r = precision_recall(real, gaussian(300, 4, mean=10.0, seed=3))
    assert p == 0.0 and r == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match='feature matrix'):
        fid(np.zeros(5), np.zeros((5, 2)))
    with pytest.raises(ValueError, match='smaller than both'):
        precision_recall(gaussian(3, 2), gaussian(3, 2), k=3)
