"""Mind2Mind bypass: the split is exact, training never calls a frozen module, frozen weights
stay bit-identical, the latent cache is reused or rebuilt as it should, the result pickle
loads safely and generates, and bad input gets one-line errors."""
import os
import subprocess
import sys

import pytest
import torch

from tests.helpers import REPO, make_source, run_dir, small_D_kwargs, small_G_kwargs
from plugin import load_network_pkl
from plugin.hosts.embedded.networks import Discriminator, Generator
from training_ext.bypass import latent_cache
from training_ext.bypass.encoders import ImageEncoder
from training_ext.bypass.pipeline import BypassError, BypassPipeline
from training_ext.bypass.split import d_high, d_low, synthesis_high, synthesis_low
from plugin.domains import write_domains_zip


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('bypass')
    return dict(tmp=tmp, target=str(write_domains_zip(tmp / 'rings16.zip', ['rings'], count=24, resolution=16)),
                source=make_source(run_dir(tmp, '00000-src16-auto1') / 'network-snapshot-000040.pkl', 0))


def run(world, name, **over):
    flags = dict(bypass='w', data=world['target'], outdir=str(world['tmp']), batch=8, encoder_kimg=0.064,
                 kimg=0.2, tick=0.1, snap=1, seed=0, device='cpu')
    flags.update(over)
    pipe = BypassPipeline(flags, str(world['tmp'] / name), world['source'], log=lambda *a: None)
    return pipe, pipe.run()


def test_split_networks_compose_to_the_whole():
    torch.manual_seed(0)
    G, D = Generator(**small_G_kwargs()).eval(), Discriminator(**small_D_kwargs()).eval()
    ws = G.mapping(torch.randn([4, G.z_dim]), None)
    img = G.synthesis(ws, noise_mode='const')
    for res in (4, 8):
        h = synthesis_low(G.synthesis, ws, res, noise_mode='const')
        assert torch.allclose(synthesis_high(G.synthesis, h, ws, res, 3, True, noise_mode='const'), img, atol=1e-5)
        f = d_high(D, img, res)
        assert torch.allclose(d_low(D, f, None, torch.zeros([4, 0]), res), D(img, None), atol=1e-5)


@pytest.mark.parametrize('mode', ['w', 'wplus', 8])
def test_result_pickle_loads_safely_generates_and_keeps_frozen_weights(world, mode):
    pipe, final = run(world, f'run-{mode}', bypass=str(mode), kimg=0.1 if mode == 8 else 0.2)
    data = load_network_pkl(final)
    src = load_network_pkl(world['source'])['G_ema']
    G = data['G_ema']
    z = torch.randn([4, G.z_dim])
    img = G(z, torch.zeros([4, G.c_dim]), noise_mode="const")
    assert img.shape == (4, 3, 16, 16) and torch.isfinite(img).all()
    assert data['D'](img, torch.zeros([4, 0])).shape == (4, 1)
    before = src.synthesis.state_dict()
    if mode in ('w', 'wplus'):
        assert all(torch.equal(t, before[n]) for n, t in G.synthesis.state_dict().items()), 'synthesis changed'
        enc = torch.load(pipe.path('stage1-encoder', 'encoder.pt'), weights_only=True)
        assert all(torch.equal(t, enc[n]) for n, t in data['D'].encoder.state_dict().items()), 'encoder changed'
        psi = G(z, None, truncation_psi=0, noise_mode='const')          # host-style truncation works
        assert torch.allclose(psi[0], psi[1], atol=1e-5)
    else:
        high = {n: t for n, t in G.synthesis.state_dict().items() if n.startswith('b16.')}
        assert high and all(torch.equal(t, before[n]) for n, t in high.items()), 'frozen G blocks changed'
        low = [n for n in G.synthesis.state_dict() if n.startswith('b8.') and n.endswith('weight')]
        assert any(not torch.equal(G.synthesis.state_dict()[n], before[n]) for n in low), 'G did not train'
        # The mapping feeds the frozen upper blocks too: it stays the source's (w_avg included),
        # so the upper blocks see exactly the source's styles for every z.
        src_mapping = src.mapping.state_dict()
        assert all(torch.equal(t, src_mapping[n]) for n, t in G.mapping.state_dict().items()), 'mapping changed'
        torch.testing.assert_close(G.mapping(z, None), src.mapping(z, None), rtol=0, atol=0)
        D_src = load_network_pkl(world['source'])['D'].state_dict()
        D_high = {n[2:]: t for n, t in data['D'].state_dict().items() if n.startswith('D.b16.')}
        assert D_high and all(torch.equal(t, D_src[n]) for n, t in D_high.items()), 'frozen D blocks changed'
    # The run's outputs: images, curves, resumable state.
    for part in ('stage2-encode/reconstruction.png', 'stage3-gan/losses.png', 'stage3-gan/state.pt'):
        assert os.path.isfile(pipe.path(*part.split('/'))), part


