"""The embedded alias-free generator (training.networks_stylegan3, StyleGAN3-T/-R) against pickles
and goldens written by the real stylegan3 repo (../shared/fixtures/stylegan3, README there), and
the filtered_lrelu reference op against a plain composition of its steps.

Self-contained: only G and G_ema are checked here (D of these fixtures is the stylegan3 repo's
StyleGAN2 discriminator, another family).
"""
import copy
import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from plugin.hosts import get_host
from plugin.hosts.embedded import networks_stylegan3 as sg3
from plugin.persistence import constructor_kwargs
from plugin.pickles import dumps_network_pkl, load_network_pkl
from tests.helpers.goldens import (CONSTRUCTED_TOL, FP32_TOL, WS_TOL, assert_close, assert_design_equal, load_fixture,
                                   max_excess, sg3_synthesis_design, tensor_sha256)
from torch_utils_ext.ops.filtered_lrelu import filtered_lrelu, output_size

CONFIGS = ['t32', 'r32cond']                # the alias-free ones (sg2cond32: test_stylegan3_sg2.py)

pytestmark = pytest.mark.usefixtures('one_thread')     # the goldens were computed on one thread


def fixture(folder):
    """(loaded pickle, manifest, goldens) of one fixture folder, rebuilt by the embedded host
    (D waits for the stylegan3 repo's StyleGAN2 family there)."""
    return load_fixture(folder, host='embedded')


def inputs(golden):
    return torch.from_numpy(golden['z']), torch.from_numpy(golden['c'])


# --- Loading: classes, tensors, design. ---------------------------------------------------------

@pytest.mark.parametrize('cfg', CONFIGS)
@pytest.mark.parametrize('key', ['G', 'G_ema'])
def test_tensors_match_manifest(sg3_fixtures_dir, cfg, key):
    data, manifest, _ = fixture(sg3_fixtures_dir / cfg)
    module = data[key]
    assert isinstance(module, sg3.Generator) and not module.training
    assert not any(p.requires_grad for p in module.parameters())
    state = module.state_dict()
    expected = manifest[key]['tensors']
    assert list(state) == [t['name'] for t in expected], 'state_dict names or order differ from the host'
    params = dict(module.named_parameters())
    for t in expected:
        value = state[t['name']]
        assert list(value.shape) == t['shape'] and value.dtype == torch.float32, t['name']
        assert ('parameter' if t['name'] in params else 'buffer') == t['kind'], t['name']
        assert tensor_sha256(value) == t['sha256'], f"{t['name']}: tensor bytes differ from the host's"
    for name in manifest[key]['none_buffers']:       # ToRGB's filters: None buffers, as the host's
        owner, _, leaf = name.rpartition('.')
        buffers = module.get_submodule(owner)._buffers
        assert leaf in buffers and buffers[leaf] is None, name


@pytest.mark.parametrize('cfg', CONFIGS)
def test_layer_design_matches_manifest(sg3_fixtures_dir, cfg):
    data, manifest, golden = fixture(sg3_fixtures_dir / cfg)
    want = manifest['sg3_synthesis']
    syn = data['G_ema'].synthesis
    assert syn.layer_names == [layer['name'] for layer in want['layers']]
    assert syn.num_fp16_res == want['num_fp16_res']
    # Schedule, Fourier input and every layer (attribute types too: numpy where the host's are).
    assert_design_equal(sg3_synthesis_design(syn), want, 'sg3_synthesis', skip=('num_fp16_res',))
    for name in syn.layer_names:
        layer = getattr(syn, name)
        assert layer.in_size.dtype == np.int64 and layer.in_size.shape == (2,)
    np.testing.assert_array_equal(np.array([getattr(syn, n).magnitude_ema.item() for n in syn.layer_names],
                                           dtype=np.float32), golden['magnitude_ema'])


