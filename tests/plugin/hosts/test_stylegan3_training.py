"""Training the stylegan3 repo's generators in the embedded loop, on CPU.

Fresh networks of ``--cfg stylegan3-t|stylegan3-r|sg3-stylegan2`` (tiny ``--cbase/--cmax``,
16 px) and the stylegan3 fixtures resumed with ``--cfg resume`` (``../shared``; skipped
without it) train a few steps: G changes, the running means (``w_avg``, ``magnitude_ema``)
move only in the generator pass of phase Dmain (``update_emas=True``, as the stylegan3 repo's
loss), the -r blur follows its schedule, snapshots reload, and the stylegan3 train.py's flags
reach the networks key for key.
"""
import json

import pytest
import torch

from plugin import launch, load_network_pkl, run_options
from plugin.domains import write_domains_zip
from plugin.easydict import EasyDict
from plugin.errors import UserError
from plugin.hosts.embedded import EmbeddedHost
from plugin.hosts.embedded.loss import StyleGAN2Loss, blur
from plugin.hosts.embedded.training_loop import DEFAULTS, TrainingRun
from plugin.persistence import constructor_kwargs
from tests.helpers import PKG_RESOURCES_STAND_IN, SG3_HOST

pytestmark = pytest.mark.usefixtures('one_thread')

BASE = dict(batch=4, aug='noaug', snap=1, workers=None, seed=0)
TINY_SG3 = dict(BASE, gamma=1, cbase=128, cmax=8, map_depth=1)       # fresh 16 px networks, seconds per step


@pytest.fixture(scope='module')
def data16(tmp_path_factory):
    return write_domains_zip(tmp_path_factory.mktemp('data') / 'discs16.zip', ['discs'], count=16, resolution=16)


@pytest.fixture(scope='module')
def data32(tmp_path_factory):
    """Three labelled classes at 32 px: the fixtures' resolution (r32cond has 3 classes, sg2cond32 2)."""
    d = tmp_path_factory.mktemp('data32')
    return {n: write_domains_zip(d / f'c{n}.zip', ['discs', 'rings', 'stripes'][:n], count=8, resolution=32)
            for n in (1, 2, 3)}


def make_run(flags, run_dir=None):
    """A TrainingRun set up as launch() would, without the image grids (fast)."""
    _, args = run_options.build(flags)
    run = TrainingRun(EasyDict({**DEFAULTS, **args, 'run_dir': str(run_dir or '.')}), EmbeddedHost())
    run.setup_torch(), run.build_data(), run.build_networks(), run.build_augment(), run.build_phases()
    run.resume(), run.start_data_iterator()
    return run


def running_means(G):
    return {n: b.clone() for n, b in G.named_buffers() if n.endswith(('w_avg', 'magnitude_ema'))}


def one_phase(run, phase, cur_nimg=0):
    """One accumulate_gradients of ``phase`` on one chunk, with the module's grads on as in the loop."""
    real, c = run.next_batch()
    z, gen_c = run._chunk_inputs(0, 0)
    module = run.G if phase.startswith('G') else run.D
    module.requires_grad_(True)
    run.loss.accumulate_gradients(phase=phase, real_img=real[0], real_c=c[0], gen_z=z, gen_c=gen_c, sync=True,
                                  gain=1, cur_nimg=cur_nimg)
    module.requires_grad_(False)
    return z, gen_c


# -- the flags reach the networks ------------------------------------------------------------------
@pytest.mark.parametrize('config,cfg,extra', [('t32', 'stylegan3-t', {}), ('r32cond', 'stylegan3-r', {}),
                                              ('sg2cond32', 'stylegan2', {})])
