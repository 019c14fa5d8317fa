"""MineGAN / MineGAN++: what each stage may and may not change, the selector, the result
pickle and the errors."""
import os

import pytest
import torch

from tests.helpers import REPO, make_source, run_mining, small_D_kwargs, small_G_kwargs
from plugin import load_network_pkl
from plugin.hosts.embedded.networks import Discriminator, Generator
from plugin.domains import write_domains_zip
from training_ext.mining.miner import MinedGenerator, mined_from_sources
from training_ext.mining.pipeline import MiningError, MiningPipeline
from training_ext.mining.sparse import select_channels

ASSETS = str(REPO / 'plugin' / 'assets' / 'sources')


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('mine')
    return dict(tmp=tmp, target=write_domains_zip(tmp / 'target16.zip', ['discs'], count=16, resolution=16),
                a=make_source(tmp / 'a.pkl', 0), b=make_source(tmp / 'b.pkl', 1))


def run(world, name, **over):
    return run_mining(world, name, **{'mine_kimg': 0.032, 'kimg': 0.032, **over})


def generator_tensors(G):
    return {n: t.clone() for n, t in G.state_dict().items() if '.mappings.' in n or n.startswith('synthesis.')}


def test_mining_stage_leaves_the_generator_bit_identical(world):
    pipe, final, _ = run(world, 'stage1')
    init = load_network_pkl(pipe.path('stage0-init', 'init.pkl'))['G']
    mined = load_network_pkl(pipe.state['stages']['stage1-mine']['output'])['G']
    a, b = generator_tensors(init), generator_tensors(mined)
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a if 'w_avg' not in n)
    assert any(not torch.equal(p, q) for (n, p), (_, q) in zip(init.named_parameters(), mined.named_parameters())
               if 'miners' in n), 'the miner did not train'
    after = load_network_pkl(final)['G']                       # stage 2 trains the generator too
    assert any(not torch.equal(a[n], t) for n, t in generator_tensors(after).items() if n in a and 'weight' in n)


def test_sparse_fine_tuning_changes_only_selected_channels(world):
    pipe, final, _ = run(world, 'sparse', sparse=0.25)
    start = load_network_pkl(pipe.path('stage2-init', 'init.pkl'))['G']
    end = load_network_pkl(final)['G']
    masks = {n[len('gradmask__'):].replace('__', '.'): m for n, m in start.named_buffers() if 'gradmask__' in n}
    assert masks, 'no channel masks'
    changed_kept = 0
    for name, p_end in end.named_parameters():
        p_start = dict(start.named_parameters())[name]
        if name in masks:
            keep = masks[name].reshape(-1).bool()
            assert 0 < int(keep.sum()) < keep.numel()
            assert torch.equal(p_end[~keep], p_start[~keep]), f'{name}: a frozen channel changed'
            changed_kept += int(not torch.equal(p_end[keep], p_start[keep]))
        elif '.mappings.' in name or name.startswith('synthesis.'):
            assert torch.equal(p_end, p_start), f'{name} is outside the subnetwork but changed'
    assert changed_kept > 0, 'no selected channel changed'


def test_result_pickle_samples_through_the_miner(world):
    _, final, _ = run(world, 'sample')
    G = load_network_pkl(final)['G_ema']
    assert isinstance(G, MinedGenerator)
    z = torch.randn(3, G.z_dim)
    img = G(z, None, noise_mode='const')
    assert img.shape == (3, 3, 16, 16) and torch.isfinite(img).all()
    with torch.no_grad():
        G.mapping.miners[0].fc2.weight.add_(1.0)
    assert not torch.allclose(G(z, None, noise_mode='const'), img), 'output does not depend on the miner'


def test_w_space_and_two_sources_pack_and_unpack(world):
    Ga = load_network_pkl(world['a'])['G_ema']
    Gb = load_network_pkl(world['b'])['G_ema']
    M = mined_from_sources([Ga, Gb], space='w').eval()
    z = torch.randn(4, Ga.z_dim)
    with torch.no_grad():
        mixed = M(z, None, noise_mode='const', select=torch.tensor([0, 1, 1, 0]))
        torch.testing.assert_close(mixed[[0, 3]], Ga(z[[0, 3]], None, noise_mode='const'), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(mixed[[1, 2]], Gb(z[[1, 2]], None, noise_mode='const'), rtol=1e-4, atol=1e-4)


def test_select_channels_keeps_the_top_fraction_per_layer():
    scores = {'synthesis.b4.conv1.weight': torch.tensor([1.0, 5.0, 3.0, 0.0]),
              'synthesis.b4.conv1.bias': torch.tensor([0.0, 0.0, 0.0, 9.0])}
    masks = select_channels(scores, 0.5)
    assert masks['synthesis.b4.conv1.weight'].tolist() == [0, 1, 0, 1]   # weight and bias share a score
    assert masks['synthesis.b4.conv1.bias'].tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match='--sparse'):
        select_channels(scores, 1.5)


