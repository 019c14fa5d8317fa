"""The embedded stylegan3 networks against our own goldens (tests/goldens/stylegan3/*.npz): further
configurations than the three shared fixtures (other resolutions, channel and class counts,
z/w widths, fp16 flags, and alias-free layer designs train.py never builds), computed by a real
stylegan3 checkout with tools/make_sg3_goldens.py. The npz files hold numbers only (state dicts
under the host's names, the host's init kwargs and per-layer design, inputs, outputs), so these
tests need no checkout; one more regenerates them from a checkout when one is named
(``COCKTAIL_TEST_SG3_HOST``) and checks that the committed files still match.

Each network is built here from the host's recorded kwargs by the embedded host's registry, as
a pickle's class_name is, under the host's construction seed: every buffer that the goldens did
not perturb (filters, Fourier features, noise) must come out as the host's.
"""
import copy
import os
import subprocess
import sys

import pytest
import torch

from plugin.hosts import get_host
from plugin.persistence import constructor_kwargs
from tests.helpers import REPO, SG3_HOST, SG3_OWN_GOLDEN_CONFIGS, SG3_OWN_GOLDENS
from tests.helpers.goldens import (CONSTRUCTED_TOL, FP32_TOL, WS_TOL, assert_close, assert_design_equal,
                                   load_own_golden, prefixed, sg3_synthesis_design)

pytestmark = pytest.mark.usefixtures('one_thread')     # the goldens were computed on one thread

# Buffers the goldens' weights step set (the rest keep their constructed values).
PERTURBED_BUFFERS = ('mapping.w_avg', '.magnitude_ema')


def golden(cfg):
    return load_own_golden(SG3_OWN_GOLDENS / f'{cfg}.npz')


def is_alias_free(meta):
    return meta['G']['class_name'] == 'training.networks_stylegan3.Generator'


def build(meta, key):
    """G or D of the embedded host from the host's record, constructed under its seed."""
    record = meta[key]
    torch.manual_seed(meta['seeds'][f'{key}_init'])
    return get_host('embedded').construct_class_by_name(record['class_name'], *record['init_args'],
                                                        **record['init_kwargs'])


def loaded(cfg):
    """(meta, arrays, G, D): the embedded networks holding the golden's state, in eval mode."""
    meta, arrays = golden(cfg)
    nets = {}
    for key in ('G', 'D'):
        net = build(meta, key)
        net.load_state_dict({k: torch.from_numpy(v) for k, v in prefixed(arrays, f'{key}/').items()}, strict=True)
        nets[key] = net.eval().requires_grad_(False)
    return meta, arrays, nets['G'], nets['D']


def test_every_config_is_committed():
    assert sorted(p.stem for p in SG3_OWN_GOLDENS.glob('*.npz')) == sorted(SG3_OWN_GOLDEN_CONFIGS)


@pytest.mark.parametrize('cfg', SG3_OWN_GOLDEN_CONFIGS)
@pytest.mark.parametrize('key', ['G', 'D'])
def test_layout_is_the_hosts(cfg, key):
    """Same class path, state_dict names in the host's order, same shapes, the same parameters
    (the rest buffers), the same None buffers (ToRGB's filters), kwargs recorded as the host's."""
    meta, arrays = golden(cfg)
    net = build(meta, key)
    state = net.state_dict()
    assert list(state) == meta['state_dict_order'][key], 'state_dict names or order differ from the host'
    for name, value in prefixed(arrays, f'{key}/').items():
        assert tuple(state[name].shape) == value.shape and state[name].dtype == torch.float32, name
    assert [k for k, _ in net.named_parameters()] == meta['parameters'][key]
    ours_none = [f'{owner}.{name}'.lstrip('.') for owner, m in net.named_modules()
                 for name, b in m._buffers.items() if b is None]
    assert ours_none == meta[key]['none_buffers']
    kwargs = constructor_kwargs(net)
    assert kwargs.pop('class_name') == meta[key]['class_name']
    assert kwargs == meta[key]['init_kwargs']


@pytest.mark.parametrize('cfg', SG3_OWN_GOLDEN_CONFIGS)
@pytest.mark.parametrize('key', ['G', 'D'])
def test_constructed_buffers_are_the_hosts(cfg, key):
    """Under the host's seed, construction gives the host's buffers: the kaiser sinc / jinc
    filters (numpy-designed), the Fourier features, the noise and resample filters."""
    meta, arrays = golden(cfg)
    state = build(meta, key).state_dict()
    params = set(meta['parameters'][key])
    checked = 0
    for name, value in prefixed(arrays, f'{key}/').items():
        if name in params or name.endswith(PERTURBED_BUFFERS):
            continue
        if name.endswith(('up_filter', 'down_filter', 'input.freqs')):    # float math: an ulp between CPUs
            assert_close(state[name], value, CONSTRUCTED_TOL, name)
        else:
            assert torch.equal(state[name], torch.from_numpy(value)), name
        checked += 1
    assert checked


