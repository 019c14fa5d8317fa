"""The embedded training loop end to end on CPU: outputs, resume, multi-process, errors."""
import json
import os
import subprocess
import sys

import pytest
import torch

from tests.helpers import REPO
from plugin import launch, load_network_pkl, run_options
from plugin.hosts.embedded import EmbeddedHost
from plugin.hosts.embedded.training_loop import snapshot_name
from plugin.domains import write_domains_zip

TINY = dict(cfg='tiny', batch=8, aug='noaug', snap=1, workers=None, seed=0)


@pytest.fixture(scope='module')
def data16(tmp_path_factory):
    return write_domains_zip(tmp_path_factory.mktemp('data') / 'discs16.zip', ['discs'], count=32, resolution=16)


def train(outdir, data, kimg, loss_kwargs=None, **flags):
    """Build the run like train_cocktail.py does, with a fractional kimg for speed."""
    desc, args = run_options.build(dict(TINY, data=str(data), **flags))
    args.loss_kwargs.update(loss_kwargs or {})
    args.total_kimg = kimg
    args.kimg_per_tick = kimg / 2
    args.run_dir = launch.next_run_dir(str(outdir), desc)
    snapshot = launch.launch(args)
    return args, snapshot


def cli(*argv, env=None):
    return subprocess.run([sys.executable, 'train_cocktail.py', *map(str, argv)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1', **(env or {})))


def test_cli_run_leaves_host_style_outputs(tmp_path, data16):
    r = cli('--outdir', tmp_path, '--data', data16, '--cfg', 'tiny', '--kimg', 1, '--batch', 16, '--tick', 0.5,
            '--snap', 1, '--aug', 'ada', '--workers', 1)
    assert r.returncode == 0, r.stderr[-2000:]
    run_dir = tmp_path / '00000-discs16-tiny1-kimg1-batch16-ada'
    names = set(os.listdir(run_dir))
    assert {'training_options.json', 'log.txt', 'stats.jsonl', 'reals.png', 'fakes_init.png', 'fakes000000.png',
            'fakes000001.png', 'network-snapshot-000000.pkl',
            'network-snapshot-000001.pkl'} <= names
    options = json.loads((run_dir / 'training_options.json').read_text())
    assert options['G_kwargs']['class_name'] == 'training.networks.Generator' and options['total_kimg'] == 1
    assert 'tick 2' in (run_dir / 'log.txt').read_text() and 'sec/kimg' in r.stdout
    stats = [json.loads(line) for line in (run_dir / 'stats.jsonl').read_text().splitlines()]
    assert stats[-1]['Progress/kimg'] >= 1.0 and 'Loss/G/loss' in stats[-1]
    data = load_network_pkl(run_dir / 'network-snapshot-000001.pkl')
    img = data['G_ema'](torch.randn(3, data['G_ema'].z_dim), None)
    assert img.shape == (3, 3, 16, 16) and torch.isfinite(img).all()
    assert data['training_state']['cur_nimg'] == 1008 and 'p' in dict(data['augment_pipe'].named_buffers())


def test_resume_continues_counters_and_optimizer(tmp_path, data16):
    args, first = train(tmp_path, data16, kimg=0.064)
    state = load_network_pkl(first)['training_state']
    assert state['cur_nimg'] == 64 and state['batch_idx'] == 8
    # Continue to 0.128 kimg from the snapshot: counters and Adam moments come back.
    desc, args2 = run_options.build(dict(TINY, data=str(data16), resume=first))
    args2.total_kimg, args2.kimg_per_tick = 0.128, 0.032
    args2.run_dir = launch.next_run_dir(str(tmp_path), desc)
    from plugin.hosts.embedded.training_loop import TrainingRun
    from plugin.easydict import EasyDict
    from plugin.hosts.embedded.training_loop import DEFAULTS
    run = TrainingRun(EasyDict({**DEFAULTS, **args2}), EmbeddedHost())
    run.setup_torch(), run.build_data(), run.build_networks(), run.build_augment(), run.build_phases(), run.resume()
    assert run.cur_nimg == 64 and run.batch_idx == 8 and run.cur_tick == state['cur_tick']
    g_opt = run.optimizers['G'].state_dict()
    saved = state['optimizers']['G']
    assert g_opt['state'].keys() == saved['state'].keys()
    assert all(torch.equal(g_opt['state'][k]['exp_avg'], saved['state'][k]['exp_avg']) for k in saved['state'])
    final = launch.launch(args2)
    assert os.path.basename(final) == snapshot_name(128)
    assert load_network_pkl(final)['training_state']['cur_nimg'] == 128


def test_resume_then_continue_equals_uninterrupted(tmp_path, data16):
    """Killing after a snapshot and resuming gives the run that was never stopped."""
    _, straight = train(tmp_path / 'a', data16, kimg=0.064)
    _, half = train(tmp_path / 'b', data16, kimg=0.032)
    desc, args = run_options.build(dict(TINY, data=str(data16), resume=half))
    args.total_kimg, args.kimg_per_tick = 0.064, 0.032
    args.run_dir = launch.next_run_dir(str(tmp_path / 'b'), desc)
    resumed = launch.launch(args)
    a, b = load_network_pkl(straight), load_network_pkl(resumed)
    for key in ('G', 'D', 'G_ema'):
        for (n, x), (_, y) in zip(a[key].named_parameters(), b[key].named_parameters()):
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5, msg=f'{key}.{n}')


def test_two_processes_equal_one_with_the_same_total_batch(tmp_path, data16):
    # The path-length mean is a per-process running average (as in the host): leave it out.
    common = dict(batch=8, loss_kwargs=dict(pl_weight=0))
    _, one = train(tmp_path / 'one', data16, kimg=0.08, batch_gpu=4, **common)   # 1 process, 2 rounds of 4
    _, two = train(tmp_path / 'two', data16, kimg=0.08, gpus=2, **common)        # 2 processes x 1 round of 4
    a, b = load_network_pkl(one), load_network_pkl(two)
    moved = 0
    for key in ('G', 'D'):
        for (n, x), (_, y) in zip(a[key].named_parameters(), b[key].named_parameters()):
            torch.testing.assert_close(x, y, rtol=1e-3, atol=1e-4, msg=f'{key}.{n}')
    from plugin.hosts.embedded.distributed import seed_for
    from plugin.hosts.embedded.networks import Generator
    torch.manual_seed(seed_for(0, 0))                  # the loop's initialisation on rank 0
    start = Generator(**a['G']._init_kwargs)
    for (n, x), (_, y) in zip(a['G'].named_parameters(), start.named_parameters()):
        moved += int(not torch.equal(x, y))
    assert moved > 0, 'training did not change G at all'


@pytest.mark.parametrize('make_args,match', [
    (lambda tmp, data: ['--data', tmp / 'nope.zip'], 'no such file'),
    (lambda tmp, data: ['--data', (tmp / 'empty').mkdir() or tmp / 'empty'], 'no image files'),
    (lambda tmp, data: ['--data', data, '--gpus', 3], 'power of two'),
    (lambda tmp, data: ['--data', data, '--aug', 'noaug', '--p', 0.2], '--p can only'),
    (lambda tmp, data: ['--data', data, '--resume', tmp / 'missing.pkl'], 'no such file'),
])
def test_bad_flags_give_one_error_line(tmp_path, data16, make_args, match):
    r = cli('--outdir', tmp_path / 'runs', '--cfg', 'tiny', *make_args(tmp_path, data16))
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and match in lines[0], r.stderr
    assert not (tmp_path / 'runs').exists() or not any((tmp_path / 'runs').iterdir())


def test_odd_resolution_dataset_is_rejected(tmp_path):
    import numpy as np
    from PIL import Image
    d = tmp_path / 'odd'
    d.mkdir()
    Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(d / 'a.png')
    r = cli('--outdir', tmp_path / 'runs', '--data', d, '--cfg', 'tiny')
    assert r.returncode == 1 and 'power of two' in r.stderr and r.stderr.count('\n') == 1


def test_resume_from_another_architecture_is_a_clear_error(tmp_path, data16, fixtures_dir):
    r = cli('--outdir', tmp_path / 'runs', '--data', data16, '--cfg', 'tiny', '--kimg', 1,
            '--resume', fixtures_dir / 'cond32' / 'network-snapshot.pkl')
    assert r.returncode == 1, r.stderr[-1000:]
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and 'another architecture' in lines[0], r.stderr[-1000:]


def test_an_unconditional_pickle_resumes_into_a_conditional_run(tmp_path):
    """--cond 1 --resume uncond.pkl: the host's copy fails on the widened mapping layer; here
    the networks are widened first, so every class starts as the source."""
    from plugin.easydict import EasyDict
    from plugin.hosts.embedded.training_loop import DEFAULTS, TrainingRun
    source = str(REPO / 'plugin' / 'assets' / 'sources' / 'discs.pkl')
    data = write_domains_zip(tmp_path / 'dt.zip', ['discs', 'triangles'], count=16, resolution=32)
    _, args = run_options.build(dict(data=str(data), cond=True, cfg='tiny', batch=8, resume=source, device='cpu'))
    args.run_dir = str(tmp_path / 'run')
    run = TrainingRun(EasyDict({**DEFAULTS, **args}), EmbeddedHost())
    run.setup()
    src = load_network_pkl(source)['G_ema'].eval()
    z = torch.randn([4, src.z_dim])
    for k in range(2):
        c = torch.zeros([4, 2])
        c[:, k] = 1
        out = run.G_ema.eval()(z, c, noise_mode='const')
        assert torch.allclose(out, src(z, None, noise_mode='const'), atol=1e-4)
    img = src(z, None, noise_mode='const')
    D_src = load_network_pkl(source)['D'].eval()
    assert torch.allclose(run.D.eval()(img, c), D_src(img, None), atol=1e-4)


@pytest.mark.parametrize('cfg', [None, 'resume'])
def test_cfg_resume_builds_the_networks_of_a_non_auto_pickle(tmp_path, cfg, capsys):
    """The shipped sources are not at the auto config (64-dim z, 32 channels): --cfg resume, and
    auto with a --resume pickle (said in the log), build G and D from the pickle's own kwargs;
    --cond 1 widens them as for any resume, so every class starts as the source."""
    from plugin.easydict import EasyDict
    from plugin.hosts.embedded.training_loop import DEFAULTS, TrainingRun
    from plugin.persistence import constructor_kwargs
    source = str(REPO / 'plugin' / 'assets' / 'sources' / 'rings.pkl')
    data = write_domains_zip(tmp_path / 'rt.zip', ['rings', 'triangles'], count=16, resolution=32)
    flags = dict(data=str(data), cond=True, batch=8, resume=source, device='cpu')
    desc, args = run_options.build(dict(flags, cfg=cfg) if cfg else flags)
    assert '-resume' in desc
    if cfg is None:
        assert 'G and D are built from the pickle' in capsys.readouterr().out
    src = load_network_pkl(source)
    G_kw = {k: v for k, v in constructor_kwargs(src['G_ema']).items() if k not in ('c_dim', 'img_resolution',
                                                                                   'img_channels')}
    assert args.G_kwargs == G_kw and args.D_kwargs.channel_base == 1024 and args.loss_kwargs.r1_gamma > 0
    args.run_dir = str(tmp_path / 'run')
    run = TrainingRun(EasyDict({**DEFAULTS, **args}), EmbeddedHost())
    run.setup()
    G = src['G_ema'].eval()
    z = torch.randn([4, G.z_dim])
    for k in range(2):
        c = torch.nn.functional.one_hot(torch.full([4], k), 2).float()
        torch.testing.assert_close(run.G_ema.eval()(z, c, noise_mode='const'), G(z, None, noise_mode='const'),
                                   atol=1e-4, rtol=1e-4)


def test_cfg_resume_errors(tmp_path, data16):
    with pytest.raises(run_options.UserError, match='give --resume'):
        run_options.build(dict(TINY, data=str(data16), cfg='resume'))
    source = str(REPO / 'plugin' / 'assets' / 'sources' / 'rings.pkl')       # 32 px, the data 16 px
    with pytest.raises(run_options.UserError, match='32px'):
        run_options.build(dict(TINY, data=str(data16), cfg='resume', resume=source))
    _, args = run_options.build(dict(TINY, data=str(data16), resume=source, cfg='stylegan2'))   # an explicit
    assert args.G_kwargs.z_dim == 512                                                   # config keeps its networks