def test_baselines_fine_tune_the_first_source(world):
    pipe, final, _ = run(world, 'freezed', mine=[world['a'], world['b']], baseline='freezed', freezed=2)
    assert set(pipe.state['stages']) == {'baseline-freezed'}
    data = load_network_pkl(final)
    assert type(data['G_ema']).__name__ == 'Generator'              # a plain host generator
    frozen = {n for n, _ in data['D'].named_buffers() if n.endswith('.weight')}
    assert frozen == {'b16.fromrgb.weight', 'b16.conv0.weight'}
    source_D = load_network_pkl(world['a'])['D'].state_dict()
    assert all(torch.equal(data['D'].state_dict()[n], source_D[n]) for n in frozen)


def test_errors(world, tmp_path):
    with pytest.raises(MiningError, match='fewer than the batch'):
        run(world, 'e1', batch=32)
    with pytest.raises(MiningError, match='does not exist'):
        run(world, 'e2', mine=[str(tmp_path / 'nope.pkl')])
    big = make_source(tmp_path / 'big.pkl', 3, img_resolution=32)
    with pytest.raises(MiningError, match='different resolutions'):
        run(world, 'e3', mine=[world['a'], big])
    with pytest.raises(MiningError, match='target images are 16px'):
        run(world, 'e4', mine=[big])


def test_selector_concentrates_on_the_matching_source(tmp_path):
    """Shipped sources: rings and discs; the target is discs. After a short mining stage the
    selector sends (nearly) every sample to the discs generator."""
    target = write_domains_zip(tmp_path / 'discs_target.zip', ['discs'], count=200, resolution=32, seed=7)
    flags = dict(mine=[os.path.join(ASSETS, 'rings.pkl'), os.path.join(ASSETS, 'discs.pkl')], data=target,
                 outdir=str(tmp_path), cfg='tiny', batch=16, mine_kimg=0.5, kimg=0.016, tick=0.25, snap=100, seed=0,
                 device='cpu')
    pipe = MiningPipeline(flags, str(tmp_path / 'pipe'), log=lambda *a: None)
    pipe.run()
    G = load_network_pkl(pipe.state['stages']['stage1-mine']['output'])['G_ema'].eval()
    with torch.no_grad():
        choice = G.mapping.select(torch.randn(1024, G.z_dim, generator=torch.Generator().manual_seed(0)))
    share = (choice == 1).float().mean().item()
    print(f'share of samples the selector sends to the discs source: {share:.3f}')
    assert share > 0.9
    assert (tmp_path / 'pipe' / 'selector.png').is_file()
    rows = (tmp_path / 'pipe' / 'selector.txt').read_text().splitlines()
    assert 'rings' in rows[0].split() and len(rows) > 2       # sources by label (source_labels)


