"""--host PATH: a real checkout behind the plugin's seams (issue 10, first part).

Runs when ``COCKTAIL_TEST_HOST`` points at a stylegan2-ada-pytorch checkout (never copied into
this repo); skipped otherwise. Covers: pickles rebuilt as the checkout's classes and saved
so that the host's own loader reads them (both directions), export to the host's classes
loadable with the plugin blocked, a plugin stage (mining) running on the checkout's networks,
and a clear error for a folder that is not a checkout.
"""
import os
import subprocess
import sys

import pytest
import torch

from tests.helpers import FIXTURES, REPO, make_source
from plugin import hosts
from plugin.hosts.base import HostError
from plugin.pickles import load_network_pkl, save_network_pkl
from plugin.domains import write_domains_zip

CHECKOUT = os.environ.get('COCKTAIL_TEST_HOST')
pytestmark = pytest.mark.skipif(not CHECKOUT, reason='set COCKTAIL_TEST_HOST to a stylegan2-ada-pytorch checkout')

BLOCK_PLUGIN = '''
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in ('plugin', 'training_ext', 'torch_utils_ext'):
            raise ImportError('the plugin is blocked in this process: ' + name)
sys.meta_path.insert(0, Block())
'''


def psutil_stand_in():
    """psutil as the host's training loop uses it (a process's resident memory), for a test
    machine without psutil; a user's checkout environment has the real one."""
    import resource
    import types
    mod = types.ModuleType('psutil')

    class Process:
        def __init__(self, pid=None):
            pass

        def memory_info(self):
            return types.SimpleNamespace(rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    mod.Process = Process
    return mod


@pytest.fixture
def checkout(monkeypatch):
    import importlib.util
    if importlib.util.find_spec('psutil') is None:
        monkeypatch.setitem(sys.modules, 'psutil', psutil_stand_in())
    saved_env, saved_active = os.environ.get(hosts.HOST_ENV), hosts._active
    host = hosts.set_active_host(CHECKOUT)
    yield host
    hosts._active = saved_active
    if saved_env is None:
        os.environ.pop(hosts.HOST_ENV, None)
    else:
        os.environ[hosts.HOST_ENV] = saved_env


def host_load(path, block_plugin=False):
    """Load ``path`` with the checkout's legacy.load_network_pkl in a fresh process; returns
    the class's module and the sum of G_ema's output for fixed z."""
    code = 'import sys\n' + (BLOCK_PLUGIN if block_plugin else '') + f'''
sys.path.insert(0, {CHECKOUT!r})
import legacy, torch
with open({str(path)!r}, 'rb') as f:
    G = legacy.load_network_pkl(f)['G_ema']
torch.manual_seed(0)
z = torch.randn([2, G.z_dim])
print(type(G).__module__, float(G(z, torch.zeros([2, G.c_dim]), noise_mode='const').double().sum()))
'''
    env = dict(os.environ, PYTHONPATH=str(REPO))          # the plugin installed (unless blocked)
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300, cwd='/', env=env)
    assert r.returncode == 0, r.stderr
    module, value = r.stdout.split()
    return module, float(value)


def g_sum(G):
    torch.manual_seed(0)
    z = torch.randn([2, G.z_dim])
    return float(G(z, torch.zeros([2, G.c_dim]), noise_mode='const').double().sum())


def test_host_pickles_rebuild_as_checkout_classes_and_round_trip(checkout, tmp_path):
    data = load_network_pkl(FIXTURES / 'uncond32' / 'network-snapshot.pkl')
    assert type(data['G_ema']).__module__ == 'torch_utils.persistence'        # the checkout's classes
    out = save_network_pkl(data, tmp_path / 'resaved.pkl')
    module, value = host_load(out, block_plugin=True)                         # no plugin needed to read it
    assert module == 'torch_utils.persistence' and value == pytest.approx(g_sum(data['G_ema']), rel=1e-6)


def test_embedded_pickle_loads_in_the_host_and_as_checkout_classes(checkout, tmp_path):
    src = make_source(tmp_path / 'ours.pkl', 0)
    hosts._active = hosts.get_host(None)
    ours = load_network_pkl(src)['G_ema']
    hosts._active = checkout
    theirs = load_network_pkl(src)['G_ema']
    assert type(theirs).__module__ == 'torch_utils.persistence'
    assert g_sum(theirs) == pytest.approx(g_sum(ours), rel=1e-5)
    _, value = host_load(src)                                                # host code, plugin installed
    assert value == pytest.approx(g_sum(ours), rel=1e-5)