@pytest.mark.parametrize('mode', ['w', 8])
def test_a_training_step_calls_no_frozen_module(world, mode):
    pipe = BypassPipeline(dict(bypass=str(mode), data=world['target'], batch=8, encoder_kimg=0, seed=0,
                               device='cpu'), str(world['tmp'] / f'hooks-{mode}'), world['source'],
                          log=lambda *a: None)
    pipe.load_inputs()
    encoder, encode, decode = pipe.encoder_stage()
    latents = pipe.encode_stage(encoder, encode, decode)
    trainer = pipe.build_trainer(latents)
    if mode == 'w':
        frozen = [pipe.result_G.synthesis, encoder, pipe.G_src]
        trained = [trainer.G, trainer.D]
    else:
        frozen = [getattr(pipe.result_G.synthesis, 'b16'), pipe.split_D.adapter, pipe.split_D.D.b16, pipe.G_src]
        trained = [pipe.result_G.synthesis.b8, pipe.split_D.D.b8]
    calls = {'frozen': 0, 'trained': 0}
    handles = [m.register_forward_hook(lambda *a, k=k: calls.__setitem__(k, calls[k] + 1))
               for k, mods in (('frozen', frozen), ('trained', trained)) for mod in mods for m in mod.modules()]
    trainer.iteration()
    for h in handles:
        h.remove()
    assert calls['frozen'] == 0 and calls['trained'] > 0, calls


def test_latent_cache_reused_when_valid_rebuilt_when_data_or_encoder_change(world, tmp_path):
    torch.manual_seed(0)
    D = Discriminator(**small_D_kwargs())
    from plugin.persistence import constructor_kwargs
    E = ImageEncoder(D_kwargs=constructor_kwargs(D), w_dim=16, num_ws=6).eval()
    torch.nn.init.normal_(E.out.weight)                     # a zero-initialised head encodes every image alike
    data = str(write_domains_zip(tmp_path / 'a.zip', ['discs'], count=8, resolution=16))
    cache = str(tmp_path / 'latents.pt')
    calls = []

    def encode(x):
        calls.append(len(x))
        return E(x)
    first, rebuilt = latent_cache.load_or_build(cache, E, encode, data, 'cpu', log=lambda *a: None)
    assert rebuilt and first.shape == (8, 16) and sum(calls) == 8
    again, rebuilt = latent_cache.load_or_build(cache, E, encode, data, 'cpu', log=lambda *a: None)
    assert not rebuilt and torch.equal(again, first) and sum(calls) == 8          # not re-encoded
    write_domains_zip(tmp_path / 'a.zip', ['discs'], count=8, resolution=16, seed=1)   # new contents, same name
    third, rebuilt = latent_cache.load_or_build(cache, E, encode, data, 'cpu', log=lambda *a: None)
    assert rebuilt and not torch.equal(third, first)
    with torch.no_grad():
        E.out.bias.add_(1)
    fourth, rebuilt = latent_cache.load_or_build(cache, E, encode, data, 'cpu', log=lambda *a: None)
    assert rebuilt and not torch.equal(fourth, third)
    _, rebuilt = latent_cache.load_or_build(cache, E, encode, data, 'cpu', xflip=True, log=lambda *a: None)
    assert rebuilt and sum(calls) == 8 * 3 + 16                       # flipped copies encoded too


def test_interrupted_gan_stage_continues_and_a_finished_pipeline_is_skipped(world):
    pipe, final = run(world, 'resume', kimg=0.1)
    state = torch.load(pipe.path('stage3-gan', 'state.pt'), weights_only=True)
    pipe2, final2 = run(world, 'resume', kimg=0.3)          # the same directory: stages 1-2 reused, kimg grows
    assert pipe2.state['stages']['stage1-encoder'] == pipe.state['stages']['stage1-encoder']
    assert final2 == final                                   # the GAN stage was done: skipped
    del pipe2.state['stages']['stage3-gan']                  # as if killed after the last snapshot
    pipe2._save_state()
    pipe3, final3 = run(world, 'resume', kimg=0.3)
    after = torch.load(pipe3.path('stage3-gan', 'state.pt'), weights_only=True)
    assert state['nimg'] < after['nimg'] and after['nimg'] >= 300 and os.path.isfile(final3)