def test_stylegan3_flags_give_the_fixtures_train_py_kwargs(sg3_fixtures_dir, data32, monkeypatch, config, cfg,
                                                           extra):
    manifest = json.loads((sg3_fixtures_dir / config / 'manifest.json').read_text())
    theirs = manifest['train_py_kwargs']
    if cfg == 'stylegan2':
        # '--cfg stylegan2' is stylegan2-ada's config on the embedded host; the stylegan3 repo's
        # meaning is 'sg3-stylegan2' here (and 'stylegan2' on a stylegan3 checkout, tested below).
        cfg = 'sg3-stylegan2'
    _, args = run_options.build({**BASE, 'data': str(data32[1]), 'cfg': cfg, 'batch': 32, 'gamma': 1, 'cbase': 512,
                                 'cmax': 32, 'fp32': True, 'aug': 'ada', **extra})
    G_kwargs = json.loads(json.dumps(args.G_kwargs))
    assert (G_kwargs['z_dim'], G_kwargs['w_dim']) == (512, 512)      # train.py hard-codes 512 ...
    G_kwargs.update(z_dim=64, w_dim=64)                              # ... which the fixtures replaced
    assert list(G_kwargs.items()) == list(theirs['G_kwargs'].items())
    assert list(json.loads(json.dumps(args.D_kwargs)).items()) == list(theirs['D_kwargs'].items())
    assert dict(args.augment_kwargs) == theirs['augment_kwargs']


def test_map_depth_mbstd_group_and_learning_rates_reach_the_run(data16):
    _, args = run_options.build(dict(TINY_SG3, data=str(data16), cfg='stylegan3-t', map_depth=3, mbstd_group=2,
                                     glr=0.001, dlr=0.003, freezed=1))
    assert args.G_kwargs.mapping_kwargs.num_layers == 3 and args.D_kwargs.epilogue_kwargs.mbstd_group_size == 2
    assert (args.G_opt_kwargs.lr, args.D_opt_kwargs.lr) == (0.001, 0.003)
    assert args.D_kwargs.block_kwargs.freeze_layers == 1
    _, args = run_options.build(dict(BASE, data=str(data16), cfg='sg3-stylegan2', gamma=1))
    assert args.G_kwargs.mapping_kwargs.num_layers == 8 and args.G_opt_kwargs.lr == 0.002     # its defaults
    assert args.D_opt_kwargs.lr == 0.002 and args.D_kwargs.epilogue_kwargs.mbstd_group_size == 4


def test_each_config_sets_the_stylegan3_loss_options(data16):
    def opts(cfg, **over):
        return run_options.build(dict(BASE, data=str(data16), cfg=cfg, gamma=1, **over))[1]
    t = opts('stylegan3-t')
    assert (t.loss_kwargs.style_mixing_prob, t.loss_kwargs.pl_weight, t.G_reg_interval) == (0, 0, None)
    assert 'blur_init_sigma' not in t.loss_kwargs and t.ema_rampup == 0.05 and t.ema_kimg == 4 * 10 / 32
    r = opts('stylegan3-r')
    assert (r.loss_kwargs.blur_init_sigma, r.loss_kwargs.blur_fade_kimg) == (10, 4 * 200 / 32)
    assert (r.G_kwargs.conv_kernel, r.G_kwargs.use_radial_filters, r.G_kwargs.channel_base) == (1, True, 65536)
    s = opts('sg3-stylegan2')
    assert (s.loss_kwargs.style_mixing_prob, s.loss_kwargs.pl_weight, s.G_reg_interval) == (0.9, 2, 4)
    assert s.G_kwargs.fused_modconv_default == 'inference_only' and s.loss_kwargs.pl_no_weight_grad is True
    assert s.G_kwargs.class_name == 'training.networks_stylegan2.Generator'
    assert opts('stylegan2').G_kwargs.class_name == 'training.networks.Generator'      # stylegan2-ada's here


@pytest.mark.parametrize('flags,message', [
    (dict(cfg='paper256', cbase=512), '--cbase: a flag of the stylegan3'),
    (dict(cfg='auto', glr=0.001), '--glr: a flag of the stylegan3'),
    (dict(cfg='stylegan3-t', gamma=None), '--cfg stylegan3-t needs --gamma'),
    (dict(cfg='stylegan3-r', batch=None), '--cfg stylegan3-r needs --batch'),
    (dict(cfg='stylegan3-t', nhwc=True), '--nhwc: not with --cfg stylegan3-t'),
    (dict(cfg='sg3-stylegan2', allow_tf32=True), '--allow-tf32: not with --cfg sg3-stylegan2'),
    (dict(cfg='stylegan3-t', mbstd_group=8), 'cannot be smaller than --mbstd-group'),
    (dict(cfg='stylegan3-t', cbase=0), '--cbase must be at least 1'),
])
def test_a_flag_without_meaning_for_the_config_is_a_one_line_error(data16, flags, message):
    with pytest.raises(UserError, match=message) as e:
        run_options.build({**BASE, 'gamma': 1, 'data': str(data16), **flags})
    assert '\n' not in str(e.value)


