"""The stylegan3 repo's StyleGAN2 networks (``training.networks_stylegan2``) in the embedded host.

Its pickles (``../shared/fixtures/stylegan3``: D of every folder, G of ``sg2cond32``) load
safely, are rebuilt as ``plugin.hosts.embedded.networks_stylegan2``, reproduce the host's
goldens and are written back in the host's layout under its class names. The fixtures'
README lists the facts; ``COCKTAIL_SG3_FIXTURES`` points elsewhere, and a clone without
``../shared`` skips. ``COCKTAIL_TEST_SG3_HOST`` (a stylegan3 checkout) also runs its own
``legacy.load_network_pkl`` on our snapshots.
"""
import copy
import io
import os
import pickle
import subprocess
import sys
import types
import warnings

import pytest
import torch

from plugin import load_network_pkl, save_network_pkl
from plugin.easydict import EasyDict
from plugin.hosts.embedded import networks_stylegan2 as sg2
from plugin.persistence import constructor_kwargs
from plugin.pickles import PersistentRecord, detect_family
from tests.helpers import PKG_RESOURCES_STAND_IN, REPO, SG3_FIXTURE_CONFIGS, SG3_HOST, run_plugin_cli
from tests.helpers.goldens import FP32_TOL, WS_TOL, assert_close, load_fixture, tensor_sha256

FAMILY = 'stylegan3.networks_stylegan2'
HOST_CHECKOUT = SG3_HOST

pytestmark = pytest.mark.usefixtures('one_thread')     # the goldens were computed on one thread


