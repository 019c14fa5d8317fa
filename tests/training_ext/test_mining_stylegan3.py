"""MineGAN / MineGAN++ on stylegan3-t sources (the stylegan3 repo's alias-free G and its
StyleGAN2 D) laid out as a user's runs: the miner in front of the alias-free mapping (which
takes ``update_emas``), one and two sources (the selector), the miner-only stage leaves the
synthesis (weights and ``magnitude_ema``) bit-identical, the result reloads and generates,
and --sparse selects channels of the alias-free layers."""
import pytest
import torch

from plugin import load_network_pkl
from plugin.domains import write_domains_zip
from plugin.hosts.embedded.loss import StyleGAN2Loss
from training_ext.mining.miner import MinedGenerator, mined_from_sources
from tests.helpers import make_sg3_source, run_mining

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('mine_sg3')
    paths = []
    for i, name in enumerate(('rings', 'discs')):
        (tmp / f'0000{i}-{name}').mkdir()
        paths.append(make_sg3_source(tmp / f'0000{i}-{name}' / 'network-snapshot-000040.pkl', seed=40 + i))
    return dict(tmp=tmp, target=write_domains_zip(tmp / 'target16.zip', ['discs'], count=16, resolution=16),
                a=paths[0], b=paths[1])


def run(world, name, **over):
    return run_mining(world, name, **{'mine_kimg': 0.032, 'kimg': 0.032, **over})


def synthesis_state(G):
    return {n: t.clone() for n, t in G.state_dict().items() if n.startswith('synthesis.')}


def test_the_miner_wraps_the_alias_free_mapping_as_the_loss_calls_it(world):
    """The loss calls the mapping the stylegan3 repo's way (update_emas, and update_emas=False
    for style mixing): the mined mapping passes it through, so w_avg moves only on
    update_emas=True, and the mined G's output is the source's at the identity miner."""
    G = load_network_pkl(world['a'])['G_ema']
    for sources in ([G], [G, load_network_pkl(world['b'])['G_ema']]):
        M = mined_from_sources(sources).train()
        loss = StyleGAN2Loss('cpu', M.mapping, M.synthesis, None, style_mixing_prob=1.0)
        assert loss.update_emas, 'the loss does not see the stylegan3 convention through the miner'
        w_avg = [m.w_avg.clone() for m in M.mapping.mappings]
        ema = synthesis_state(M)
        z, c = torch.randn(8, 16), torch.zeros(8, 0)
        loss.run_G(z, c, update_emas=False)
        assert all(torch.equal(a, m.w_avg) for a, m in zip(w_avg, M.mapping.mappings))
        assert all(torch.equal(t, M.state_dict()[n]) for n, t in ema.items())
        loss.run_G(z, c, update_emas=True)
        assert any(not torch.equal(a, m.w_avg) for a, m in zip(w_avg, M.mapping.mappings)), 'w_avg did not move'
    M = mined_from_sources([G]).eval()
    z = torch.randn(3, 16)
    with torch.no_grad():
        torch.testing.assert_close(M(z, None, noise_mode='const'), G.eval()(z, None, noise_mode='const'))


def test_one_source_mining_keeps_the_synthesis_then_fine_tunes_it(world):
    pipe, final, _ = run(world, 'one')
    init = load_network_pkl(pipe.path('stage0-init', 'init.pkl'))['G']
    mined = load_network_pkl(pipe.state['stages']['stage1-mine']['output'])['G']
    a, b = synthesis_state(init), synthesis_state(mined)
    assert any(n.endswith('magnitude_ema') for n in a)
    changed = [n for n in a if not torch.equal(a[n], b[n])]
    assert not changed, f'the miner-only stage changed the synthesis: {changed[:4]}'
    assert any(not torch.equal(p, q) for (n, p), (_, q) in zip(init.named_parameters(), mined.named_parameters())
               if 'miners' in n), 'the miner did not train'
    data = load_network_pkl(final)
    assert any(not torch.equal(a[n], t) for n, t in synthesis_state(data['G']).items() if 'weight' in n), \
        'stage 2 did not train the synthesis'
    G = data['G_ema'].eval()
    assert isinstance(G, MinedGenerator) and hasattr(G.synthesis.syntheses[0], 'input')
    img = G(torch.randn(3, G.z_dim), None, noise_mode='const')
    assert img.shape == (3, 3, 16, 16) and torch.isfinite(img).all()


def test_two_sources_train_the_selector_and_reload(world):
    pipe, final, _ = run(world, 'two', mine=[world['a'], world['b']])
    init = load_network_pkl(pipe.path('stage0-init', 'init.pkl'))['G']
    mined = load_network_pkl(pipe.state['stages']['stage1-mine']['output'])['G']
    a, b = synthesis_state(init), synthesis_state(mined)
    assert all(torch.equal(a[n], b[n]) for n in a), 'the miner-only stage changed a synthesis'
    assert not torch.equal(init.mapping.selector.net[2].weight, mined.mapping.selector.net[2].weight), \
        'the selector did not train'
    G = load_network_pkl(final)['G_ema'].eval()
    z = torch.randn(6, G.z_dim)
    with torch.no_grad():
        for j in range(2):
            img = G(z, None, select=j, noise_mode='const')
            assert img.shape == (6, 3, 16, 16) and torch.isfinite(img).all()
    assert (pipe.path('selector.txt'))


def test_sparse_selects_channels_of_the_alias_free_layers(world):
    pipe, final, logs = run(world, 'sparse', sparse=0.25)
    start = load_network_pkl(pipe.path('stage2-init', 'init.pkl'))['G']
    end = load_network_pkl(final)['G']
    masks = {n[len('gradmask__'):].replace('__', '.'): m for n, m in start.named_buffers() if 'gradmask__' in n}
    layers = {n.rsplit('.', 1)[0] for n in masks}
    assert layers and all('.L' in n for n in layers), sorted(layers)
    assert not any(getattr(start.synthesis.syntheses[0], n.split('.')[-1]).is_torgb for n in layers)
    changed_kept, p_start = 0, dict(start.named_parameters())
    for name, p_end in end.named_parameters():
        if name in masks:
            keep = masks[name].reshape(-1).bool()
            assert 0 < int(keep.sum()) < keep.numel()
            assert torch.equal(p_end[~keep], p_start[name][~keep]), f'{name}: a frozen channel changed'
            changed_kept += int(not torch.equal(p_end[keep], p_start[name][keep]))
        elif '.mappings.' in name or name.startswith('synthesis.'):
            assert torch.equal(p_end, p_start[name]), f'{name} is outside the subnetwork but changed'
    assert changed_kept > 0, 'no selected channel changed'