@pytest.mark.parametrize('repo,cfg,outcome', [
    ('stylegan3', 'stylegan2', 'training.networks_stylegan2.Generator'),       # the stylegan3 train.py's meaning
    ('stylegan3', 'paper256', '--cfg paper256: a stylegan2-ada-pytorch config; a stylegan3 checkout trains'),
    ('stylegan3', 'tiny', '--cfg tiny: a stylegan2-ada-pytorch config'),
    ('stylegan2-ada', 'stylegan3-r', '--cfg stylegan3-r needs the stylegan3 repo\'s networks'),
])
def test_the_checkouts_repo_decides_what_a_cfg_means(data16, monkeypatch, repo, cfg, outcome):
    """A host stand-in that says which repo it is (as CheckoutHost does), with the embedded classes."""
    from plugin import hosts
    monkeypatch.setattr(hosts, '_active', type('RepoHost', (EmbeddedHost,), dict(repo=repo))())
    flags = {**BASE, 'gamma': 1, 'data': str(data16), 'cfg': cfg}
    if outcome.startswith('training.'):
        assert run_options.build(flags)[1].G_kwargs.class_name == outcome
    else:
        with pytest.raises(UserError, match=outcome.replace('(', r'\(')):
            run_options.build(flags)


def test_network_flags_with_a_resume_pickle_are_an_error(sg3_fixtures_dir, data32):
    pkl = str(sg3_fixtures_dir / 't32' / 'network-snapshot.pkl')
    with pytest.warns(UserWarning, match='inert data'):
        with pytest.raises(UserError, match='--cmax: G and D are built from the --resume pickle'):
            run_options.build(dict(BASE, data=str(data32[1]), cfg='resume', resume=pkl, cmax=64))
    with pytest.warns(UserWarning, match='inert data'):
        _, args = run_options.build(dict(BASE, data=str(data32[1]), cfg='resume', resume=pkl, glr=0.001))
    assert args.G_opt_kwargs.lr == 0.001 and args.G_reg_interval is None and args.loss_kwargs.pl_weight == 0
    with pytest.warns(UserWarning, match='inert data'):      # -r: as its train.py, no blur ramp-up on resume
        _, args = run_options.build(dict(BASE, data=str(data32[3]), cond=True, cfg='resume',
                                         resume=str(sg3_fixtures_dir / 'r32cond' / 'network-snapshot.pkl')))
    assert (args.loss_kwargs.blur_init_sigma, args.loss_kwargs.blur_fade_kimg) == (0, 4 * 200 / 32)
    assert args.ada_kimg == 100 and args.ema_rampup is None


# -- the loss calls each family the way its repo does ----------------------------------------------
@pytest.mark.parametrize('cfg', ['stylegan3-t', 'sg3-stylegan2'])
def test_running_means_move_only_in_the_generator_pass_of_Dmain(data16, cfg):
    run = make_run(dict(TINY_SG3, data=str(data16), cfg=cfg))
    means = running_means(run.G)
    assert 'mapping.w_avg' in means and (cfg != 'stylegan3-t' or len(means) == 1 + 15)
    for phase in ('Gmain', 'Greg', 'Gboth', 'Dreg'):
        one_phase(run, phase)
        assert all(torch.equal(b, means[n]) for n, b in running_means(run.G).items()), phase
    one_phase(run, 'Dmain')
    moved = running_means(run.G)
    assert all(not torch.equal(moved[n], means[n]) for n in means)


