"""The plugin's losses follow both loops' conventions. stylegan2-ada's loop (and the embedded
one) builds the loss from ``G_mapping`` and ``G_synthesis`` and calls it with ``sync``; the
stylegan3 repo's builds it from ``G`` and calls it with ``gain`` and ``cur_nimg`` and no
``sync``. The wrapped host loss gets what its own signature takes, and the plugin's own terms
still train. (Through a real stylegan3 checkout's loop: tests/plugin/hosts/test_stylegan3_training.py,
with COCKTAIL_TEST_SG3_HOST.)"""
import inspect

import pytest
import torch

from tests.helpers import REPO, make_source
from plugin import load_network_pkl
from training_ext.common import loss_wrapper
from training_ext.hypermod.loss import HypermodLoss, SelfInitLoss
from training_ext.hypermod.networks import discriminator_from_source, hyper_from_source
from training_ext.mining.loss import MiningLoss
from training_ext.mining.miner import mined_from_sources

ASSETS = REPO / 'plugin' / 'assets' / 'sources'

pytestmark = pytest.mark.usefixtures('one_thread')


class Sg3StyleLoss:
    """The stylegan3 repo's loss signatures; records what it is called with."""
    def __init__(self, device, G, D, augment_pipe=None, r1_gamma=10):
        self.G, self.D, self.calls = G, D, []

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
        self.calls.append(dict(phase=phase, gain=gain, cur_nimg=cur_nimg))


class Sg3StyleHost:
    def resolve_class_path(self, name):
        return Sg3StyleLoss

    def construct_class_by_name(self, name, **kwargs):
        return Sg3StyleLoss(**kwargs)


@pytest.fixture(scope='module')
def nets(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('conventions')
    a, b = (load_network_pkl(make_source(tmp / f'{k}.pkl', i)) for i, k in enumerate('ab'))
    discs = load_network_pkl(ASSETS / 'discs.pkl')
    torch.manual_seed(0)
    return dict(M=mined_from_sources([a['G_ema'], b['G_ema']]).train().requires_grad_(True), D=a['D'],
                H=hyper_from_source(discs['G_ema'], 2, rank=4, init='reference').train().requires_grad_(True),
                HD=discriminator_from_source(discs['D'], 2, 1).train().requires_grad_(True))


def test_a_stylegan3_loop_builds_the_losses_from_G_and_calls_them_without_sync(nets, monkeypatch):
    monkeypatch.setattr(loss_wrapper, 'active_host', lambda: Sg3StyleHost())
    M, H, HD = nets['M'], nets['H'], nets['HD']
    mining = MiningLoss(device='cpu', G=M, D=nets['D'], augment_pipe=None, r1_gamma=1)
    assert mining.G_mapping is M.mapping and mining.G_synthesis is M.synthesis and mining.inner.G is M
    M.zero_grad(set_to_none=True)
    mining.accumulate_gradients(phase='Gmain', real_img=None, real_c=None, gen_z=torch.randn(4, M.z_dim),
                                gen_c=torch.zeros(4, 0), gain=1, cur_nimg=4000)
    assert mining.inner.calls == [dict(phase='Gmain', gain=1, cur_nimg=4000)]       # no sync: it takes none
    assert M.mapping.selector.net[2].weight.grad.abs().sum() > 0, 'the selector term trained'
    hyper = HypermodLoss(device='cpu', G=H, D=HD, augment_pipe=None, contrastive_weight=1.0, r1_gamma=1)
    HD.zero_grad(set_to_none=True)
    c = torch.eye(2).repeat(2, 1)
    hyper.accumulate_gradients(phase='Dmain', real_img=torch.rand(4, 3, 32, 32) * 2 - 1, real_c=c,
                               gen_z=torch.randn(4, H.z_dim), gen_c=c, gain=1, cur_nimg=8)
    assert hyper.inner.calls == [dict(phase='Dmain', gain=1, cur_nimg=8)]
    assert HD.net.b4.fc.weight.grad.abs().sum() > 0, 'the contrastive and mismatch terms trained D'
    selfinit = SelfInitLoss(device='cpu', G=H, D=HD, source=str(ASSETS / 'discs.pkl'))
    H.zero_grad(set_to_none=True)
    selfinit.accumulate_gradients(phase='Gmain', real_img=None, real_c=None, gen_z=torch.randn(4, H.z_dim),
                                  gen_c=c, gain=1, cur_nimg=0)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in H.synthesis.parameters())
    with pytest.raises(TypeError, match='needs D and either G or G_mapping and G_synthesis'):
        MiningLoss(device='cpu', D=nets['D'])


def test_the_embedded_loop_hands_a_plugin_loss_its_progress_and_sync(nets, monkeypatch):
    """The embedded loop passes cur_nimg to a loss whose signature takes it: the plugin's losses
    now do, so a stylegan3 -R blur schedule works under a method; the host loss gets sync too."""
    H, HD = nets['H'], nets['HD']
    loss = HypermodLoss('cpu', H.mapping, H.synthesis, HD, contrastive_weight=0, r1_gamma=1,
                        blur_init_sigma=10, blur_fade_kimg=1)
    assert 'cur_nimg' in inspect.signature(loss.accumulate_gradients).parameters
    seen = []
    inner = loss.inner.accumulate_gradients
    monkeypatch.setattr(loss.inner, 'accumulate_gradients', lambda **kw: seen.append(kw) or inner(**kw))
    c = torch.eye(2).repeat(2, 1)
    loss.accumulate_gradients('Dmain', torch.rand(4, 3, 32, 32) * 2 - 1, c, torch.randn(4, H.z_dim), c, True, 1.0,
                              cur_nimg=500)
    assert seen[0]['cur_nimg'] == 500 and seen[0]['sync'] is True
    assert loss.inner.blur_sigma(500) == pytest.approx(5.0)
    with pytest.raises(ValueError, match='needs the training progress'):
        loss.accumulate_gradients('Dmain', torch.rand(4, 3, 32, 32) * 2 - 1, c, torch.randn(4, H.z_dim), c, True, 1.0)
