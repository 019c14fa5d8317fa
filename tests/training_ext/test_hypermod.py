"""Hyper-modulation: the per-sample weight op, the hyper generator's start from the source,
low-rank vs full heads, self-initialisation, what training may change, the conditional D and
contrastive term, the result pickle, the command line and the errors."""
import json
import os
import subprocess
import sys

import pytest
import torch

from tests.helpers import REPO, make_source, run_dir
from tests.helpers.hypermod import class_images, frozen_state, g_steps, one_hot, steps_on_new_classes
from plugin import load_network_pkl
from plugin.hosts.embedded.layers import modulated_conv2d
from torch_utils_ext.ops.hypermod_weight import hypermod_weight
from plugin.domains import write_domains_zip
from training_ext.hypermod.cli import resolve_resume
from training_ext.hypermod.loss import barlow_twins, random_views
from training_ext.hypermod.networks import (HyperGenerator, HyperHead, discriminator_from_source, head_weights,
                                            hyper_from_source, hyper_layers, lowrank_from_full)
from training_ext.hypermod.pipeline import HypermodError, HypermodPipeline, self_init_error

ASSETS = REPO / 'plugin' / 'assets' / 'sources'


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def discs():
    return load_network_pkl(ASSETS / 'discs.pkl')


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('hyper')
    # The source as a user's run holds it: <run dir>/network-snapshot-NNNNNN.pkl.
    return dict(tmp=tmp, source=make_source(run_dir(tmp, '00000-tiny16-auto1') / 'network-snapshot-000040.pkl'),
                labelled=write_domains_zip(tmp / 'dr16.zip', ['discs', 'rings'], count=16, resolution=16),
                unlabelled=write_domains_zip(tmp / 'd16.zip', ['discs'], count=16, resolution=16))


def run_pipeline(world, name, **over):
    flags = dict(data=world['labelled'], cond=True, outdir=str(world['tmp']), cfg='tiny', batch=8, hyper_rank=4,
                 kimg=0.05, tick=0.05, snap=1, seed=0, device='cpu')
    source = over.pop('source', world['source'])
    flags.update(over)
    pipe = HypermodPipeline(flags, str(world['tmp'] / name), source, log=lambda *a: None)
    return pipe, pipe.run()


# -- the op and the networks ---------------------------------------------------------------------

def test_op_is_modulated_conv_of_the_class_weight():
    torch.manual_seed(0)
    base, styles = torch.randn(5, 4, 3, 3), torch.randn(2, 4)
    gamma, beta = torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    w = hypermod_weight(base, styles, gamma, beta, gain=0.5)
    x = torch.randn(1, 4, 6, 6)
    for n in range(2):
        wc = 0.5 * (gamma[n, :, :, None, None] * base + beta[n, :, :, None, None])
        expect = modulated_conv2d(x, wc, styles[n:n + 1], padding=1)
        got = torch.nn.functional.conv2d(x, w[n], padding=1)
        torch.testing.assert_close(got, expect, rtol=1e-5, atol=1e-5)
    assert torch.equal(hypermod_weight(base, styles, gamma, beta, impl='cuda'), hypermod_weight(base, styles, gamma,
                                                                                                  beta))
    left, right = torch.randn(2, 5, 2), torch.randn(4, 2)
    torch.testing.assert_close(hypermod_weight(base, styles, (gamma[0], left, right), beta),
                               hypermod_weight(base, styles, gamma[0] + left @ right.t(), beta))
    with pytest.raises(ValueError, match='impl'):
        hypermod_weight(base, styles, gamma, beta, impl='triton')
    with pytest.raises(ValueError, match='styles'):
        hypermod_weight(base, styles[:, :3], gamma, beta)