def test_the_style_mixing_mapping_call_moves_no_running_mean(data16):
    run = make_run(dict(TINY_SG3, data=str(data16), cfg='sg3-stylegan2'))
    run.loss.style_mixing_prob = 1
    mapping = run.G.mapping
    w0 = mapping.w_avg.clone()
    real, c = run.next_batch()
    z, gen_c = run._chunk_inputs(0, 0)
    with torch.no_grad():
        expected = mapping(z, gen_c)[:, 0].mean(0).lerp(w0, mapping.w_avg_beta)   # the first call's only
    run.D.requires_grad_(True)
    run.loss.accumulate_gradients(phase='Dmain', real_img=real[0], real_c=c[0], gen_z=z, gen_c=gen_c, sync=True,
                                  gain=1, cur_nimg=0)
    assert torch.allclose(mapping.w_avg, expected, atol=1e-6)


def test_stylegan2_ada_generators_keep_their_w_avg_rule(data16):
    """Unchanged: stylegan2-ada's mapping moves w_avg in any training-mode call (Gmain too),
    never in the style-mixing call (skip_w_avg_update)."""
    run = make_run(dict(BASE, data=str(data16), cfg='tiny'))
    assert not run.loss.update_emas
    run.loss.style_mixing_prob = 1
    mapping = run.G.mapping
    w0 = mapping.w_avg.clone()
    real, c = run.next_batch()
    z, gen_c = run._chunk_inputs(0, 0)
    with torch.no_grad():
        expected = mapping(z, gen_c, skip_w_avg_update=True)[:, 0].mean(0).lerp(w0, mapping.w_avg_beta)
    run.G.requires_grad_(True)
    run.loss.accumulate_gradients(phase='Gmain', real_img=real[0], real_c=c[0], gen_z=z, gen_c=gen_c, sync=True,
                                  gain=1)
    assert torch.allclose(mapping.w_avg, expected, atol=1e-6)


def test_the_stylegan3_r_blur_fades_and_the_loop_hands_the_loss_its_progress(data16):
    loss = StyleGAN2Loss('cpu', None, None, None, blur_init_sigma=10, blur_fade_kimg=25)
    assert [loss.blur_sigma(n) for n in (0, 12500, 25000, 40000)] == [10, 5, 0, 0]
    with pytest.raises(ValueError, match='cur_nimg'):
        loss.blur_sigma(None)
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(blur(x, 0), x) and blur(x, 2).shape == x.shape and blur(x, 2).std() < 0.5 * x.std()
    assert torch.allclose(blur(torch.ones(1, 1, 16, 16), 1)[..., 3:-3, 3:-3], torch.ones(1, 1, 10, 10))
    seen = []
    run = make_run(dict(TINY_SG3, data=str(data16), cfg='stylegan3-r', cbase=64, cmax=4))
    D = run.loss.D
    run.loss.D = lambda img, c: (seen.append(img), D(img, c))[1]
    run.cur_nimg = 4 * 200 / 32 * 1000 / 2                   # half way: sigma 5
    real, c = run.next_batch()
    run.next_batch = lambda: (real, c)
    run.train_step()
    assert any(torch.allclose(img, blur(real[0], 5)) for img in seen)     # D saw the blurred reals
    assert not any(torch.allclose(img, real[0]) for img in seen)


# -- whole runs --------------------------------------------------------------------------------
def test_a_fresh_stylegan3_t_run_trains_and_its_snapshot_reloads(tmp_path, data16):
    desc, args = run_options.build(dict(TINY_SG3, data=str(data16), cfg='stylegan3-t'))
    assert desc.startswith('stylegan3-t-discs16-gpus1-batch4-gamma1')
    args.total_kimg, args.kimg_per_tick = 0.008, 0.004
    args.run_dir = launch.next_run_dir(str(tmp_path), desc)
    snapshot = launch.launch(args)
    data = load_network_pkl(snapshot)
    G = data['G']
    assert type(G).__module__ == 'plugin.hosts.embedded.networks_stylegan3'
    kw = constructor_kwargs(G)
    assert (kw['channel_base'], kw['channel_max'], kw['mapping_kwargs']) == (128, 8, {'num_layers': 1})
    assert data['training_state']['cur_nimg'] == 8
    assert G.mapping.w_avg.abs().sum() > 0                                    # 0 at construction
    assert all(float(b) != 1 for n, b in G.named_buffers() if n.endswith('magnitude_ema'))   # 1 at construction
    img = data['G_ema'](torch.randn(2, G.z_dim), None)
    assert img.shape == (2, 3, 16, 16) and torch.isfinite(img).all()
    # Resuming the run continues it.
    run = make_run(dict(TINY_SG3, data=str(data16), cfg='stylegan3-t', resume=snapshot, resume_mode='continue'))
    assert run.cur_nimg == 8


