"""FID, KID and k-NN precision/recall on feature matrices (rows = samples)."""
import numpy as np
import scipy.linalg


def _as_2d(x, name):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f'{name} must be a [N, D] feature matrix with N >= 2, got shape {x.shape}')
    return x


def fid(a, b):
    """Frechet distance between Gaussians fitted to two feature sets."""
    a, b = _as_2d(a, 'a'), _as_2d(b, 'b')
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = np.real(scipy.linalg.sqrtm(cov_a @ cov_b))
    value = np.square(mu_a - mu_b).sum() + np.trace(cov_a + cov_b - 2 * covmean)
    return float(max(value, 0.0))


def kid(a, b, num_subsets=100, max_subset_size=1000, seed=0):
    """Kernel Inception Distance: unbiased MMD^2 with the cubic polynomial kernel
    k(x, y) = (x.y / d + 1)^3, averaged over random subsets."""
    a, b = _as_2d(a, 'a'), _as_2d(b, 'b')
    d = a.shape[1]
    m = min(a.shape[0], b.shape[0], max_subset_size)
    rng = np.random.RandomState(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = a[rng.choice(a.shape[0], m, replace=False)]
        y = b[rng.choice(b.shape[0], m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        total += ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
    return float(total / num_subsets)


def _knn_radii(x, k):
    d = np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0))
    return np.sort(d, axis=1)[:, k]          # column 0 is the point itself


def _covered(points, centres, radii):
    d = np.sqrt(np.maximum(((points[:, None, :] - centres[None, :, :]) ** 2).sum(-1), 0))
    return (d <= radii[None, :]).any(1)


def precision_recall(real, fake, k=3):
    """Improved precision and recall (k-NN manifolds): precision = share of fake samples
    inside the real manifold, recall = share of real samples inside the fake manifold."""
    real, fake = _as_2d(real, 'real'), _as_2d(fake, 'fake')
    if k >= min(real.shape[0], fake.shape[0]):
        raise ValueError(f'k ({k}) must be smaller than both set sizes')
    precision = _covered(fake, real, _knn_radii(real, k)).mean()
    recall = _covered(real, fake, _knn_radii(fake, k)).mean()
    return float(precision), float(recall)