@pytest.mark.parametrize('cfg', [c for c in SG3_OWN_GOLDEN_CONFIGS if c != 'sg2c3'])
def test_layer_design_is_the_hosts(cfg):
    """The schedule the embedded network derives (sizes, rates, cutoffs, half-widths, channels,
    filter taps and shapes, radial flags, padding, fp16 flags, magnitude_ema) and the Python
    types of the attributes are those the host derived."""
    meta, _, G, _ = loaded(cfg)
    assert is_alias_free(meta)
    assert G.num_ws == meta['num_ws']
    assert_design_equal(sg3_synthesis_design(G.synthesis), meta['sg3_synthesis'], 'sg3_synthesis')


@pytest.mark.parametrize('cfg', SG3_OWN_GOLDEN_CONFIGS)
def test_goldens(cfg):
    meta, arrays, G, D = loaded(cfg)
    inputs, want = prefixed(arrays, 'inputs/'), prefixed(arrays, 'outputs/')
    z, c = torch.from_numpy(inputs['z']), torch.from_numpy(inputs['c'])
    assert set(want) == set(meta['calls'])
    with torch.no_grad():
        assert_close(G.mapping(z, c, truncation_psi=1), want['ws_psi1'], WS_TOL, 'ws_psi1')
        assert_close(G.mapping(z, c, truncation_psi=0.7), want['ws_psi07'], WS_TOL, 'ws_psi07')
        assert_close(G.mapping(z, c, truncation_psi=0.5, truncation_cutoff=G.num_ws // 2), want['ws_psi05_cutoff'],
                     WS_TOL, 'ws_psi05_cutoff')
        assert_close(G(z, c, truncation_psi=1, noise_mode='const'), want['img'], FP32_TOL, 'img')
        if 'img_psi07' in want:
            assert_close(G(z, c, truncation_psi=0.7, noise_mode='const'), want['img_psi07'], FP32_TOL, 'img_psi07')
        if is_alias_free(meta):      # gen_images.py --translate/--rotate: the inverse into input.transform
            moved = copy.deepcopy(G)
            moved.synthesis.input.transform.copy_(torch.from_numpy(inputs['transform']))
            assert_close(moved.synthesis(torch.from_numpy(want['ws_psi1']), noise_mode='const'),
                         want['img_transform'], FP32_TOL, 'img_transform')
        for key in [k for k in want if k.startswith('img')]:
            d_key = 'd' + key[3:]
            assert_close(D(torch.from_numpy(want[key]), c), want[d_key], FP32_TOL, d_key)


# --- Drift: the committed files against a fresh run of the generator on a checkout. -------------

PROVENANCE = ('host', 'command', 'date', 'runtime')


@pytest.mark.skipif(not SG3_HOST, reason='set COCKTAIL_TEST_SG3_HOST to a stylegan3 checkout to regenerate the '
                                         'goldens from it')
def test_committed_goldens_match_a_fresh_run_of_the_checkout(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    r = subprocess.run([sys.executable, str(REPO / 'tools' / 'make_sg3_goldens.py'), '--host', SG3_HOST,
                        '--out', str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    for cfg in SG3_OWN_GOLDEN_CONFIGS:
        meta, arrays = golden(cfg)
        fresh_meta, fresh = load_own_golden(tmp_path / f'{cfg}.npz')
        # magnitude_ema went through float32 operations: compared with the G/ tensors below.
        assert_design_equal({k: v for k, v in fresh_meta.items() if k not in PROVENANCE},
                            {k: v for k, v in meta.items() if k not in PROVENANCE}, cfg, skip=('magnitude_ema',))
        assert list(fresh) == list(arrays), cfg
        for name, value in arrays.items():
            # Same construction and seeds: inputs and weights equal; what ran through float32
            # operations (outputs, calibrated magnitude_ema) within the goldens' tolerances.
            tol = WS_TOL if name.startswith(('G/', 'D/', 'inputs/', 'outputs/ws')) else FP32_TOL
            assert_close(torch.from_numpy(fresh[name]), value, tol, f'{cfg}: {name}')
