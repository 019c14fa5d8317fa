"""Real host pickles load safely and the embedded networks reproduce the host's goldens."""
import pytest
import torch

from tests.helpers import FIXTURE_CONFIGS
from tests.helpers.goldens import (FP16_IMG_TOL, FP16_LOGIT_TOL, FP32_TOL, WS_TOL, assert_close, load_fixture,
                                   tensor_sha256)


@pytest.mark.parametrize('cfg', FIXTURE_CONFIGS)
@pytest.mark.parametrize('key', ['G', 'G_ema', 'D'])
def test_tensors_match_manifest(fixtures_dir, cfg, key):
    data, manifest, _ = load_fixture(fixtures_dir / cfg)
    module = data[key]
    state = module.state_dict()
    expected = manifest[key]['tensors']
    assert list(state.keys()) == [t['name'] for t in expected], 'state_dict names or order differ'
    kinds = {n: 'parameter' for n, _ in module.named_parameters()}
    for t in expected:
        value = state[t['name']]
        assert list(value.shape) == t['shape'], t['name']
        assert kinds.get(t['name'], 'buffer') == t['kind'], t['name']
        assert tensor_sha256(value) == t['sha256'], f"{t['name']}: tensor bytes differ from the host's"


@pytest.mark.parametrize('cfg', FIXTURE_CONFIGS)
def test_loaded_modules_are_snapshot_state(fixtures_dir, cfg):
    data, manifest, _ = load_fixture(fixtures_dir / cfg)
    for key in ('G', 'G_ema', 'D'):
        assert not data[key].training
        assert not any(p.requires_grad for p in data[key].parameters())
        assert type(data[key]).__name__ == manifest[key]['class_name'].rsplit('.', 1)[-1]
    assert data['training_set_kwargs'] == manifest['pickle']['training_set_kwargs']


@pytest.mark.parametrize('cfg', FIXTURE_CONFIGS)
def test_goldens(fixtures_dir, cfg):
    data, manifest, g = load_fixture(fixtures_dir / cfg)
    G, G_ema, D = data['G'], data['G_ema'], data['D']
    z, c = torch.from_numpy(g['z']), torch.from_numpy(g['c'])
    has_fp16 = bool(manifest['fp16_resolutions']['G'] or manifest['fp16_resolutions']['D'])
    img_tol = FP16_IMG_TOL if has_fp16 else FP32_TOL
    logit_tol = FP16_LOGIT_TOL if has_fp16 else FP32_TOL
    with torch.no_grad():
        ws = G_ema.mapping(z, c, truncation_psi=1)
        assert_close(ws, g['ws_psi1'], WS_TOL, 'ws_psi1')
        assert_close(G_ema.mapping(z, c, truncation_psi=0.7), g['ws_psi07'], WS_TOL, 'ws_psi07')
        assert_close(G_ema.synthesis(ws, noise_mode='const'), g['img_const'], img_tol, 'img_const')
        assert_close(G_ema(z, c, truncation_psi=0.5, noise_mode='const'), g['img_full'], img_tol, 'img_full')
        assert_close(G(z, c, truncation_psi=1, noise_mode='const'), g['img_G'], img_tol, 'img_G')
        assert_close(D(torch.from_numpy(g['img_const']), c), g['d_fake'], logit_tol, 'd_fake')
        assert_close(D(torch.from_numpy(g['x_rand']), c), g['d_rand'], logit_tol, 'd_rand')
        if 'img_const_fp32' in g:
            assert_close(G_ema.synthesis(ws, noise_mode='const', force_fp32=True), g['img_const_fp32'], FP32_TOL,
                         'img_const_fp32')
            assert_close(G_ema(z, c, truncation_psi=0.5, noise_mode='const', force_fp32=True), g['img_full_fp32'],
                         FP32_TOL, 'img_full_fp32')
            assert_close(D(torch.from_numpy(g['img_const_fp32']), c, force_fp32=True), g['d_fake_fp32'], FP32_TOL,
                         'd_fake_fp32')
            assert_close(D(torch.from_numpy(g['x_rand']), c, force_fp32=True), g['d_rand_fp32'], FP32_TOL,
                         'd_rand_fp32')


def test_fp16_blocks_really_run_in_half(fixtures_dir):
    data, _, _ = load_fixture(fixtures_dir / 'uncond64')
    seen = {}
    hook = data['G_ema'].synthesis.b64.conv1.register_forward_hook(lambda m, i, o: seen.update(dtype=o.dtype))
    with torch.no_grad():
        data['G_ema'](torch.randn(2, 64), None, noise_mode='const')
    hook.remove()
    assert seen['dtype'] == torch.float16