FIXTURE_RUNS = {  # config -> (classes in the data, generator module, phases of its config)
    't32': (1, 'networks_stylegan3', ['Gboth', 'Dmain', 'Dreg']),
    'r32cond': (3, 'networks_stylegan3', ['Gboth', 'Dmain', 'Dreg']),
    'sg2cond32': (2, 'networks_stylegan2', ['Gmain', 'Greg', 'Dmain', 'Dreg']),
}


@pytest.mark.parametrize('config', list(FIXTURE_RUNS))
def test_each_stylegan3_fixture_resumes_trains_and_saves_in_its_layout(sg3_fixtures_dir, data32, tmp_path,
                                                                       config):
    classes, module, phases = FIXTURE_RUNS[config]
    pkl = sg3_fixtures_dir / config / 'network-snapshot.pkl'
    with pytest.warns(UserWarning, match='inert data'):
        run = make_run(dict(BASE, data=str(data32[classes]), cfg='resume', resume=str(pkl), cond=classes > 1),
                       run_dir=tmp_path)
    assert [p.name for p in run.phases] == phases and run.loss.update_emas
    before = {n: t.clone() for n, t in run.G.state_dict().items()}
    means = running_means(run.G)
    ema_before = {n: t.clone() for n, t in run.G_ema.named_parameters()}
    for _ in range(2):
        run.train_step()
    params = dict(run.G.named_parameters())
    changed = [n for n in params if not torch.equal(params[n], before[n])]
    assert len(changed) >= 0.9 * len(params)
    assert all(not torch.equal(b, means[n]) for n, b in running_means(run.G).items())
    assert any(not torch.equal(p, ema_before[n]) for n, p in run.G_ema.named_parameters())
    path = run.save_snapshot()
    data = load_network_pkl(path)
    for key in ('G', 'D', 'G_ema'):
        mine, back = getattr(run, key).state_dict(), data[key].state_dict()
        assert mine.keys() == back.keys() and all(torch.equal(mine[k], back[k]) for k in mine), key
    assert type(data['G']).__module__ == f'plugin.hosts.embedded.{module}'
    kw, fixture_kw = constructor_kwargs(data['G']), constructor_kwargs(load_quiet(pkl)['G'])
    assert kw == fixture_kw


def load_quiet(path):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return load_network_pkl(path)


# -- --host PATH: a stylegan3 checkout (COCKTAIL_TEST_SG3_HOST) ---------------------------------------
# Each run is its own process (one checkout per process; a stylegan2-ada checkout may be tested
# in this one). The host's ops import pkg_resources, which setuptools >= 81 lacks, and its loop
# psutil: stand-ins where they are missing, as a user's environment has the real ones.
_HOST_CLI = PKG_RESOURCES_STAND_IN + '''
import runpy, sys, types
try:
    import psutil  # noqa: F401
except ImportError:
    import resource
    class Process:
        def __init__(self, pid=None):
            pass
        def memory_info(self):
            return types.SimpleNamespace(rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    sys.modules['psutil'] = types.SimpleNamespace(Process=Process)
import torch
torch.set_num_threads(1)
if sys.argv[1] == '--train':        # run_options + launch, as train_cocktail.py, with a fractional kimg
    import json
    from plugin import hosts, launch, run_options
    hosts.set_active_host(sys.argv[2])
    outdir, flags = sys.argv[3], json.loads(sys.argv[4])
    desc, args = run_options.build(flags)
    args.total_kimg, args.kimg_per_tick = 0.008, 0.004          # 2 steps of 4, one tick each
    args.run_dir = launch.next_run_dir(outdir, desc)
    print('SNAPSHOT', launch.launch(args))
elif sys.argv[1] == '--pipeline':   # a method's pipeline (fractional kimg), its stages in the checkout's loop
    import importlib, json
    from plugin import hosts
    hosts.set_active_host(sys.argv[2])
    cls, pipeline_dir, flags, source = sys.argv[3], sys.argv[4], json.loads(sys.argv[5]), sys.argv[6:]
    module, name = cls.rsplit('.', 1)
    print('FINAL', getattr(importlib.import_module(module), name)(flags, pipeline_dir, *source).run())
else:
    sys.argv = ['train_cocktail.py'] + sys.argv[1:]
    runpy.run_path('train_cocktail.py', run_name='__main__')
'''


