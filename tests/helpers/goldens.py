"""Checks against the goldens the real hosts wrote next to their pickles (``FIXTURES``,
``SG3_FIXTURES``): tolerances, closeness, tensor digests, and each fixture folder loaded once."""
import hashlib
import json
import warnings

import numpy as np

FP32_TOL = dict(atol=1e-4, rtol=1e-4)
WS_TOL = dict(atol=1e-5, rtol=1e-5)
# README of the stylegan2-ada fixtures: fp16 blocks differ from fp32 by ~1e-2 on images and ~5e-4
# on logits, and the CPU's fp16 kernels are not bit-stable across machines.
FP16_IMG_TOL = dict(atol=1.5e-2, rtol=0)
FP16_LOGIT_TOL = dict(atol=5e-4, rtol=0)


def max_excess(actual, expected, tol):
    """How far ``actual`` is outside ``|a - b| <= atol + rtol |b|`` (<= 0: within)."""
    actual = actual.detach().cpu().numpy()
    assert actual.shape == expected.shape
    return float((np.abs(actual - expected) - (tol['atol'] + tol['rtol'] * np.abs(expected))).max())


def assert_close(actual, expected, tol, what):
    """``actual`` (a tensor) within ``tol`` of the golden ``expected`` (an array) everywhere."""
    actual = actual.detach().cpu().numpy()
    assert actual.shape == expected.shape, what
    err = np.abs(actual - expected)
    limit = tol['atol'] + tol['rtol'] * np.abs(expected)
    assert (err <= limit).all(), f'{what}: max abs error {err.max():.3g} exceeds tolerance'


def tensor_sha256(t):
    """The digest the fixtures' manifests give a tensor: its bytes as little-endian float32."""
    return hashlib.sha256(t.detach().contiguous().numpy().astype('<f4').tobytes()).hexdigest()


_cache = {}


def load_fixture(folder, **load_kwargs):
    """(loaded pickle, manifest, goldens) of one fixture folder, loaded once per ``load_kwargs``
    (``plugin.load_network_pkl``'s; its warnings about what is kept as data are silenced)."""
    from plugin import load_network_pkl
    key = (str(folder), tuple(sorted(load_kwargs.items())))
    if key not in _cache:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            data = load_network_pkl(folder / 'network-snapshot.pkl', **load_kwargs)
        manifest = json.loads((folder / 'manifest.json').read_text())
        golden = dict(np.load(folder / 'golden.npz'))
        _cache[key] = data, manifest, golden
    return _cache[key]