def test_export_writes_host_classes_that_load_without_the_plugin(checkout, tmp_path):
    out = tmp_path / 'exported.pkl'
    r = subprocess.run([sys.executable, '-m', 'plugin', 'export', str(REPO / 'plugin/assets/sources/discs.pkl'),
                        str(out), '--host', CHECKOUT], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr
    hosts._active = hosts.get_host(None)
    expected = g_sum(load_network_pkl(REPO / 'plugin/assets/sources/discs.pkl')['G_ema'])
    module, value = host_load(out, block_plugin=True)
    assert module == 'torch_utils.persistence' and value == pytest.approx(expected, rel=1e-5)


def test_a_plugin_stage_runs_on_the_checkouts_networks(checkout, tmp_path):
    from training_ext.mining.pipeline import MiningPipeline
    source = make_source(tmp_path / 'src.pkl', 0)
    target = write_domains_zip(tmp_path / 't.zip', ['discs'], count=16, resolution=16)
    flags = dict(mine=[source], data=str(target), outdir=str(tmp_path), cfg='tiny', batch=8, mine_kimg=0.016,
                 kimg=0.016, tick=0.016, snap=1, seed=0, device='cpu')
    final = MiningPipeline(flags, str(tmp_path / 'mine'), log=lambda *a: None).run()
    with open(os.path.join(os.path.dirname(final), 'log.txt')) as f:
        assert 'gpumem' in f.read()                                           # the host's own loop ran it
    G = load_network_pkl(final)['G_ema']
    inner = G.synthesis.syntheses[0]
    assert type(inner).__module__ == 'torch_utils.persistence'               # host networks inside the wrapper
    assert G(torch.randn([2, G.z_dim]), None).shape == (2, 3, 16, 16)
    # The host's loop wrote this snapshot with plain pickle: the host's own loader reads it too
    # (plugin installed), the same network.
    module, value = host_load(final)
    assert module == 'torch_utils.persistence' and value == pytest.approx(g_sum(G), rel=1e-5)   # host-wrapped


def test_not_a_checkout_is_a_clear_error(tmp_path):
    with pytest.raises(HostError, match='not a stylegan2-ada-pytorch/stylegan3 checkout'):
        hosts.get_host(str(tmp_path))


FLAG_SETS = [dict(), dict(cfg='paper256', gamma=5.0, batch=16, mirror=True), dict(cfg='stylegan2', aug='noaug', freezed=3),
             dict(cfg='cifar', aug='fixed', p=0.2, kimg=100),
             dict(cfg='auto', fp32=True, allow_tf32=True, workers=2, seed=4, snap=7),
             dict(aug='ada', target=0.7, augpipe='bgcfnc', subset=8), dict(gpus=2, batch=8, nobench=True, nhwc=True)]


@pytest.mark.parametrize('flags', FLAG_SETS, ids=lambda f: '-'.join(f'{k}{v}' for k, v in f.items()) or 'defaults')
def test_our_option_handling_equals_the_hosts(checkout, tmp_path, monkeypatch, flags):
    """train_cocktail.py's flags mean what the host's train.py flags mean: for the same flags,
    the plugin's own option builder and the checkout's setup_training_loop_kwargs give the
    same training_loop options (compared on a machine without a GPU by declaring one)."""
    from plugin import run_options
    from plugin.easydict import to_plain
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    data = str(write_domains_zip(tmp_path / 'd.zip', ['discs'], count=16, resolution=32))
    host_desc, host_args = checkout.training_options(dict(data=data, **flags))
    hosts._active = hosts.get_host(None)
    our_desc, our_args = run_options.build(dict(data=data, device='cuda', **flags))
    ours = to_plain(our_args)
    assert ours.pop('device') == 'cuda'
    assert our_desc == host_desc and ours == to_plain(host_args)


def test_with_a_checkout_the_hosts_option_handling_builds_the_run(checkout, tmp_path, monkeypatch):
    from plugin import run_options
    from plugin.run_options import UserError
    calls = []
    monkeypatch.setattr(checkout, 'training_options', lambda f, own=checkout.training_options: calls.append(1) or own(f))
    data = str(write_domains_zip(tmp_path / 'd.zip', ['discs'], count=16, resolution=32))
    desc, args = run_options.build(dict(data=data, cfg='paper256', device='cpu'))
    assert desc.endswith('paper256') and args.device == 'cpu' and args.G_kwargs.synthesis_kwargs.num_fp16_res == 0
    assert calls, 'the checkout\'s option handling was not used'
    with pytest.raises(UserError, match='--gamma'):                        # the host's own message
        run_options.build(dict(data=data, gamma=-1.0, device='cpu'))


def test_hypermod_and_bypass_run_on_the_checkouts_networks(checkout, tmp_path):
    """The other two methods build on the checkout's classes too (their layers keep fewer
    attributes than the embedded ones: shapes are read from tensors)."""
    from training_ext.bypass.pipeline import BypassPipeline
    from training_ext.hypermod.networks import discriminator_from_source, hyper_from_source
    source = make_source(tmp_path / 'src.pkl', 0)
    data = load_network_pkl(source)
    G, D = data['G_ema'].eval(), data['D'].eval()
    assert type(G).__module__ == 'torch_utils.persistence'
    H, HD = hyper_from_source(G, 2).eval(), discriminator_from_source(D, 2).eval()
    z, c = torch.randn([4, G.z_dim]), torch.eye(2)[[0, 1, 0, 1]]
    assert (H(z, c, noise_mode='const') - G(z, None, noise_mode='const')).abs().max() < 1e-4
    img = G(z, None)
    assert (HD(img, c) - D(img, None)).abs().max() < 1e-4
    target = str(write_domains_zip(tmp_path / 't.zip', ['rings'], count=16, resolution=16))
    for mode in ('w', '8'):
        flags = dict(bypass=mode, data=target, batch=8, encoder_kimg=0.016, kimg=0.05, tick=0.05, snap=1, seed=0,
                     device='cpu')
        final = BypassPipeline(flags, str(tmp_path / f'bypass-{mode}'), source, log=lambda *a: None).run()
        G_out = load_network_pkl(final)['G_ema']
        assert G_out(torch.randn([4, G_out.z_dim]), None, noise_mode='const').shape == (4, 3, 16, 16)


def test_cocktail_merges_the_checkouts_networks(checkout, tmp_path):
    from training_ext.cocktail.pipeline import CocktailPipeline
    a, b = make_source(tmp_path / 'a.pkl', 0), make_source(tmp_path / 'b.pkl', 1)
    flags = dict(cocktail=[a, b], outdir=str(tmp_path), cfg='tiny', batch=8, root_kimg=0.016, kimg=0.016,
                 tick=0.016, snap=1, seed=0, device='cpu', judge=40)
    pipe = CocktailPipeline(flags, str(tmp_path / 'ck'), log=lambda *a: None)
    pipe.run()
    G = load_network_pkl(pipe.state['stages']['stage3-merge']['output'])['G_ema']
    assert type(G).__module__ == 'torch_utils.persistence' and G.c_dim == 2


def test_data_workers_get_their_own_zip_handle(checkout, tmp_path):
    """The host's zip dataset under fork-started DataLoader workers while the main process reads
    too (as its loop does for the snapshot grid): with the patch every process has its own handle
    and every image reads intact."""
    import multiprocessing

    from plugin.patch import patch
    from training.dataset import ImageFolderDataset
    data = write_domains_zip(tmp_path / 'd.zip', ['discs'], count=64, resolution=16)
    with patch(features=['zip_per_process']):
        ds = ImageFolderDataset(path=str(data))
        parent = ds._get_zipfile()
        ds._cocktail_zip_pid = -1                                   # as seen from another process
        assert ds._get_zipfile() is not parent
        loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2,
                                             multiprocessing_context=multiprocessing.get_context('fork'))
        it = iter(loader)
        main_reads = [ds[i][0] for i in range(len(ds))]
        batches = [images for images, _ in it]
    assert sum(len(b) for b in batches) == 64 and len(main_reads) == 64
    assert ImageFolderDataset._get_zipfile.__name__ == '_get_zipfile'              # undone