def _host_process(*argv):
    import os
    import subprocess
    import sys
    from tests.helpers import REPO
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, '-c', _HOST_CLI, *map(str, argv)], cwd=REPO, capture_output=True,
                          text=True, timeout=900, env=env)


def host_cli(*argv):
    """train_cocktail.py --host CHECKOUT ARGV..."""
    return _host_process('--host', SG3_HOST, *argv)


def host_train(outdir, **flags):
    """Two steps of batch 4 in the checkout's loop; the last snapshot's path."""
    r = _host_process('--train', SG3_HOST, outdir, json.dumps(dict(BASE, **flags)))
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'Setting up training phases...' in r.stdout          # the stylegan3 repo's loop, not ours
    from pathlib import Path
    return Path(r.stdout.split('SNAPSHOT ')[-1].strip())


sg3_host = pytest.mark.skipif(not SG3_HOST, reason='set COCKTAIL_TEST_SG3_HOST to a stylegan3 checkout')


@sg3_host
def test_a_stylegan3_checkout_trains_stylegan3_t_in_its_own_loop(tmp_path, data16):
    snapshot = host_train(tmp_path, **dict(TINY_SG3, data=str(data16), cfg='stylegan3-t'))
    raw = snapshot.read_bytes()
    assert b'_reconstruct_persistent_obj' in raw and b'class SynthesisInput' in raw    # the host's own layout
    data = load_network_pkl(snapshot)                 # read back here: rebuilt as the embedded classes
    G = data['G']
    assert type(G).__module__ == 'plugin.hosts.embedded.networks_stylegan3'
    assert constructor_kwargs(G)['channel_base'] == 128 and G.mapping.w_avg.abs().sum() > 0
    assert all(float(b) != 1 for n, b in G.named_buffers() if n.endswith('magnitude_ema'))


@sg3_host
def test_a_stylegan3_checkout_reads_cfg_stylegan2_as_its_own_and_refuses_stylegan2_ada_configs(tmp_path, data16):
    r = host_cli('--outdir', tmp_path, '--data', data16, '--cfg', 'stylegan2', '--batch', 4, '--gamma', 1, '-n')
    assert r.returncode == 0, r.stderr[-3000:]
    options = json.loads(r.stdout[r.stdout.index('{'):r.stdout.rindex('}') + 1])
    assert options['G_kwargs']['class_name'] == 'training.networks_stylegan2.Generator'
    assert options['G_kwargs']['mapping_kwargs'] == {'num_layers': 8} and options['G_reg_interval'] == 4
    r = host_cli('--outdir', tmp_path, '--data', data16, '--cfg', 'paper256', '-n')
    assert r.returncode == 1 and r.stderr.startswith('error: --cfg paper256: a stylegan2-ada-pytorch config')
    assert len(r.stderr.strip().splitlines()) == 1


@sg3_host
def test_a_stylegan3_checkout_resumes_the_t32_fixture(sg3_fixtures_dir, tmp_path, data32):
    snapshot = host_train(tmp_path, data=str(data32[1]), cfg='resume',
                          resume=str(sg3_fixtures_dir / 't32' / 'network-snapshot.pkl'))
    data, fixture = load_network_pkl(snapshot), load_quiet(sg3_fixtures_dir / 't32' / 'network-snapshot.pkl')
    assert constructor_kwargs(data['G']) == constructor_kwargs(fixture['G'])
    assert not torch.equal(data['G'].mapping.fc0.weight, fixture['G'].mapping.fc0.weight)