@pytest.mark.parametrize('cfg', CONFIGS)
def test_fresh_construction_reproduces_host_buffers(sg3_fixtures_dir, cfg):
    """Built from the stored kwargs, the filters are the host's (kaiser sinc / jinc design and
    orientation), and under the host's construction seed so are the Fourier features."""
    data, manifest, golden = fixture(sg3_fixtures_dir / cfg)
    torch.manual_seed(manifest['seeds']['G_init'])
    fresh = sg3.Generator(*data['G']._init_args, **data['G']._init_kwargs)
    assert_close(fresh.synthesis.input.freqs, golden['input_freqs'], CONSTRUCTED_TOL, 'input.freqs')
    np.testing.assert_array_equal(fresh.synthesis.input.phases.numpy(), golden['input_phases'])
    stored = data['G_ema'].synthesis
    for name in stored.layer_names:
        for buf in ('up_filter', 'down_filter'):
            a, b = getattr(fresh.synthesis, name)._buffers[buf], getattr(stored, name)._buffers[buf]
            assert (a is None) == (b is None), f'{name}.{buf}'
            if a is not None:
                assert_close(a, b.numpy(), CONSTRUCTED_TOL, f'{name}.{buf}')
                assert math.isclose(a.sum().item(), 1.0, rel_tol=1e-5)      # unit DC gain


# --- Goldens. --------------------------------------------------------------------------------------

@pytest.mark.parametrize('cfg', CONFIGS)
def test_goldens(sg3_fixtures_dir, cfg):
    data, _, g = fixture(sg3_fixtures_dir / cfg)
    G, G_ema = data['G'], data['G_ema']
    z, c = inputs(g)
    with torch.no_grad():
        ws = G_ema.mapping(z, c, truncation_psi=1)
        assert_close(ws, g['ws_psi1'], WS_TOL, 'ws_psi1')
        assert_close(G_ema.mapping(z, c, truncation_psi=0.7), g['ws_psi07'], WS_TOL, 'ws_psi07')
        assert_close(G_ema.mapping.w_avg, g['w_avg'], WS_TOL, 'w_avg')
        img = G_ema.synthesis(torch.from_numpy(g['ws_psi1']), noise_mode='const')
        assert_close(img, g['img_const'], FP32_TOL, 'img_const')
        assert_close(G_ema(z, c, truncation_psi=1, noise_mode='const'), g['img_psi1'], FP32_TOL, 'img_psi1')
        assert_close(G_ema(z, c, truncation_psi=0.7, noise_mode='const'), g['img_psi07'], FP32_TOL, 'img_psi07')
        assert_close(G(z, c, truncation_psi=1, noise_mode='const'), g['img_G'], FP32_TOL, 'img_G')
        # gen_images.py --translate/--rotate: the inverse transform goes into the input's buffer.
        moved = copy.deepcopy(G_ema)
        moved.synthesis.input.transform.copy_(torch.from_numpy(g['input_transform']))
        assert_close(moved.synthesis(torch.from_numpy(g['ws_psi1'])), g['img_transform'], FP32_TOL, 'img_transform')
    np.testing.assert_array_equal(G_ema.synthesis.input.freqs.numpy(), g['input_freqs'])
    np.testing.assert_array_equal(G_ema.synthesis.input.phases.numpy(), g['input_phases'])


def test_goldens_bite(sg3_fixtures_dir):
    """The golden checks catch the typical mistakes the fixtures' README lists."""
    data, _, g = fixture(sg3_fixtures_dir / 't32')
    ws = torch.from_numpy(g['ws_psi1'])
    transform = torch.from_numpy(g['input_transform'])

    def excess(mutate=None, transform=None, key='img_const'):
        G = copy.deepcopy(data['G_ema'])
        if mutate is not None:
            mutate(G.synthesis)
        if transform is not None:
            G.synthesis.input.transform.copy_(transform)
        with torch.no_grad():
            return max_excess(G.synthesis(ws), g[key], FP32_TOL)

    def no_magnitude_ema(s):
        for n in s.layer_names:
            getattr(s, n).magnitude_ema.fill_(1)

    def no_output_scale(s):
        s.output_scale = 1

    def other_padding_split(s):     # the other rounding of the centred split (paper App. C.3)
        for n in s.layer_names:
            lo_x, hi_x, lo_y, hi_y = getattr(s, n).padding
            getattr(s, n).padding = [hi_x, lo_x, hi_y, lo_y]

    assert excess() <= 0
    for mutate in (no_magnitude_ema, no_output_scale, other_padding_split):
        assert excess(mutate) > 0, mutate.__name__
    assert excess(transform=transform, key='img_transform') <= 0
    assert excess(key='img_transform') > 0                         # the transform ignored
    rotated_back = transform.clone()
    rotated_back[:2, :2] = transform[:2, :2].t()                    # rotating the other way
    assert excess(transform=rotated_back, key='img_transform') > 0