def test_errors_are_one_line(world, tmp_path):
    cond = make_source(tmp_path / 'cond.pkl', 0, c_dim=2)
    big = str(write_domains_zip(tmp_path / 'big.zip', ['discs'], count=4, resolution=32))
    cases = [(dict(bypass='q'), world['source'], 'must be w, wplus or a resolution'),
             (dict(bypass='16'), world['source'], 'power of two from 4 to 8'),
             (dict(bypass='w'), cond, 'is conditional'),
             (dict(bypass='w', data=big), world['source'], 'are 32px'),
             (dict(bypass='w', data=None), world['source'], 'needs the target images')]
    for over, source, msg in cases:
        flags = dict(dict(data=world['target'], device='cpu'), **over)
        with pytest.raises(BypassError, match=msg):
            BypassPipeline(flags, str(tmp_path / 'p'), source, log=lambda *a: None).load_inputs()


def test_cli_runs_and_continues_from_the_pipeline_directory(world):
    out = world['tmp'] / 'cli'
    cmd = [sys.executable, str(REPO / 'train_cocktail.py'), '--outdir', str(out), '--data', world['target'],
           '--resume', world['source'], '--bypass', 'w', '--encoder-kimg', '0.032', '--kimg', '1', '--batch', '8',
           '--tick', '0.5', '--device', 'cpu']
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    run_dir = next(out.iterdir())
    assert 'Final pickle:' in r.stdout
    r2 = subprocess.run([sys.executable, str(REPO / 'train_cocktail.py'), '--outdir', str(out), '--resume',
                         str(run_dir)], capture_output=True, text=True, timeout=300)
    assert r2.returncode == 0 and 'done before' in r2.stdout, r2.stdout + r2.stderr
    bad = subprocess.run(cmd[:-6] + ['--bypass', 'x'], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and bad.stderr.strip().count('\n') == 0 and 'error:' in bad.stderr


@pytest.mark.parametrize('mode', ['w', 'wplus'])
def test_encoder_learns_held_out_latents_and_images(world, mode):
    """Stage 1 measures on latents it never trained on (another seed): both errors must drop
    (measured at 1 kimg: latent 1.01 -> 0.88 / 0.91, image 0.67 -> 0.34 / 0.32)."""
    pipe = BypassPipeline(dict(bypass=mode, data=world['target'], batch=8, encoder_kimg=1.0, seed=0, device='cpu'),
                          str(world['tmp'] / f'enc-{mode}'), world['source'], log=lambda *a: None)
    pipe.load_inputs()
    pipe.encoder_stage()
    stage = pipe.state['stages']['stage1-encoder']
    before, after = stage['before'], stage['after']
    assert after['latent_mse'] < 0.95 * before['latent_mse'], (before, after)
    assert after['image_mse'] < 0.7 * before['image_mse'], (before, after)


def test_latent_gan_moves_towards_the_target_latents():
    """The bypass GAN's trainer on target latents far from where the generator starts: the
    Frechet distance of G_ema's latents to the targets falls (measured 162 -> 18 in 100
    iterations)."""
    from training_ext.bypass.latent_gan import LatentGANTrainer
    from training_ext.bypass.networks import LatentCritic, LatentGenerator
    torch.manual_seed(0)
    shape = [2, 16]
    reals = (torch.randn(512, 4) @ torch.randn(4, 32) * 0.5 + torch.linspace(-2, 2, 32)).reshape(512, *shape)
    G = LatentGenerator(z_dim=32, latent_shape=shape, hidden=(64, 64))
    D = LatentCritic(latent_shape=shape, hidden=(64, 64))
    trainer = LatentGANTrainer(G, D, G.parameters(), D.parameters(), reals, 32, 'cpu', loss='wgangp', batch=32,
                               ema_kimg=0.1, seed=0)
    start = trainer.latent_fd(n=256)
    for _ in range(100):
        trainer.iteration()
    end = trainer.latent_fd(n=256)
    assert end < 0.25 * start, (start, end)