def host_pipeline(cls, pipeline_dir, flags, *source):
    """A method's pipeline in a process whose active host is the stylegan3 checkout."""
    r = _host_process('--pipeline', SG3_HOST, cls, pipeline_dir, json.dumps(flags), *source)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'Setting up training phases...' in r.stdout          # the stylegan3 repo's loop trained the stages
    return r.stdout


@pytest.fixture(scope='module')
def sg3_runs(tmp_path_factory):
    """Two stylegan3-t sources laid out as a user's runs, a 16 px target and a labelled set."""
    from tests.helpers import make_sg3_source, run_dir
    tmp = tmp_path_factory.mktemp('sg3_methods')
    sources = [make_sg3_source(run_dir(tmp, f'0000{i}-{name}-sg3t') / 'network-snapshot-000040.pkl', seed=40 + i)
               for i, name in enumerate(('rings', 'discs'))]
    return dict(tmp=tmp, sources=sources,
                target=str(write_domains_zip(tmp / 'target16.zip', ['discs'], count=16, resolution=16)),
                labelled=str(write_domains_zip(tmp / 'lab16.zip', ['discs', 'rings'], count=16, resolution=16)))


METHOD_FLAGS = dict(batch=4, tick=0.004, snap=1, seed=0, device='cpu', aug='noaug', cfg='stylegan3-t', gamma=1)


@sg3_host
def test_mining_two_stylegan3_sources_trains_in_the_checkouts_loop(sg3_runs):
    """The checkout's loop builds the loss from G and calls it with cur_nimg and no sync: the
    mining loss follows that convention, and the selector trains (its statistics are logged)."""
    pipe_dir = sg3_runs['tmp'] / 'mine'
    out = host_pipeline('training_ext.mining.pipeline.MiningPipeline', pipe_dir,
                        dict(METHOD_FLAGS, mine=sg3_runs['sources'], data=sg3_runs['target'], mine_kimg=0.008,
                             kimg=0.008))
    stats = (pipe_dir / 'stage1-mine' / 'stats.jsonl').read_text()
    assert 'Mining/selector_loss' in stats and 'Mining/pseudo/1' in stats
    G = load_quiet(out.split('FINAL ')[-1].strip())['G_ema']
    assert G(torch.randn(2, G.z_dim), None).shape == (2, 3, 16, 16)


@sg3_host
def test_hyper_modulation_of_a_stylegan3_source_trains_in_the_checkouts_loop(sg3_runs):
    pipe_dir = sg3_runs['tmp'] / 'hyper'
    out = host_pipeline('training_ext.hypermod.pipeline.HypermodPipeline', pipe_dir,
                        dict(METHOD_FLAGS, data=sg3_runs['labelled'], cond=True, kimg=0.008, hyper_anchor=0),
                        sg3_runs['sources'][0])
    stats = (pipe_dir / 'stage2-cond' / 'stats.jsonl').read_text()
    assert 'Hypermod/mismatch' in stats and 'Hypermod/contrastive' in stats
    G = load_quiet(out.split('FINAL ')[-1].strip())['G_ema']
    c = torch.eye(2)
    assert G(torch.randn(2, G.z_dim), c).shape == (2, 3, 16, 16)


@sg3_host
def test_the_cocktail_of_two_stylegan3_sources_roots_and_merges_in_the_checkouts_loop(sg3_runs):
    pipe_dir = sg3_runs['tmp'] / 'cocktail'
    host_pipeline('training_ext.cocktail.pipeline.CocktailPipeline', pipe_dir,
                  dict(METHOD_FLAGS, cocktail=sg3_runs['sources'], root_kimg=0.008, kimg=0.008))
    stages = json.loads((pipe_dir / 'pipeline_state.json').read_text())['stages']
    assert stages['stage1-root-00001-discs-sg3t']['done'] and stages['stage3-merge']['done']
    G = load_quiet(stages['stage3-merge']['output'])['G_ema']
    assert G.c_dim == 2 and G(torch.randn(2, G.z_dim), torch.eye(2)).shape == (2, 3, 16, 16)
