"""Embedded host networks: construction, determinism, gradients, modes and errors."""
import copy

import pytest
import torch

from tests.helpers import small_D_kwargs, small_G_kwargs
from plugin.hosts.embedded.networks import Discriminator, Generator

ARCHS = ['orig', 'skip', 'resnet']


def make_G(seed=0, **kw):
    torch.manual_seed(seed)
    return Generator(**small_G_kwargs(**kw))


def make_D(seed=0, **kw):
    torch.manual_seed(seed)
    return Discriminator(**small_D_kwargs(**kw))


def synthesis(arch, **extra):
    return dict(channel_base=128, channel_max=16, conv_clamp=256, architecture=arch, **extra)


@pytest.mark.parametrize('arch', ARCHS)
def test_generator_shapes_and_num_ws(arch):
    G = make_G(synthesis_kwargs=synthesis(arch))
    assert G.num_ws == 6                                   # 2 * log2(16) - 2
    img = G(torch.randn(3, 16), None)
    assert img.shape == (3, 3, 16, 16) and img.dtype == torch.float32 and torch.isfinite(img).all()


def test_same_seed_same_network_and_output():
    a, b = make_G(seed=5), make_G(seed=5)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    z = torch.randn(2, 16)
    with torch.no_grad():
        assert torch.equal(a(z, None, noise_mode='const'), b(z, None, noise_mode='const'))
        torch.manual_seed(9)
        r1 = a(z, None, noise_mode='random')
        torch.manual_seed(9)
        r2 = a(z, None, noise_mode='random')
    assert torch.equal(r1, r2)
    assert not torch.equal(make_G(seed=6).state_dict()['synthesis.b4.const'], sa['synthesis.b4.const'])


def test_noise_modes_differ_as_expected():
    G = make_G().eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith('noise_strength'):
                p.fill_(0.5)
        z = torch.randn(2, 16)
        const = G(z, None, noise_mode='const')
        none = G(z, None, noise_mode='none')
        rand = G(z, None, noise_mode='random')
    assert not torch.allclose(const, none) and not torch.allclose(const, rand)
    with pytest.raises(ValueError, match='noise_mode'):
        G(z, None, noise_mode='loud')


@pytest.mark.parametrize('arch', ARCHS)
def test_fused_and_non_fused_modconv_agree(arch):
    G = make_G(synthesis_kwargs=synthesis(arch)).eval()
    ws = G.mapping(torch.randn(3, 16), None)
    with torch.no_grad():
        fused = G.synthesis(ws, noise_mode='const', fused_modconv=True)
        split = G.synthesis(ws, noise_mode='const', fused_modconv=False)
    torch.testing.assert_close(fused, split, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('g_arch', ARCHS)
@pytest.mark.parametrize('d_arch', ARCHS)
def test_gradients_reach_every_trainable_parameter(g_arch, d_arch):
    G = make_G(c_dim=3, synthesis_kwargs=synthesis(g_arch)).train()
    D = make_D(c_dim=3, architecture=d_arch).train()
    c = torch.eye(3)[[0, 1, 2, 0]]
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith('noise_strength'):
                p.fill_(0.1)              # zero-initialised: give the noise path a gradient too
    logits = D(G(torch.randn(4, 16), c), c)
    logits.sum().backward()
    for net in (G, D):
        for name, p in net.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, f'{name} got a zero gradient'


def test_w_avg_tracks_only_in_training_and_truncation():
    G = make_G()
    before = G.mapping.w_avg.clone()
    G.eval()(torch.randn(4, 16), None)
    assert torch.equal(G.mapping.w_avg, before)
    G.train().mapping(torch.randn(4, 16), None, skip_w_avg_update=True)
    assert torch.equal(G.mapping.w_avg, before)
    G.train()(torch.randn(4, 16), None)
    assert not torch.equal(G.mapping.w_avg, before)
    G.eval()
    z = torch.randn(2, 16)
    ws = G.mapping(z, None)
    torch.testing.assert_close(G.mapping(z, None, truncation_psi=0), G.mapping.w_avg.expand_as(ws))
    cut = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(cut[:, 2:], ws[:, 2:])
    torch.testing.assert_close(cut[:, :2], G.mapping.w_avg.lerp(ws[:, :2], 0.5))


def test_conditional_generator_uses_the_label():
    G = make_G(c_dim=4).eval()
    z = torch.randn(1, 16).repeat(2, 1)
    with torch.no_grad():
        img = G(z, torch.eye(4)[[0, 3]], noise_mode='const')
    assert not torch.allclose(img[0], img[1])


def test_freeze_d_layers_become_buffers_with_the_same_names():
    free = make_D(seed=3)
    frozen = make_D(seed=3, block_kwargs=dict(freeze_layers=2))
    assert set(free.state_dict()) == set(frozen.state_dict())
    frozen_names = {n for n, _ in frozen.named_buffers() if n.endswith(('weight', 'bias'))}
    assert frozen_names == {'b16.fromrgb.weight', 'b16.fromrgb.bias', 'b16.conv0.weight', 'b16.conv0.bias'}
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(free(x, None), frozen(x, None))


def test_fp16_blocks_and_force_fp32():
    G = make_G(synthesis_kwargs=synthesis('skip', num_fp16_res=2)).eval()
    assert [G.synthesis.b8.use_fp16, G.synthesis.b16.use_fp16, G.synthesis.b4.use_fp16] == [True, True, False]
    ws = G.mapping(torch.randn(2, 16), None)
    with torch.no_grad():
        half = G.synthesis(ws, noise_mode='const')
        full = G.synthesis(ws, noise_mode='const', force_fp32=True)
    assert half.dtype == full.dtype == torch.float32
    assert (half - full).abs().max() < 5e-2 and not torch.equal(half, full)


def test_deepcopy_keeps_init_kwargs():
    G = make_G(c_dim=2)
    clone = copy.deepcopy(G)
    assert clone._init_kwargs == G._init_kwargs and clone._init_kwargs is not G._init_kwargs


@pytest.mark.parametrize('res', [0, 2, 24, 100])
def test_bad_resolution_is_a_clear_error(res):
    with pytest.raises(ValueError, match='power of two'):
        Generator(**small_G_kwargs(img_resolution=res))
    with pytest.raises(ValueError, match='power of two'):
        Discriminator(**small_D_kwargs(img_resolution=res))


def test_wrong_input_shapes_are_clear_errors():
    G, D = make_G(), make_D()
    with pytest.raises(ValueError, match=r'ws of shape \[N, 6, 16\]'):
        G.synthesis(torch.zeros(1, 5, 16))
    with pytest.raises(ValueError, match='discriminator expects images'):
        D(torch.zeros(2, 3, 32, 32), None)
    with pytest.raises(ValueError, match='group size'):
        D(torch.zeros(3, 3, 16, 16), None)
    with pytest.raises(ValueError, match='architecture'):
        Generator(**small_G_kwargs(synthesis_kwargs=synthesis('unet')))