@pytest.mark.parametrize('cfg', CONFIGS)
def test_noise_mode_is_inert(sg3_fixtures_dir, cfg):
    data, _, g = fixture(sg3_fixtures_dir / cfg)
    ws = torch.from_numpy(g['ws_psi1'])[:1]
    with torch.no_grad():
        outs = [data['G_ema'].synthesis(ws, noise_mode=m) for m in ('random', 'const', 'none')]
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[1], outs[2])
    with pytest.raises(ValueError):
        data['G_ema'].synthesis(ws, noise_mode='sometimes')


# --- EMAs. -----------------------------------------------------------------------------------------

@pytest.mark.parametrize('cfg', CONFIGS)
def test_magnitude_ema_calibration_reproduces_host(sg3_fixtures_dir, cfg):
    """The fixtures' calibration (README, Weights step 3) run through our update path gives the
    host's magnitude_ema values: our layers see the host's inputs."""
    data, manifest, _ = fixture(sg3_fixtures_dir / cfg)
    G = copy.deepcopy(data['G'])
    torch.manual_seed(manifest['seeds']['magnitude_ema_calibration'])
    z = torch.randn([8, G.z_dim])
    c = torch.zeros([8, G.c_dim])
    if G.c_dim:
        c[torch.arange(8), torch.arange(8) % G.c_dim] = 1
    layers = [getattr(G.synthesis, n) for n in G.synthesis.layer_names]
    with torch.no_grad():
        ws = G.mapping(z, c, truncation_psi=1)
        for layer in layers:
            layer.magnitude_ema.fill_(123.0)          # overwritten: beta 0 keeps nothing of it
            layer.magnitude_ema_beta = 0.0
        G.synthesis(ws, update_emas=True)
    got = np.array([layer.magnitude_ema.item() for layer in layers])
    np.testing.assert_allclose(got, manifest['perturbation']['magnitude_ema']['values_G'], rtol=1e-5, atol=0)


def test_update_emas(sg3_fixtures_dir):
    """magnitude_ema and w_avg move only with update_emas=True, by one lerp step each."""
    data, _, g = fixture(sg3_fixtures_dir / 't32')
    G = copy.deepcopy(data['G_ema'])
    z, c = inputs(g)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    with torch.no_grad():
        G(z, c)
        G.train()(z, c)                                # training mode alone updates nothing
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())

    seen = {}
    names = G.synthesis.layer_names
    hooks = [getattr(G.synthesis, n).register_forward_pre_hook(
        lambda m, args, n=n: seen.__setitem__(n, args[0].detach().square().mean())) for n in names]
    with torch.no_grad():
        w_mean = G.mapping(z, c, truncation_psi=1)[:, 0].mean(dim=0)
        G(z, c, update_emas=True)
    for h in hooks:
        h.remove()
    beta = G.mapping.w_avg_beta
    assert beta == 0.998
    torch.testing.assert_close(G.mapping.w_avg, w_mean.lerp(before['mapping.w_avg'], beta), rtol=1e-6, atol=1e-7)
    for n in names:
        layer = getattr(G.synthesis, n)
        old = before[f'synthesis.{n}.magnitude_ema']
        assert layer.magnitude_ema_beta == data['G_ema']._init_kwargs['magnitude_ema_beta']
        torch.testing.assert_close(layer.magnitude_ema, seen[n].lerp(old, layer.magnitude_ema_beta),
                                   rtol=1e-6, atol=0)
        assert not torch.equal(layer.magnitude_ema, old), n
    assert all(torch.equal(before[k], v) for k, v in G.named_parameters())


# --- Registration and our own pickles. ---------------------------------------------------------

def test_registered_in_embedded_host():
    host = get_host('embedded')
    for name in ('Generator', 'MappingNetwork', 'SynthesisNetwork', 'SynthesisInput', 'SynthesisLayer',
                 'FullyConnectedLayer'):
        assert host.resolve_class_path(f'training.networks_stylegan3.{name}') is getattr(sg3, name)
        assert host.network_class('stylegan3.networks', name) is getattr(sg3, name)