def test_inspect_describes_a_mined_pickle(world):
    import json
    import subprocess
    import sys
    _, final, _ = run(world, 'inspect')
    r = subprocess.run([sys.executable, '-m', 'plugin', 'inspect', '--json', final], capture_output=True, text=True,
                       timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info['entries']['G_ema']['class_name'] == 'MinedGenerator'
    assert info['entries']['G_ema']['wraps_generators'] == 1
    assert info['entries']['training_state']['kimg'] > 0


def two_source_miner(world, train=True):
    Ga = load_network_pkl(world['a'])['G_ema']
    Gb = load_network_pkl(world['b'])['G_ema']
    M = mined_from_sources([Ga, Gb], space='z')
    return M.train(train), Ga, Gb


def test_style_mixing_latent_goes_through_the_first_latents_generator(world):
    """The host loss maps a second latent for style mixing; with several sources it must use
    the same generator as the first, or synthesis runs one generator on another's ws."""
    from plugin.hosts.embedded.loss import StyleGAN2Loss
    M, Ga, Gb = two_source_miner(world)
    loss = StyleGAN2Loss('cpu', M.mapping, M.synthesis, None, style_mixing_prob=1.0)
    torch.manual_seed(0)
    for _ in range(4):
        z, c = torch.randn(16, M.z_dim), torch.zeros(16, 0)
        img, ws = loss.run_G(z, c)
        index = ws[:, :, -1]
        assert (index == index[:, :1]).all(), 'a mixed sample combines two generators\' ws'
        assert 0 < index[:, 0].sum() < 16, 'the selector should pick both sources here'
        with torch.no_grad():
            for j, G in enumerate((Ga, Gb)):
                rows = (index[:, 0] == j).nonzero().squeeze(1)
                w = ws[rows, :, :G.w_dim].detach()
                torch.manual_seed(1)
                expect = G.synthesis(w, noise_mode='const')
                torch.manual_seed(1)
                torch.testing.assert_close(M.synthesis(ws[rows].detach(), noise_mode='const'), expect)
    # A second call with a different c object is a new draw, not a mixing call.
    z = torch.randn(64, M.z_dim)
    first = M.mapping(z, torch.zeros(64, 0))[:, 0, -1]
    second = M.mapping(z, torch.zeros(64, 0))[:, 0, -1]
    assert not torch.equal(first, second)


def test_synthesis_refuses_ws_that_mix_generators(world):
    M, _, _ = two_source_miner(world, train=False)
    z = torch.randn(2, M.z_dim)
    ws = torch.cat([M.mapping(z[:1], None, select=0), M.mapping(z[1:], None, select=1)])
    ws[0, 2:] = ws[1, 2:]
    with pytest.raises(ValueError, match='mix several source generators'):
        M.synthesis(ws)


def test_selector_samples_while_training_and_takes_the_argmax_at_test_time(world):
    M, _, _ = two_source_miner(world)
    with torch.no_grad():
        M.mapping.selector.net[2].bias.copy_(torch.tensor([0.0, 0.5]))     # p = 0.38 / 0.62 everywhere
    z = torch.randn(512, M.z_dim, generator=torch.Generator().manual_seed(0))
    sampled = M.mapping.select(z)
    assert 0.45 < sampled.float().mean() < 0.8, 'training draws from the selector\'s distribution'
    M.eval()
    assert torch.equal(M.mapping.select(z), torch.ones(512, dtype=torch.long)), 'test time takes the argmax'
    ws = M.mapping(z[:8], None)
    assert (ws[:, :, -1] == 1).all()


def test_latents_of_uninitialised_memory_do_not_stop_the_selection(world):
    """The hosts' loops run a module summary on torch.empty latents: a row that gives
    non-finite logits picks a generator (uniformly) instead of raising; other rows are untouched."""
    M, _, _ = two_source_miner(world)
    with torch.no_grad():
        M.mapping.selector.net[2].bias.copy_(torch.tensor([0.0, 5.0]))
    z = torch.randn(64, M.z_dim, generator=torch.Generator().manual_seed(0))
    z[::2, 0] = float('nan')
    z[1::4, 1] = float('inf')
    z[3::4, 1] = 1e38
    for training in (True, False):
        M.train(training)
        choice = M.mapping.select(z)
        assert choice.shape == (64,) and ((choice == 0) | (choice == 1)).all()
    finite = torch.isfinite(M.mapping.selector(z)).all(1)
    assert (M.mapping.select(z)[finite] == 1).all() and not finite.all()


def test_fisher_scores_rank_first_the_channels_that_can_change_Ds_verdict():
    """In the last block, conv1's output channels reach the image only through toRGB. With
    toRGB reading only channels S, no other channel of that layer can change D's verdict:
    their Fisher scores are zero, S's are positive, and the selection keeps exactly S."""
    from training_ext.mining.sparse import channel_scores
    torch.manual_seed(0)
    G = Generator(**small_G_kwargs(synthesis_kwargs=dict(channel_base=512, channel_max=32, architecture='skip')))
    D = Discriminator(**small_D_kwargs())
    M = mined_from_sources([G], train='sparse')
    rgb = M.synthesis.syntheses[0].b16.torgb.weight
    keep = torch.tensor([3, 11, 20, 29])
    with torch.no_grad():
        mask = torch.zeros(rgb.shape[1], dtype=torch.bool)
        mask[keep] = True
        rgb[:, ~mask] = 0
    layer = 'synthesis.syntheses.0.b16.conv1'
    scores = channel_scores(M.eval(), D.eval(), batches=2, batch_size=4)
    s = scores[f'{layer}.weight'] + scores[f'{layer}.bias']
    assert s.numel() == 32
    assert set(s.topk(len(keep)).indices.tolist()) == set(keep.tolist())
    assert (s[~mask] == 0).all() and (s[mask] > 0).all()
    masks = select_channels(scores, len(keep) / 32)
    assert masks[f'{layer}.weight'].nonzero().squeeze(1).tolist() == keep.tolist()


def test_one_source_mined_mapping_has_the_sources_w_avg_for_host_truncation(world):
    G = load_network_pkl(world['a'])['G_ema'].eval()
    M = mined_from_sources([G]).eval()
    torch.testing.assert_close(M.mapping.w_avg, G.mapping.w_avg)
    z = torch.randn(3, M.z_dim)
    with torch.no_grad():
        ws = M.mapping.w_avg.lerp(M.mapping(z, None), 0.0)          # host-style truncation, psi 0
        img = M.synthesis(ws, noise_mode='const')
    torch.testing.assert_close(img[0], img[2])
    assert not hasattr(mined_from_sources([G, load_network_pkl(world['b'])['G_ema']]).mapping, 'w_avg')


def test_sources_laid_out_as_a_users_runs(world, tmp_path):
    """Two sources that are both <run>/network-snapshot-000000.pkl, as the host writes them."""
    import shutil
    paths = []
    for run_dir, src in (('00000-discs', world['a']), ('00001-rings', world['b'])):
        (tmp_path / run_dir).mkdir()
        paths.append(str(tmp_path / run_dir / 'network-snapshot-000000.pkl'))
        shutil.copy(src, paths[-1])
    pipe, final, _ = run(world, 'user-runs', mine=paths, kimg=0.016)
    G = load_network_pkl(final)['G_ema']
    assert len(G.mapping.mappings) == 2
    header = (world['tmp'] / 'user-runs' / 'selector.txt').read_text().splitlines()[0].split()
    assert '00000-discs' in header and '00001-rings' in header