def load_quiet(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')     # t32/r32cond: G and the augment pipe may be kept as data
        return load_network_pkl(path, **kw)


def named_tensors(value):
    """(name -> (tensor, kind)) of a rebuilt module, or of a record kept as data (a stylegan3-t/-r
    G while the embedded host has no class for it)."""
    if isinstance(value, PersistentRecord):
        return {n: (t, k) for n, t, k in value.named_tensors()}
    kinds = {n: 'parameter' for n, _ in value.named_parameters()}
    return {n: (t, kinds.get(n, 'buffer')) for n, t in value.state_dict().items()}


def records(value):
    """Every persistent record in ``value``, nested ones included."""
    if isinstance(value, PersistentRecord):
        yield value
        for child in (value.state.get('_modules') or {}).values():
            yield from records(child)


@pytest.mark.parametrize('cfg', SG3_FIXTURE_CONFIGS)
@pytest.mark.parametrize('key', ['G', 'G_ema', 'D'])
def test_tensors_match_manifest(sg3_fixtures_dir, cfg, key):
    data, manifest, _ = load_fixture(sg3_fixtures_dir / cfg)
    tensors = named_tensors(data[key])
    expected = manifest[key]['tensors']
    assert list(tensors) == [t['name'] for t in expected], 'state_dict names or order differ'
    for t in expected:
        value, kind = tensors[t['name']]
        assert list(value.shape) == t['shape'], t['name']
        assert kind == t['kind'], t['name']
        assert tensor_sha256(value) == t['sha256'], f"{t['name']}: tensor bytes differ from the host's"


@pytest.mark.parametrize('cfg', SG3_FIXTURE_CONFIGS)
def test_networks_of_the_stylegan2_module_are_rebuilt_as_its_classes(sg3_fixtures_dir, cfg):
    data, manifest, _ = load_fixture(sg3_fixtures_dir / cfg)
    for key in ('G', 'G_ema', 'D'):
        host_path = manifest[key]['class_name']
        if not host_path.startswith('training.networks_stylegan2.'):
            continue                        # the alias-free G of t32/r32cond: not this module's
        module = data[key]
        assert type(module) is getattr(sg2, host_path.rsplit('.', 1)[-1]), key
        assert not module.training and not any(p.requires_grad for p in module.parameters())
        assert module._init_kwargs == manifest[key]['init_kwargs']
        assert constructor_kwargs(module)['class_name'] == host_path
    assert data['training_set_kwargs'] == manifest['pickle']['training_set_kwargs']


def test_the_family_is_told_apart_from_stylegan2_ada(sg3_fixtures_dir):
    data = load_quiet(sg3_fixtures_dir / 'sg2cond32' / 'network-snapshot.pkl', rebuild=False)
    src = data['G'].meta['module_src']
    assert data['G'].family == data['D'].family == FAMILY
    assert {r.family for key in ('G', 'D') for r in records(data[key])} == {FAMILY}
    # stylegan2-ada's networks.py: the mapping's skip_w_avg_update, no update_emas.
    ada = src.replace('update_emas', 'skip_w_avg_update')
    assert detect_family(ada) == 'stylegan2.networks'


def test_sg2cond32_goldens(sg3_fixtures_dir):
    data, _, g = load_fixture(sg3_fixtures_dir / 'sg2cond32')
    G, G_ema = data['G'], data['G_ema']
    z, c = torch.from_numpy(g['z']), torch.from_numpy(g['c'])
    with torch.no_grad():
        ws = G_ema.mapping(z, c, truncation_psi=1)
        assert_close(ws, g['ws_psi1'], WS_TOL, 'ws_psi1')
        assert_close(G_ema.mapping(z, c, truncation_psi=0.7), g['ws_psi07'], WS_TOL, 'ws_psi07')
        assert_close(G_ema.mapping(z, c, truncation_psi=0.7, truncation_cutoff=G_ema.num_ws), g['ws_psi07'],
                     WS_TOL, 'ws_psi07 (cutoff num_ws)')
        assert_close(G_ema.mapping.w_avg, g['w_avg'], WS_TOL, 'w_avg')
        assert_close(G_ema.synthesis(ws, noise_mode='const'), g['img_const'], FP32_TOL, 'img_const')
        assert_close(G_ema(z, c, truncation_psi=1, noise_mode='const'), g['img_psi1'], FP32_TOL, 'img_psi1')
        assert_close(G_ema(z, c, truncation_psi=0.7, noise_mode='const'), g['img_psi07'], FP32_TOL, 'img_psi07')
        assert_close(G(z, c, truncation_psi=1, noise_mode='const'), g['img_G'], FP32_TOL, 'img_G')
        assert_close(G_ema(z, c, noise_mode='const', force_fp32=True), g['img_psi1'], FP32_TOL, 'force_fp32')


@pytest.mark.parametrize('cfg', SG3_FIXTURE_CONFIGS)
def test_discriminator_goldens(sg3_fixtures_dir, cfg):
    data, _, g = load_fixture(sg3_fixtures_dir / cfg)
    D, c = data['D'], torch.from_numpy(g['c'])
    with torch.no_grad():
        assert_close(D(torch.from_numpy(g['img_const']), c), g['d_fake'], FP32_TOL, 'd_fake')
        assert_close(D(torch.from_numpy(g['x_rand']), c), g['d_rand'], FP32_TOL, 'd_rand')
        assert_close(D(torch.from_numpy(g['x_rand']), c, update_emas=True), g['d_rand'], FP32_TOL, 'update_emas')


def test_w_avg_moves_only_on_update_emas_with_beta_0998(sg3_fixtures_dir):
    data, _, g = load_fixture(sg3_fixtures_dir / 'sg2cond32')
    mapping = copy.deepcopy(data['G_ema'].mapping).train()
    z, c = torch.from_numpy(g['z']), torch.from_numpy(g['c'])
    before = mapping.w_avg.clone()
    with torch.no_grad():
        w = mapping(z, c)                   # training mode alone does not move it
        assert torch.equal(mapping.w_avg, before)
        mapping(z, c, update_emas=True)
    assert mapping.w_avg_beta == 0.998
    torch.testing.assert_close(mapping.w_avg, w[:, 0].mean(dim=0).lerp(before, 0.998), atol=1e-7, rtol=0)
    with pytest.raises(TypeError):
        mapping(z, c, skip_w_avg_update=True)   # stylegan2-ada's name is not this host's


@pytest.mark.parametrize('default', [True, False, 'inference_only'])
def test_fused_modconv_default_and_float32_off_cuda(monkeypatch, default):
    from plugin.hosts.embedded import layers
    seen = []
    real = layers.modulated_conv2d

    def spy(x, *args, **kwargs):
        seen.append((kwargs['fused_modconv'], x.dtype))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(layers, 'modulated_conv2d', spy)
    torch.manual_seed(0)
    G = sg2.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, mapping_kwargs=dict(num_layers=2),
                      channel_base=64, channel_max=8, fused_modconv_default=default)
    assert G.synthesis.num_fp16_res == 4 and G.synthesis.b16.use_fp16 and G.synthesis.b16.conv1.conv_clamp == 256
    z = torch.randn(2, 8)
    for training in (False, True):
        seen.clear()
        with torch.no_grad():
            G.train(training)(z, None, noise_mode='const')
        assert {fused for fused, _ in seen} == {(not training) if default == 'inference_only' else default}
        assert {dtype for _, dtype in seen} == {torch.float32}      # flagged float16, but on a CPU


def test_round_trip_keeps_tensors_and_class_paths(sg3_fixtures_dir, tmp_path):
    first, manifest, _ = load_fixture(sg3_fixtures_dir / 'sg2cond32')
    save_network_pkl(first, tmp_path / 'again.pkl')
    raw = load_quiet(tmp_path / 'again.pkl', rebuild=False)
    host_names = {p.rsplit('.', 1)[-1] for p in manifest['pickle']['persistent_classes']
                  if p.startswith('training.networks_stylegan2.')}
    for key in ('G', 'G_ema', 'D'):
        nested = list(records(raw[key]))
        assert {r.family for r in nested} == {FAMILY}, key
        assert {r.class_name for r in nested} <= host_names, key
        assert all('from plugin.hosts.embedded.networks_stylegan2 import' in r.meta['module_src'] for r in nested)
    second = load_quiet(tmp_path / 'again.pkl')
    assert list(second) == list(first)
    for key in ('G', 'G_ema', 'D'):
        a, b = first[key].state_dict(), second[key].state_dict()
        assert list(a) == list(b) and all(torch.equal(a[n], b[n]) for n in a), key
        assert type(second[key]) is type(first[key])
        assert second[key]._init_kwargs == manifest[key]['init_kwargs']
    assert second['training_set_kwargs'] == first['training_set_kwargs']