@pytest.mark.parametrize('cfg', CONFIGS)
def test_save_round_trip(sg3_fixtures_dir, cfg):
    data, manifest, g = fixture(sg3_fixtures_dir / cfg)
    blob = dumps_network_pkl({'G': data['G'], 'G_ema': data['G_ema'],
                              'training_set_kwargs': data['training_set_kwargs']})
    back = load_network_pkl(io.BytesIO(blob), host='embedded')
    for key in ('G', 'G_ema'):
        assert type(back[key]) is sg3.Generator
        a, b = back[key].state_dict(), data[key].state_dict()
        assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
        kw = constructor_kwargs(back[key])
        assert kw.pop('class_name') == 'training.networks_stylegan3.Generator'
        assert kw == manifest[key]['init_kwargs']
    # The host's layout: numpy sizes and float64 cutoffs in the layers' state, None ToRGB filters.
    records = load_network_pkl(io.BytesIO(blob), host='embedded', rebuild=False)
    syn = records['G_ema'].state['_modules']['synthesis'].state
    first = syn['_modules'][syn['layer_names'][0]].state
    assert isinstance(first['in_size'], np.ndarray) and first['in_size'].dtype == np.int64
    assert isinstance(first['in_cutoff'], np.float64)
    last = syn['_modules'][syn['layer_names'][-1]].state
    assert last['_buffers']['up_filter'] is None and last['_buffers']['down_filter'] is None
    with torch.no_grad():
        assert torch.equal(back['G_ema'].synthesis(torch.from_numpy(g['ws_psi1'][:1])),
                           data['G_ema'].synthesis(torch.from_numpy(g['ws_psi1'][:1])))


@pytest.mark.parametrize('kwargs', [
    dict(img_resolution=16, c_dim=2, channel_base=256, channel_max=16),                    # stylegan3-t
    dict(img_resolution=16, c_dim=0, channel_base=256, channel_max=16, conv_kernel=1,      # stylegan3-r
         use_radial_filters=True, num_layers=6, conv_clamp=256, num_fp16_res=4),
])
def test_fresh_generator_forward_backward(kwargs):
    torch.manual_seed(0)
    G = sg3.Generator(z_dim=8, w_dim=8, img_channels=3, mapping_kwargs={'num_layers': 2},
                      magnitude_ema_beta=0.9, **kwargs)
    res = kwargs['img_resolution']
    assert G.num_ws == kwargs.get('num_layers', 14) + 2
    z = torch.randn(2, 8)
    c = torch.eye(max(G.c_dim, 1))[:2, :G.c_dim] if G.c_dim else torch.zeros(2, 0)
    img = G(z, c, update_emas=True)
    assert img.shape == (2, 3, res, res) and torch.isfinite(img).all()
    img.square().mean().backward()
    for name, p in G.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert G.mapping.fc0.weight.grad.abs().sum() > 0     # through every synthesis layer
    last = getattr(G.synthesis, G.synthesis.layer_names[-1])
    assert last.is_torgb and last.up_filter is None and last.down_filter is None
    assert all(int(v) == res for v in last.out_size)
    blob = dumps_network_pkl({'G': G})
    back = load_network_pkl(io.BytesIO(blob), host='embedded')['G']
    with torch.no_grad():
        assert torch.equal(back.eval()(z, c), G.eval()(z, c))


# --- filtered_lrelu. -------------------------------------------------------------------------------