def test_blend_and_merge_of_host_snapshots_load_in_the_host_without_the_plugin(checkout, tmp_path):
    """Training-free results keep the inputs' records: host snapshots in, host snapshots out."""
    from plugin.pickles import SafeUnpickler
    from plugin.pkl_edit import replace_tensors
    from plugin.training_free import blend_pickles, merge_pickles
    src = FIXTURES / 'uncond32' / 'network-snapshot.pkl'
    records = SafeUnpickler(open(src, 'rb')).load()
    torch.manual_seed(0)
    moved = {n: t + 0.01 * torch.randn_like(t) if t.is_floating_point() else t
             for n, t, _ in records['G_ema'].named_tensors()}
    records['G_ema'] = replace_tensors(records['G_ema'], moved)
    tuned = save_network_pkl(records, tmp_path / 'tuned.pkl')
    blend_pickles(src, tuned, tmp_path / 'blend.pkl', 8, log=lambda *a: None)
    merge_pickles([str(src), str(tuned)], tmp_path / 'merge.pkl', 'mean', log=lambda *a: None)
    for out in ('blend.pkl', 'merge.pkl'):
        module, value = host_load(tmp_path / out, block_plugin=True)
        assert module == 'torch_utils.persistence'
        assert value == pytest.approx(g_sum(load_network_pkl(tmp_path / out)['G_ema']), rel=1e-5)
