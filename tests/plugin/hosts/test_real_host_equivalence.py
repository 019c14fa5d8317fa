"""Embedded networks vs a real stylegan2-ada-pytorch checkout, over many configurations.

Runs when ``COCKTAIL_TEST_HOST`` points at a checkout (it is never copied into this repo);
skipped otherwise. The fixtures test covers three configurations without a checkout.
"""
import itertools
import os
import sys

import pytest
import torch

from plugin.hosts.embedded import networks as ours

CHECKOUT = os.environ.get('COCKTAIL_TEST_HOST')
pytestmark = pytest.mark.skipif(not CHECKOUT, reason='set COCKTAIL_TEST_HOST to a stylegan2-ada-pytorch checkout')


@pytest.fixture(scope='module')
def host_networks():
    sys.path.insert(0, CHECKOUT)
    try:
        import training.networks as host
    finally:
        sys.path.remove(CHECKOUT)
    return host


CONFIGS = [
    dict(g_arch=g, d_arch=d, c_dim=c, fp16=f)
    for (g, d), c, f in zip(itertools.product(['orig', 'skip', 'resnet'], ['orig', 'skip', 'resnet']),
                            [0, 3, 0, 5, 0, 3, 1, 0, 2], [0, 1, 0, 2, 0, 0, 1, 2, 0])
]


def kwargs(cfg, res=32):
    G = dict(z_dim=24, c_dim=cfg['c_dim'], w_dim=20, img_resolution=res, img_channels=3,
             mapping_kwargs=dict(num_layers=3),
             synthesis_kwargs=dict(channel_base=256, channel_max=24, num_fp16_res=cfg['fp16'], conv_clamp=256,
                                   architecture=cfg['g_arch']))
    D = dict(c_dim=cfg['c_dim'], img_resolution=res, img_channels=3, architecture=cfg['d_arch'],
             channel_base=256, channel_max=24, num_fp16_res=cfg['fp16'], conv_clamp=256,
             block_kwargs=dict(freeze_layers=2), epilogue_kwargs=dict(mbstd_group_size=2))
    return G, D


@pytest.mark.parametrize('cfg', CONFIGS, ids=lambda c: '-'.join(f'{k}{v}' for k, v in c.items()))
def test_same_init_names_and_outputs(host_networks, cfg):
    gk, dk = kwargs(cfg)
    pairs = []
    for name, kw in (('Generator', gk), ('Discriminator', dk)):
        torch.manual_seed(123)
        h = getattr(host_networks, name)(**kw)
        torch.manual_seed(123)
        o = getattr(ours, name)(**kw)
        hs, os_ = h.state_dict(), o.state_dict()
        assert list(hs) == list(os_), f'{name}: state_dict names/order differ'
        for k in hs:
            assert torch.equal(hs[k], os_[k]), f'{name}.{k}: same seed gives different init'
        pairs.append((h, o))
    (hG, oG), (hD, oD) = pairs
    z = torch.randn(4, 24)
    c = torch.eye(max(cfg['c_dim'], 1))[torch.arange(4) % max(cfg['c_dim'], 1)][:, :cfg['c_dim']]
    tol = dict(atol=2e-2, rtol=0) if cfg['fp16'] else dict(atol=1e-4, rtol=1e-4)
    for training in (False, True):                         # fused (eval) and non-fused (train) modconv
        for m in (hG, oG, hD, oD):
            m.train(training)
        with torch.no_grad():
            h_img = hG(z, c, truncation_psi=0.7, noise_mode='const')
            o_img = oG(z, c, truncation_psi=0.7, noise_mode='const')
            torch.testing.assert_close(o_img, h_img, **tol)
            torch.testing.assert_close(oD(h_img, c), hD(h_img, c), **tol)
    # Gradients agree too (fp32 path).
    for m in (hG, oG, hD, oD):
        m.train().zero_grad()
    for G, D in ((hG, hD), (oG, oD)):
        D(G(z, c, noise_mode='const', force_fp32=True), c, force_fp32=True).square().sum().backward()
    hp = dict(hG.named_parameters())
    for name, p in oG.named_parameters():
        torch.testing.assert_close(p.grad, hp[name].grad, atol=1e-3, rtol=1e-3)


def test_host_loader_reads_our_pickles(host_networks, tmp_path):
    """Our snapshot pickles load in the host's own legacy.load_network_pkl (plugin installed)."""
    from plugin import save_network_pkl
    sys.path.insert(0, CHECKOUT)
    try:
        import legacy
    finally:
        sys.path.remove(CHECKOUT)
    gk, dk = kwargs(dict(g_arch='skip', d_arch='resnet', c_dim=2, fp16=0))
    torch.manual_seed(0)
    G, D = ours.Generator(**gk), ours.Discriminator(**dk)
    save_network_pkl(dict(G=G, D=D, G_ema=G, training_set_kwargs=None), tmp_path / 'ours.pkl')
    with open(tmp_path / 'ours.pkl', 'rb') as f:
        data = legacy.load_network_pkl(f)
    z, c = torch.randn(2, 24), torch.eye(2)
    with torch.no_grad():
        torch.testing.assert_close(data['G_ema'](z, c, noise_mode='const'), G.eval()(z, c, noise_mode='const'))
