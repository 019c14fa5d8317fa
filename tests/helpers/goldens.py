"""Checks against the goldens the real hosts wrote next to their pickles (``FIXTURES``,
``SG3_FIXTURES``) and in our own npz files (``SG3_OWN_GOLDENS``): tolerances, closeness, tensor
digests, alias-free layer designs, and each fixture folder or npz loaded once."""
import hashlib
import json
import math
import warnings

import numpy as np

FP32_TOL = dict(atol=1e-4, rtol=1e-4)
WS_TOL = dict(atol=1e-5, rtol=1e-5)
# Buffers computed at construction through transcendental functions (the alias-free input's
# frequencies: sqrt, exp, pow; the filters: scipy's float64 design cast to float32) differ by an
# ulp between machines: the real stylegan3 host on one of ours gives frequencies 1 ulp (4.8e-7)
# away from those the shared fixtures recorded on another.
CONSTRUCTED_TOL = dict(atol=1e-7, rtol=1e-6)
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


def load_own_golden(path):
    """(meta, arrays) of one npz of tools/make_sg3_goldens.py, loaded once: meta is its JSON
    document; arrays maps 'G/<name>', 'D/<name>', 'inputs/*', 'outputs/*' to numpy arrays."""
    key = ('own', str(path))
    if key not in _cache:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(arrays.pop('meta').tobytes().decode())
        _cache[key] = meta, arrays
    return _cache[key]


def prefixed(arrays, prefix):
    """The arrays under ``prefix`` ('G/', 'outputs/', ...), keyed by the rest of their name."""
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def _type_name(value):
    return f'{type(value).__module__}.{type(value).__qualname__}'


# Attributes of an alias-free layer whose Python type is part of the host's layout (numpy where
# the host keeps numpy: pickles carry these types).
SG3_TYPED_ATTRIBUTES = ('use_fp16', 'in_size', 'in_sampling_rate', 'tmp_sampling_rate', 'in_cutoff',
                        'in_half_width', 'up_factor', 'padding')


def sg3_layer_design(layer):
    """The derived design of one alias-free ``SynthesisLayer`` (the host's or ours: the same
    attributes), in the stylegan3 fixtures' manifest terms; ``attribute_types`` holds the
    Python types of ``SG3_TYPED_ATTRIBUTES``."""
    def shape(f):
        return None if f is None else list(f.shape)
    return {
        'is_torgb': bool(layer.is_torgb), 'is_critically_sampled': bool(layer.is_critically_sampled),
        'use_fp16': bool(layer.use_fp16), 'in_channels': int(layer.in_channels),
        'out_channels': int(layer.out_channels),
        'in_size': [int(v) for v in layer.in_size], 'out_size': [int(v) for v in layer.out_size],
        'in_sampling_rate': float(layer.in_sampling_rate), 'out_sampling_rate': float(layer.out_sampling_rate),
        'tmp_sampling_rate': float(layer.tmp_sampling_rate), 'in_cutoff': float(layer.in_cutoff),
        'out_cutoff': float(layer.out_cutoff), 'in_half_width': float(layer.in_half_width),
        'out_half_width': float(layer.out_half_width), 'conv_kernel': int(layer.conv_kernel),
        'conv_clamp': layer.conv_clamp, 'magnitude_ema_beta': float(layer.magnitude_ema_beta),
        'magnitude_ema': layer.magnitude_ema.item(),
        'up_factor': int(layer.up_factor), 'up_taps': int(layer.up_taps), 'up_filter_shape': shape(layer.up_filter),
        'down_factor': int(layer.down_factor), 'down_taps': int(layer.down_taps),
        'down_radial': bool(layer.down_radial), 'down_filter_shape': shape(layer.down_filter),
        'padding': [int(p) for p in layer.padding],
        'attribute_types': {a: _type_name(getattr(layer, a)) for a in SG3_TYPED_ATTRIBUTES},
    }


def sg3_synthesis_design(syn):
    """The derived design of an alias-free synthesis network (the host's or ours): its
    schedule, the Fourier input and every layer (``sg3_layer_design``), in layer order."""
    inp = syn.input
    return {
        'num_layers': int(syn.num_layers), 'num_critical': int(syn.num_critical),
        'margin_size': int(syn.margin_size), 'output_scale': float(syn.output_scale), 'num_ws': int(syn.num_ws),
        'input': {'channels': int(inp.channels), 'size': [int(v) for v in inp.size],
                  'sampling_rate': float(inp.sampling_rate), 'bandwidth': float(inp.bandwidth)},
        'layers': [dict(name=name, **sg3_layer_design(getattr(syn, name))) for name in syn.layer_names],
    }


def assert_design_equal(ours, want, what, skip=()):
    """Two designs (nested dicts/lists of JSON values) equal: floats to 1e-12 relative (a
    value through JSON or another order of float64 operations), the rest exactly; ``skip``:
    keys not compared."""
    if isinstance(want, dict):
        assert isinstance(ours, dict), what
        for key, value in want.items():
            if key not in skip:
                assert key in ours, f'{what}.{key}: missing'
                assert_design_equal(ours[key], value, f'{what}.{key}', skip)
    elif isinstance(want, list):
        assert isinstance(ours, list) and len(ours) == len(want), f'{what}: {ours} vs {want}'
        for i, (a, b) in enumerate(zip(ours, want)):
            assert_design_equal(a, b, f'{what}[{i}]', skip)
    elif isinstance(want, float) and not isinstance(ours, bool):
        assert isinstance(ours, (int, float)) and math.isclose(ours, want, rel_tol=1e-12), f'{what}: {ours} vs {want}'
    else:
        assert ours == want, f'{what}: {ours!r} vs {want!r}'