def _host_style_load(blob):
    """What the stylegan3 repo's loader does with our persistent objects: run the module_src
    (ours is an import shim; anything else is refused here), take ``class_name`` from it and set
    the state on a bare instance."""
    def reconstruct(meta):
        assert meta['module_src'].startswith('# gan-cocktail persistent class:'), 'not our shim'
        module = types.ModuleType('_host_style_module')
        exec(meta['module_src'], module.__dict__)
        cls = module.__dict__[meta['class_name']]
        obj = cls.__new__(cls)
        obj.__dict__.update(meta['state'])
        return obj

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ('torch_utils.persistence', '_reconstruct_persistent_obj'):
                return reconstruct
            if (module, name) == ('dnnlib.util', 'EasyDict'):
                return EasyDict
            return super().find_class(module, name)

    return Unpickler(io.BytesIO(blob)).load()


def test_a_host_style_loader_reads_our_snapshot(sg3_fixtures_dir, tmp_path):
    first, _, g = load_fixture(sg3_fixtures_dir / 'sg2cond32')
    save_network_pkl({k: first[k] for k in ('G', 'D', 'G_ema', 'training_set_kwargs')}, tmp_path / 's.pkl')
    data = _host_style_load((tmp_path / 's.pkl').read_bytes())
    G, D = data['G_ema'], data['D']
    assert type(G) is sg2.Generator and type(D) is sg2.Discriminator
    assert G._init_kwargs == first['G_ema']._init_kwargs      # what the host's persistence reads back
    z, c = torch.from_numpy(g['z']), torch.from_numpy(g['c'])
    with torch.no_grad():
        assert_close(G(z, c, truncation_psi=0.7, noise_mode='const'), g['img_psi07'], FP32_TOL, 'img_psi07')
        assert_close(D(torch.from_numpy(g['x_rand']), c), g['d_rand'], FP32_TOL, 'd_rand')


_HOST_SCRIPT = PKG_RESOURCES_STAND_IN + '''
import numpy as np, torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[1])
import legacy
with open(sys.argv[2], 'rb') as f:
    data = legacy.load_network_pkl(f)
g = dict(np.load(sys.argv[3]))
z, c = torch.from_numpy(g['z']), torch.from_numpy(g['c'])
with torch.no_grad():
    img = data['G_ema'](z, c, truncation_psi=0.7, noise_mode='const')
    d = data['D'](torch.from_numpy(g['x_rand']), c)
print(float(np.abs(img.numpy() - g['img_psi07']).max()), float(np.abs(d.numpy() - g['d_rand']).max()))
'''


@pytest.mark.skipif(not HOST_CHECKOUT, reason='set COCKTAIL_TEST_SG3_HOST to a stylegan3 checkout')
@pytest.mark.parametrize('cfg', ['sg2cond32', 't32', 'r32cond'])
def test_the_stylegan3_repos_own_loader_reads_our_snapshot(sg3_fixtures_dir, tmp_path, cfg):
    """Our snapshot of each fixture (the alias-free G of t32/r32cond too), read by the checkout's
    legacy.load_network_pkl with the plugin importable, reproduces the host's goldens."""
    first, _, _ = load_fixture(sg3_fixtures_dir / cfg)
    save_network_pkl(first, tmp_path / 's.pkl')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')]))
    r = subprocess.run([sys.executable, '-c', _HOST_SCRIPT, HOST_CHECKOUT, str(tmp_path / 's.pkl'),
                        str(sg3_fixtures_dir / cfg / 'golden.npz')], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    img_err, d_err = map(float, r.stdout.split())
    assert img_err < 1e-4 and d_err < 1e-4


def test_cli_inspect(sg3_fixtures_dir):
    r = run_plugin_cli('inspect', sg3_fixtures_dir / 'sg2cond32' / 'network-snapshot.pkl')
    assert r.returncode == 0, r.stderr
    assert 'cannot rebuild' not in r.stdout
    assert f'G_ema: Generator [{FAMILY}]' in r.stdout and f'D: Discriminator [{FAMILY}]' in r.stdout
    assert '32x32x3  z_dim 64  w_dim 64  num_ws 8  c_dim 2 (conditional)' in r.stdout
    assert 'channels 4:32 8:32 16:32 32:16' in r.stdout


def test_cli_generate(sg3_fixtures_dir, tmp_path):
    from PIL import Image
    r = run_plugin_cli('generate', sg3_fixtures_dir / 'sg2cond32' / 'network-snapshot.pkl', '--seeds', '0-2',
                       '--class', '1', '--outdir', tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.glob('seed*.png')) == ['seed0000.png', 'seed0001.png', 'seed0002.png']
    assert Image.open(tmp_path / 'seed0000.png').size == (32, 32)