def plain_filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter=False):
    """Each step as written: zero insertion, pad/crop, full 2D convolution with fu * up**2,
    leaky ReLU, gain, clamp, full 2D convolution with fd, every down-th sample."""
    def as2d(f):
        if f is None:
            return torch.ones(1, 1, dtype=x.dtype)
        return torch.outer(f, f) if f.ndim == 1 else f

    def convolve(t, f):         # true convolution ('valid'), one channel at a time
        k = f if flip_filter else f.flip([0, 1])
        return F.conv2d(t, k[None, None].expand(t.shape[1], 1, *k.shape).to(t.dtype), groups=t.shape[1])

    n, ch, h, w = x.shape
    t = x + b.reshape(1, -1, 1, 1) if b is not None else x
    z = torch.zeros(n, ch, h * up, w * up, dtype=x.dtype)
    z[:, :, ::up, ::up] = t
    px0, px1, py0, py1 = padding
    z = F.pad(z, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    z = z[:, :, max(-py0, 0):z.shape[2] - max(-py1, 0), max(-px0, 0):z.shape[3] - max(-px1, 0)]
    y = convolve(z, as2d(fu) * up ** 2)
    y = torch.where(y >= 0, y, y * slope) * gain
    if clamp is not None:
        y = y.clamp(-clamp, clamp)
    y = convolve(y, as2d(fd))
    return y[:, :, ::down, ::down]


CASES = [  # fu taps (0: None, -k: 2D k x k), fd taps, up, down, padding, gain, slope, clamp, flip
    (4, 6, 2, 2, [3, 2, 3, 2], math.sqrt(2), 0.2, None, False),
    (8, 4, 4, 2, [-1, -2, 0, 3], math.sqrt(2), 0.2, 0.5, False),
    (6, -5, 2, 2, [2, 3, 1, 4], 1.3, 0.1, 1.0, True),
    (0, 0, 1, 1, [0, 0, 0, 0], 1.0, 1.0, None, False),             # ToRGB: bias only
    (3, 0, 2, 1, [1, 1, 2, 0], 0.7, 0.0, None, False),
    (0, 5, 1, 2, [2, 2, 2, 2], math.sqrt(2), 0.2, None, False),
    (-4, 3, 2, 2, [5, -3, -2, 6], 1.0, 0.3, None, True),          # 2D up filter; pads beyond its taps
    (4, -3, 4, 1, [7, 6, -6, 0], 1.0, 0.2, 2.0, False),
]


def _filter(taps, gen):
    if taps == 0:
        return None
    if taps < 0:
        return torch.rand(-taps, -taps, generator=gen, dtype=torch.float64)
    return torch.rand(taps, generator=gen, dtype=torch.float64)      # asymmetric: catches flips


@pytest.mark.parametrize('case', CASES)
def test_filtered_lrelu_matches_plain_composition(case):
    fu_taps, fd_taps, up, down, pad, gain, slope, clamp, flip = case
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 7, 6, generator=gen, dtype=torch.float64)
    b = torch.randn(3, generator=gen, dtype=torch.float64)
    fu, fd = _filter(fu_taps, gen), _filter(fd_taps, gen)
    ours = filtered_lrelu(x, fu, fd, b, up=up, down=down, padding=pad, gain=gain, slope=slope, clamp=clamp,
                          flip_filter=flip)
    ref = plain_filtered_lrelu(x, fu, fd, b, up, down, pad, gain, slope, clamp, flip)
    assert ours.shape == ref.shape
    assert tuple(ours.shape[2:][::-1]) == output_size((6, 7), fu, fd, up, down, pad)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    # float32 as the networks run it
    ours32 = filtered_lrelu(x.float(), None if fu is None else fu.float(), None if fd is None else fd.float(),
                            b.float(), up=up, down=down, padding=pad, gain=gain, slope=slope, clamp=clamp,
                            flip_filter=flip)
    torch.testing.assert_close(ours32, ref.float(), rtol=1e-5, atol=1e-5)


def test_filtered_lrelu_gradients():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 2, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, generator=gen, dtype=torch.float64, requires_grad=True)
    fu = torch.rand(4, generator=gen, dtype=torch.float64)
    fd = torch.rand(3, 3, generator=gen, dtype=torch.float64)
    for clamp in (None, 0.8):
        def f(x, b):
            return filtered_lrelu(x, fu, fd, b, up=2, down=2, padding=[2, 1, 1, 2], gain=1.4, slope=0.2,
                                  clamp=clamp)
        assert torch.autograd.gradcheck(f, (x, b))
        assert torch.autograd.gradgradcheck(f, (x, b))


def test_filtered_lrelu_rejects_bad_arguments():
    x = torch.randn(1, 2, 4, 4)
    with pytest.raises(ValueError):
        filtered_lrelu(x, b=torch.zeros(3))
    with pytest.raises(ValueError):
        filtered_lrelu(x, up=0)
    with pytest.raises(ValueError):
        filtered_lrelu(x[0])


def test_inspect_describes_alias_free(sg3_fixtures_dir):
    from plugin.inspect_pkl import describe, format_description
    info = describe(sg3_fixtures_dir / 'r32cond' / 'network-snapshot.pkl')
    entry = info['entries']['G_ema']
    assert entry['rebuilt'] and entry['alias_free'] == 'stylegan3-r' and entry['num_ws'] == 16
    assert 'alias-free (stylegan3-r): 15 layers' in format_description(info)
