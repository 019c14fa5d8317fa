"""Hyper-modulation on the stylegan3 repo's generators, from sources laid out as a user's runs:
its StyleGAN2 (``--cfg stylegan2`` there) trains into a class-conditional generator, called with
that repo's ``update_emas`` convention through the hyper mapping; an alias-free source is a
one-line error saying why."""
import pytest
import torch

from plugin import load_network_pkl, save_network_pkl
from plugin.domains import write_domains_zip
from plugin.hosts.embedded import networks_stylegan2 as sg2
from plugin.layouts import takes_update_emas
from training_ext.hypermod.pipeline import HypermodError, HypermodPipeline
from tests.helpers import make_sg3_source, small_sg3_D

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('hyper_sg3')
    for run in ('00000-sg2-repo', '00001-sg3t'):
        (tmp / run).mkdir()
    torch.manual_seed(0)
    G = sg2.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                      mapping_kwargs=dict(num_layers=2), channel_base=128, channel_max=16)
    sg2_source = tmp / '00000-sg2-repo' / 'network-snapshot-000040.pkl'
    save_network_pkl(dict(training_set_kwargs=None, G=G, D=small_sg3_D(0), G_ema=G), sg2_source)
    return dict(tmp=tmp, sg2=str(sg2_source),
                sg3=make_sg3_source(tmp / '00001-sg3t' / 'network-snapshot-000040.pkl'),
                labelled=write_domains_zip(tmp / 'dr16.zip', ['discs', 'rings'], count=16, resolution=16))


def run(world, source, name, **over):
    flags = dict(data=world['labelled'], cond=True, outdir=str(world['tmp']), batch=8, hyper_rank=4, kimg=0.05,
                 tick=0.05, snap=1, seed=0, device='cpu')
    flags.update(over)
    pipe = HypermodPipeline(flags, str(world['tmp'] / name), source, log=lambda *a: None)
    return pipe, pipe.run()


def test_the_stylegan3_repos_stylegan2_trains_into_a_conditional_generator(world):
    pipe, final = run(world, world['sg2'], 'sg2')
    H = load_network_pkl(final)['G_ema']
    assert takes_update_emas(H.mapping), 'the hyper mapping must follow the source mapping\'s convention'
    start = load_network_pkl(pipe.state['stages']['stage2-init']['output'])['G_ema']
    changed = [n for n, p in H.named_parameters() if not torch.equal(p, dict(start.named_parameters())[n])]
    assert changed, 'the conditional stage did not train'
    z = torch.randn([4, H.z_dim])
    with torch.no_grad():
        a, b = (H(z, torch.eye(2)[[k] * 4], noise_mode='const') for k in (0, 1))
    assert a.shape == (4, 3, 16, 16) and torch.isfinite(a).all() and not torch.equal(a, b)


def test_an_alias_free_source_is_a_one_line_error(world):
    with pytest.raises(HypermodError, match='alias-free .*StyleGAN2 synthesis layers only'):
        run(world, world['sg3'], 'sg3')