@pytest.mark.parametrize('rank', [0, 8])
def test_source_init_reproduces_the_source_for_every_class(discs, rank):
    G = discs['G_ema'].eval()
    H = hyper_from_source(G, 3, rank=rank).eval()
    z = torch.randn(16, G.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = G(z, None, noise_mode='const')
        diffs = [float((H(z, one_hot([k] * 16, 3), noise_mode='const') - ref).abs().max()) for k in range(3)]
    print(f'rank {rank}: max |hyper - source| per class at construction: {", ".join(f"{d:.1e}" for d in diffs)}')
    assert max(diffs) < 1e-4
    layer = dict(hyper_layers(H.synthesis.net))['b8.conv0']
    src = G.synthesis.b8.conv0.weight
    rebuilt = layer.weight_std[:, :, None, None] * layer.base_weight + layer.weight_mean[:, :, None, None]
    torch.testing.assert_close(rebuilt, src, rtol=0, atol=1e-5)
    assert layer.base_weight.mean(dim=[2, 3]).abs().max() < 1e-5                  # standardised per filter
    assert not any(n.endswith('base_weight') for n, _ in H.named_parameters())    # frozen: buffers


def test_low_rank_at_full_rank_equals_full_heads(discs):
    head = HyperHead(64, 6, 5, rank=0, init='reference')
    v = torch.randn(3, 64)
    low = lowrank_from_full(head)
    out = low(v)
    torch.testing.assert_close(out[0] + out[1] @ out[2].t(), head(v), rtol=1e-5, atol=1e-5)
    assert head_weights(64, 6, 5, 0) == sum(p.numel() for p in head.parameters())
    assert head_weights(64, 6, 5, 2) == sum(p.numel() for p in HyperHead(64, 6, 5, rank=2).parameters())

    G = discs['G_ema'].eval()
    full = hyper_from_source(G, 2, rank=0, init='reference').eval()      # random heads: a real test
    lowr = hyper_from_source(G, 2, rank=32, init='reference').eval()     # 32 = every layer's input channels
    with torch.no_grad():
        lowr.synthesis.task.load_state_dict(full.synthesis.task.state_dict())
        for (name, a), (_, b) in zip(hyper_layers(full.synthesis.net), hyper_layers(lowr.synthesis.net)):
            assert b.gamma.rank == a.in_channels, name
            b.load_state_dict(a.state_dict(), strict=False)             # buffers, affine, noise, dbias
            b.gamma.load_state_dict(lowrank_from_full(a.gamma).state_dict())
            b.beta.load_state_dict(lowrank_from_full(a.beta).state_dict())
        z, c = torch.randn(4, G.z_dim), one_hot([0, 1, 1, 0], 2)
        torch.testing.assert_close(lowr(z, c, noise_mode='const'), full(z, c, noise_mode='const'), rtol=1e-4,
                                   atol=1e-4)


def test_wrong_label_width_is_a_clear_error(discs):
    H = hyper_from_source(discs['G_ema'], 2, rank=4)
    D = discriminator_from_source(discs['D'], 2)
    z = torch.randn(2, H.z_dim)
    for c in (torch.zeros(2, 3), torch.zeros(2, 0), None):
        with pytest.raises(ValueError, match=r'one-hot of shape \[N, 2\]'):
            H(z, c)
    with pytest.raises(ValueError, match=r'one-hot of shape \[N, 2\]'):
        D(torch.zeros(4, 3, 32, 32), torch.zeros(4, 1))
    with pytest.raises(ValueError, match='labels have 3 classes'):
        HyperGenerator(generator=H._init_kwargs['generator'], num_classes=2, c_dim=3)
    assert (H.c_dim, H.z_dim, H.num_ws, H.img_resolution, H.img_channels) == (2, 64, 8, 32, 3)


def test_conditional_D_starts_as_the_source_D_and_the_contrastive_term_trains_it(discs):
    D = discriminator_from_source(discs['D'], 3, freeze_layers=1)
    img = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        ref = discs['D'](img, None)
        for k in range(3):
            torch.testing.assert_close(D(img, one_hot([k] * 8, 3)), ref, rtol=1e-5, atol=1e-5)
    assert 'net.b32.fromrgb.weight' in dict(D.named_buffers())                 # fromRGB frozen
    views = random_views(img.clamp(-1, 1))
    assert views.shape == img.shape and views.abs().max() <= 1 and not torch.equal(views, random_views(img))
    f = torch.randn(16, 8)
    assert barlow_twins(f, f, offdiag_weight=0) < 1e-3                      # identical views: diagonal 1
    assert barlow_twins(f, torch.randn(16, 8)) > 1
    loss = barlow_twins(D.features(random_views(img)), D.features(random_views(img)))
    loss.backward()
    assert D.net.b4.fc.weight.grad.abs().sum() > 0



def test_a_faster_head_starts_as_the_source_D_and_steps_faster(discs):
    """d_head_lr: the head's stored weights are rescaled by its gain, so every class still
    scores as the source D; one identical Adam step moves the scores lr_multiplier times as far."""
    img, c = torch.randn(8, 3, 32, 32), one_hot([0, 1, 2, 0, 1, 2, 0, 1], 3)
    with torch.no_grad():
        ref = discs['D'](img, None)
    moved = []
    for lr_mult in (1, 10):
        D = discriminator_from_source(discs['D'], 3, freeze_layers=1, head_lr_multiplier=lr_mult)
        with torch.no_grad():
            torch.testing.assert_close(D(img, c), ref, rtol=1e-5, atol=1e-5)
        opt = torch.optim.Adam(D.head.parameters(), lr=1e-3)
        D(img, c).sum().backward()
        opt.step()
        with torch.no_grad():
            moved.append(float((D(img, c) - ref).abs().mean()))
    assert moved[1] == pytest.approx(10 * moved[0], rel=0.05)


def test_d_head_lr_reaches_the_pipelines_discriminator(world):
    """The pipeline builds D's head with the config's d_head_lr (default 3, measured in
    BENCHMARKS.md), a given value as given; 0 is refused, not turned into the default."""
    from training_ext.hypermod.config import HypermodConfig
    default = HypermodConfig.default('d_head_lr')
    assert default == 3
    for name, over, expect in (('lr-default', {}, default), ('lr-given', dict(d_head_lr=5), 5)):
        pipe, _ = run_pipeline(world, name, kimg=0, **over)
        D = load_network_pkl(pipe.path('stage0-init', 'init.pkl'))['D']
        assert D.head.bias_gain == expect and D._init_kwargs['head_lr_multiplier'] == expect
    with pytest.raises(HypermodError, match="learning-rate multiplier of D's head must be > 0"):
        run_pipeline(world, 'lr-zero', kimg=0, d_head_lr=0)

# -- the pipeline ----------------------------------------------------------------------------------

def test_self_init_then_conditional_training(world):
    pipe, final = run_pipeline(world, 'source-init')
    selfinit = pipe.state['stages']['stage2-init']['self_init_error']
    source_G = load_network_pkl(world['source'])['G_ema']
    start = load_network_pkl(pipe.path('stage2-init', 'init.pkl'))['G']
    errors = self_init_error(start, source_G)
    print('source init (self-initialisation: the default 0 kimg): mean |hyper - source| per class',
          ', '.join(f'{e:.2e}' for e in errors))
    assert 'stage1-selfinit' not in pipe.state['stages']
    assert errors == pytest.approx(selfinit) and len(errors) == 2
    assert max(errors) < 1e-4 and errors[0] == errors[1]                  # class 0 copied to every class
    end = load_network_pkl(final)['G']
    a, b = frozen_state(start), frozen_state(end)
    assert any(n.endswith('base_weight') for n in a) and any('torgb' in n for n in a)
    assert a.keys() == b.keys() and [n for n in a if not torch.equal(a[n], b[n])] == []
    changed = [n for n, p in end.named_parameters() if n not in a and not torch.equal(p, start.state_dict()[n])]
    assert any('.gamma.' in n for n in changed), 'the heads did not train'


def test_reference_init_needs_and_gets_self_initialisation(world):
    pipe, _ = run_pipeline(world, 'reference-init', hyper_init='reference', self_init_kimg=0.4, kimg=0.008)
    source_G = load_network_pkl(world['source'])['G_ema']
    before = self_init_error(load_network_pkl(pipe.path('stage0-init', 'init.pkl'))['G'], source_G)[0]
    after = pipe.state['stages']['stage2-init']['self_init_error']
    print(f'reference init: mean |hyper - source| {before:.3g} before, {after[0]:.3g} after 0.4 kimg of '
          'self-initialisation')
    assert after[0] < before / 10 and after[0] == after[1]


def test_result_pickle_generates_per_class(world):
    _, final = run_pipeline(world, 'pickle', kimg=0.1)
    data = load_network_pkl(final)
    G = data['G_ema'].eval()
    assert type(G).__name__ == 'HyperGenerator' and G.c_dim == 2
    z = torch.randn(4, G.z_dim)
    with torch.no_grad():
        imgs = [G(z, one_hot([k] * 4, 2), noise_mode='const') for k in range(2)]
    assert imgs[0].shape == (4, 3, 16, 16) and all(torch.isfinite(i).all() for i in imgs)
    assert not torch.allclose(imgs[0], imgs[1]), 'the classes generate the same images'
    r = subprocess.run([sys.executable, '-m', 'plugin', 'generate', final, '--seeds', '0-2', '--class', '1',
                        '--outdir', world['tmp'] / 'gen'], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(list((world['tmp'] / 'gen').glob('seed*.png'))) == 3


def test_errors(world, tmp_path):
    with pytest.raises(HypermodError, match='is conditional'):
        run_pipeline(world, 'e1', source=str(ASSETS / 'discs-triangles.pkl'))
    with pytest.raises(HypermodError, match='no class labels'):
        run_pipeline(world, 'e2', data=world['unlabelled'])
    with pytest.raises(HypermodError, match='--cond 1'):
        run_pipeline(world, 'e3', cond=None)
    with pytest.raises(HypermodError, match='target images are 16px but the source generates 32px'):
        run_pipeline(world, 'e4', source=str(ASSETS / 'discs.pkl'))
    with pytest.raises(HypermodError, match='needs --resume'):
        resolve_resume(dict(resume=None))
    with pytest.raises(HypermodError, match='not a pipeline directory'):
        resolve_resume(dict(resume=str(tmp_path)))
    with pytest.raises(HypermodError, match='no such source'):
        resolve_resume(dict(resume=str(tmp_path / 'missing.pkl')))


def test_command_line_end_to_end_and_resume(world):
    out = world['tmp'] / 'cli'
    cmd = [sys.executable, 'train_cocktail.py', '--outdir', str(out), '--data', world['labelled'], '--cond', '1',
           '--resume', world['source'], '--hyper', '--hyper-rank', '4', '--self-init-kimg', '0.05', '--kimg', '1',
           '--batch', '8', '--cfg', 'tiny', '--tick', '0.5', '--snap', '10', '--device', 'cpu']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    (pipe_dir,) = out.iterdir()
    state = json.loads((pipe_dir / 'pipeline_state.json').read_text())
    assert set(state['stages']) == {'stage1-selfinit', 'stage2-init', 'stage2-cond'}
    assert 'Final pickle:' in r.stdout
    # Continuing the finished pipeline skips every stage; a pickle needs no --hyper-rank again.
    r = subprocess.run(cmd[:cmd.index('--resume')] + ['--resume', str(pipe_dir), '--hyper', '--kimg', '1',
                                                      '--batch', '8', '--cfg', 'tiny', '--device', 'cpu'],
                       cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'done before, skipping' in r.stdout
    r = subprocess.run(cmd[:cmd.index('--resume')] + ['--hyper'], cwd=REPO, capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 1 and r.stderr.startswith('error: --hyper needs --resume') and r.stderr.count('\n') == 1


def _contrastive_run(discs, weight, steps, seed=0, batch=8):
    """D trained ``steps`` Dmain steps through HypermodLoss (the training seam), from the same
    start and randomness whatever the weight; returns (D, its gradients after the first step)."""
    from training_ext.hypermod.loss import HypermodLoss
    torch.manual_seed(seed)
    H = hyper_from_source(discs['G_ema'], 2, rank=4).train()
    D = discriminator_from_source(discs['D'], 2, freeze_layers=1).train().requires_grad_(True)
    loss = HypermodLoss('cpu', H.mapping, H.synthesis, D, contrastive_weight=weight, r1_gamma=0)
    opt = torch.optim.Adam([p for p in D.parameters() if p.requires_grad], lr=0.002, betas=(0.0, 0.99))
    c = one_hot([0, 1] * (batch // 2), 2)
    first = None
    for step in range(steps):
        g = torch.Generator().manual_seed(100 + step)
        with torch.no_grad():
            real = discs["G_ema"](torch.randn(batch, 64, generator=g), None, noise_mode="const")
        torch.manual_seed(1000 + step)
        opt.zero_grad(set_to_none=True)
        loss.accumulate_gradients("Dmain", real, c, torch.randn(batch, 64, generator=g), c, True, 1.0)
        if first is None:
            first = {n: p.grad.clone() for n, p in D.named_parameters() if p.grad is not None}
        opt.step()
    return D, first


def _fixed_barlow(D, discs, batches=4):
    """The Barlow Twins loss of D's features on fixed images and views (mean of a few batches)."""
    total = 0.0
    for seed in range(batches):
        g = torch.Generator().manual_seed(7 + seed)
        with torch.no_grad():
            real = discs['G_ema'](torch.randn(32, 64, generator=g), None, noise_mode='const')
            torch.manual_seed(7 + seed)
            total += float(barlow_twins(D.features(random_views(real)), D.features(random_views(real))))
    return total / batches


def test_contrastive_term_reaches_D_through_the_training_seam_and_lowers_the_barlow_loss(discs):
    _, g0 = _contrastive_run(discs, 0.0, 1)
    _, g1 = _contrastive_run(discs, 1.0, 1)
    assert g0.keys() == g1.keys()
    assert any(not torch.allclose(g0[n], g1[n]) for n in g0), 'the contrastive term changed no gradient of D'
    start = _fixed_barlow(discriminator_from_source(discs['D'], 2, freeze_layers=1), discs)
    D0, _ = _contrastive_run(discs, 0.0, 10, batch=16)
    D1, _ = _contrastive_run(discs, 1.0, 10, batch=16)
    without, with_term = _fixed_barlow(D0, discs), _fixed_barlow(D1, discs)
    print(f'Barlow Twins loss on fixed views: start {start:.3f}, 10 steps without the term {without:.3f}, '
          f'with it {with_term:.3f}')          # measured: 23.4, 23.6, 18.5
    assert with_term < 0.9 * without and with_term < start


def test_w_avg_has_w_dim_entries_and_host_style_truncation_works(discs):
    """Host tools truncate packed ws toward mapping.w_avg (generate/visualiser code:
    ``w_avg.lerp(ws, psi)``, then ``G.synthesis(ws)``): w_avg must be [w_dim]."""
    H = hyper_from_source(discs['G_ema'], 3, rank=4).eval()
    assert H.mapping.w_avg.shape == (H.w_dim,) == (H.mapping.w_dim,)
    torch.testing.assert_close(H.mapping.w_avg[:H.mapping.style_dim], discs['G_ema'].mapping.w_avg)
    torch.testing.assert_close(H.mapping.w_avg[H.mapping.style_dim:], torch.full([3], 1 / 3))
    z, c = torch.randn(4, H.z_dim), one_hot([0, 1, 2, 0], 3)
    with torch.no_grad():
        ws = H.mapping(z, c)
        full = H.synthesis(H.mapping.w_avg.lerp(ws, 1.0), noise_mode='const')
        torch.testing.assert_close(full, H(z, c, noise_mode='const'))
        mean = H.synthesis(H.mapping.w_avg.lerp(ws, 0.0), noise_mode='const')
        torch.testing.assert_close(mean[0], mean[1])                       # psi 0: every sample the mean
        inner = H(z, c, truncation_psi=0.0, noise_mode='const')              # styles only: classes kept
        torch.testing.assert_close(inner[0], inner[3])
        assert torch.isfinite(inner).all()


def test_classes_start_as_the_source_and_separate_from_the_first_step(world):
    """Source-init heads ignore the class embedding at first (their v-weights are zero), so
    every class is the source; with one embedding shared by all classes a training step would
    change every class alike (classes identical after step 1). Kept distinct, one G step
    through HypermodLoss already makes the classes differ."""
    from training_ext.hypermod.loss import HypermodLoss
    pipe, start = run_pipeline(world, 'separate', kimg=0)
    assert max(pipe.state['stages']['stage2-init']['self_init_error']) < 1e-5
    data = load_network_pkl(start)
    G, D = data['G'].train().requires_grad_(True), data['D'].train().requires_grad_(True)   # as the loop does
    embed = G.synthesis.task.embed
    assert not torch.allclose(embed[0], embed[1]), 'the classes share one embedding'
    params = [p for p in G.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=0.0025, betas=(0.0, 0.99))
    loss = HypermodLoss('cpu', G.mapping, G.synthesis, D, contrastive_weight=0.0)
    torch.manual_seed(0)
    c = one_hot([0, 1] * 4, 2)
    loss.accumulate_gradients('Gmain', None, None, torch.randn(8, G.z_dim), c, True, 1.0)
    opt.step()
    z = torch.randn(4, G.z_dim)
    with torch.no_grad():
        a, b = (G.eval()(z, one_hot([k] * 4, 2), noise_mode='const') for k in (0, 1))
    print(f'mean |class 0 - class 1| after one step: {(a - b).abs().mean():.2e}')
    assert (a - b).abs().mean() > 1e-4


def test_r1_interval_reaches_the_conditional_stage(world):
    pipe, _ = run_pipeline(world, 'r1-lazy', kimg=0.016, r1_interval=16)
    options = json.loads(open(pipe.path('stage2-cond', 'training_options.json')).read())
    assert options['D_reg_interval'] == 16
    from training_ext.hypermod.config import HypermodConfig
    assert options['loss_kwargs']['mismatch_weight'] == HypermodConfig.default('mismatch_weight') > 0     # issue 17
    with pytest.raises(HypermodError, match='R1 interval'):
        run_pipeline(world, 'r1-zero', kimg=0.016, r1_interval=0)


@pytest.mark.parametrize('anchor', [None, 0])
def test_decorrelated_classes_learn_on_their_own_weights(discs, anchor):
    """Issue 17: with the heads' v-independent parts trainable and the task vectors of the
    classes correlated (cosine 0.35..0.70), steps for some classes moved every class, and the
    source's own class was lost. With frozen offsets and task vectors on disjoint coordinates
    (the defaults), Adam steps on classes 1 and 2 leave class 0 exactly as it was (the
    source), and they do change classes 1 and 2."""
    from training_ext.hypermod.config import HypermodConfig
    assert HypermodConfig.default('freeze_offsets') and HypermodConfig.default('decorrelate')
    torch.manual_seed(0)
    G = hyper_from_source(discs['G_ema'], 3, rank=4, freeze_offsets=True, decorrelate=True, anchor=anchor)
    G.synthesis.task.decorrelate_classes()
    v = G.synthesis.task(torch.eye(3)).detach()
    assert ((v[1] != 0) & (v[2] != 0)).sum() == 0 and ((v[0] != 0) & (v[1] != 0)).sum() == 0
    if anchor is not None:
        assert (v[0] == 0).all()
    D = discriminator_from_source(discs['D'], 3)
    G, z, ref, kept, moved = steps_on_new_classes(G, D, discs['G_ema'])
    print(f'anchor {anchor}: max |class 0 after - before| {kept:.1e}; mean |class k - source| for 1, 2: '
          + ', '.join(f'{m:.1e}' for m in moved))
    assert kept == 0
    assert min(moved) > 1e-4
    if anchor is not None:          # then class 0 stays the source whatever the batch holds
        G = g_steps(G, D, classes=[0, 1, 2])
        assert float((class_images(G, z, 0) - ref).abs().max()) < 1e-4


def test_shared_offsets_and_correlated_classes_leak(discs):
    """The mutant this guards: trainable offsets (the old default) move class 0 with steps on
    classes 1 and 2 only."""
    torch.manual_seed(0)
    G = hyper_from_source(discs['G_ema'], 3, rank=4)
    D = discriminator_from_source(discs['D'], 3)
    z = torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(1))
    before = class_images(G.eval(), z, 0)
    G = g_steps(G, D, classes=[1, 2])
    assert float((class_images(G, z, 0) - before).abs().max()) > 1e-3


def test_mismatch_term_teaches_d_the_classes(discs):
    """The matching-aware term scores real images under another class's label as fakes. With
    the real term (softplus(-D(real, c))) alone, D's class rows (identical at the start) have
    no reason to differ on real images; with the mismatch term D scores real images higher
    under their own label than under the other's (slowly: the rows learn at the head's
    equalised-lr rate)."""
    import torch.nn.functional as F
    from training_ext.hypermod.loss import mismatch_loss, wrong_labels
    c = one_hot([0, 1, 2, 0, 1, 2], 3)
    wrong = wrong_labels(c)
    assert (wrong.argmax(1) != c.argmax(1)).all() and torch.equal(wrong.sum(1), torch.ones(6))
    from plugin.domains import render
    real = torch.stack([torch.from_numpy(render(d, i)).permute(2, 0, 1).float() / 127.5 - 1
                        for d in ('discs', 'rings') for i in range(8)])
    c = one_hot([0] * 8 + [1] * 8, 2)
    gaps = []
    for weight in (0.0, 1.0):
        D = discriminator_from_source(discs['D'], 2).train().requires_grad_(True)
        opt = torch.optim.Adam(D.parameters(), lr=0.0025, betas=(0.0, 0.99))
        torch.manual_seed(0)
        for _ in range(10):
            opt.zero_grad(set_to_none=True)
            (F.softplus(-D(real, c)).mean() + weight * mismatch_loss(D, real, c)).backward()
            opt.step()
        with torch.no_grad():
            gaps.append(float((D(real, c) - D(real, 1 - c)).mean()))
    print(f'score gap own label - other label after 10 steps: without the term {gaps[0]:.4f}, with {gaps[1]:.4f}')
    assert gaps[1] > 2 * abs(gaps[0])          # measured: 0.0016 without, 0.0047 with


def test_anchor_class_stays_the_source_through_the_pipeline(world):
    """--hyper-anchor 0: after conditional training class 0 still generates exactly what the
    source does (its task vector is zero and the offsets are frozen); class 1 has moved."""
    _, final = run_pipeline(world, 'anchor', hyper_anchor=0, kimg=0.05)
    G = load_network_pkl(final)['G_ema'].eval()
    source = load_network_pkl(world['source'])['G_ema'].eval()
    z = torch.randn(8, G.z_dim, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = source(z, None, noise_mode='const')
        diffs = [float((G(z, one_hot([k] * 8, 2), noise_mode='const') - ref).abs().max()) for k in (0, 1)]
    print(f'anchor: max |class k - source| after 0.05 kimg: {diffs[0]:.1e}, {diffs[1]:.1e}')
    assert diffs[0] < 1e-4 and diffs[1] > 1e-3
    with pytest.raises(HypermodError, match='anchor class must be in 0..1'):
        run_pipeline(world, 'anchor-bad', hyper_anchor=2, kimg=0)


# -- which class is the source's own domain --------------------------------------------------------

@pytest.mark.parametrize('domains', [['rings', 'discs'], ['stripes', 'rings', 'discs'], ['discs', 'stripes', 'rings']])
def test_the_class_drawn_like_the_source_is_named_for_the_anchor(discs, tmp_path, domains):
    """The discs source: whichever label discs carry, the source D scores that class highest,
    and the advice names it for --hyper-anchor (a warning for another anchor)."""
    from plugin.hosts import active_host
    from training_ext.hypermod.source_domain import anchor_advice, class_scores
    path = write_domains_zip(tmp_path / 'labelled.zip', domains, count=48, resolution=32)
    ds = active_host().construct_class_by_name('training.dataset.ImageFolderDataset', path=str(path), use_labels=True)
    try:
        scores = class_scores(discs['D'], ds, num=48)
    finally:
        ds.close()
    k = domains.index('discs')
    print('source D scores', dict(zip(domains, scores)))
    assert max(range(len(domains)), key=scores.__getitem__) == k
    assert f'--hyper-anchor {k} keeps it exactly the source' in anchor_advice(scores, None)
    assert 'Warning' in anchor_advice(scores, (k + 1) % len(domains)) and 'Warning' not in anchor_advice(scores, k)


def test_the_pipeline_logs_the_anchor_advice_and_keeps_the_scores(world):
    logs = []
    flags = dict(data=world['labelled'], cond=True, cfg='tiny', batch=8, kimg=0, seed=0, device='cpu')
    pipe = HypermodPipeline(flags, str(world['tmp'] / 'advice'), world['source'], log=logs.append)
    pipe.run()
    scores = pipe.state['source_class_scores']
    assert len(scores) == 2 and all(isinstance(s, float) for s in scores)
    assert any(line.startswith("[stage0-init] the source D's mean score") and '--hyper-anchor' in line
               for line in logs), logs
    state = json.loads(open(pipe.path('pipeline_state.json')).read())
    assert state['source_class_scores'] == scores
