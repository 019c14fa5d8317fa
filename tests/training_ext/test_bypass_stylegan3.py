"""Mind2Mind bypass on a stylegan3 source laid out as a user's run: the latent bypass (w, wplus)
trains behind the alias-free synthesis, which the result keeps bit-identical (its Fourier
features, filters and magnitude EMAs included) and rebuilds as the stylegan3 repo's class; the
partial bypass (a split resolution) does not apply to an alias-free generator and says why."""
import pytest
import torch

from plugin import load_network_pkl
from plugin.domains import write_domains_zip
from plugin.hosts.embedded import networks_stylegan3 as sg3
from training_ext.bypass.pipeline import BypassError, BypassPipeline
from tests.helpers import make_sg3_source

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('bypass_sg3')
    (tmp / '00000-discs-sg3t').mkdir()
    return dict(tmp=tmp, target=str(write_domains_zip(tmp / 'rings16.zip', ['rings'], count=16, resolution=16)),
                source=make_sg3_source(tmp / '00000-discs-sg3t' / 'network-snapshot-000040.pkl', 0))


def run(world, name, **over):
    flags = dict(bypass='w', data=world['target'], outdir=str(world['tmp']), batch=8, encoder_kimg=0.032,
                 kimg=0.064, tick=0.032, snap=1, seed=0, device='cpu')
    flags.update(over)
    pipe = BypassPipeline(flags, str(world['tmp'] / name), world['source'], log=lambda *a: None)
    return pipe, pipe.run()


@pytest.mark.parametrize('mode', ['w', 'wplus'])
def test_latent_bypass_keeps_the_alias_free_synthesis(world, mode):
    _, final = run(world, f'run-{mode}', bypass=mode)
    src = load_network_pkl(world['source'])['G_ema']
    G = load_network_pkl(final)['G_ema']
    assert type(G.synthesis) is sg3.SynthesisNetwork
    a, b = src.synthesis.state_dict(), G.synthesis.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a), 'the frozen synthesis changed'
    with torch.no_grad():
        img = G(torch.randn([4, G.z_dim]), None)
        ws = G.mapping(torch.randn([4, G.z_dim]), None)
        assert torch.equal(G.synthesis(ws), src.synthesis(ws)), 'not the source synthesis'
    assert img.shape == (4, 3, 16, 16) and torch.isfinite(img).all()
    assert ws.shape[1] == src.num_ws


def test_partial_bypass_of_an_alias_free_source_is_one_line_error(world):
    with pytest.raises(BypassError, match='alias-free .* use --bypass w or wplus'):
        run(world, 'run-partial', bypass='8')
