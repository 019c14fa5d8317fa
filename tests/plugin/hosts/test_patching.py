"""plugin.patch: a legacy training loop rewritten in memory (resume kimg and augment p, the
widened-mapping copy), with an undo and a clear error when its layout differs. The loop-level
tests use a stand-in module with the host loop's statements (no checkout needed); with
``COCKTAIL_TEST_HOST`` the patch is also applied to a copy of the real host's module."""
import importlib.util
import os
import shutil

import pytest
import torch

from tests.helpers import REPO, small_D_kwargs, small_G_kwargs
from plugin import PatchError, patch, save_network_pkl
from plugin.hosts.embedded.augment import AugmentPipe
from plugin.hosts.embedded.networks import Discriminator, Generator

CHECKOUT = os.environ.get('COCKTAIL_TEST_HOST')

STAND_IN = '''
import torch
from types import SimpleNamespace


class misc:
    @staticmethod
    def copy_params_and_buffers(src_module, dst_module, require_all=False):
        for (n, t), s in zip(dst_module.named_parameters(), src_module.parameters()):
            t.data.copy_(s)                 # the host's copy: fails when a shape changed


def training_loop(resume_pkl=None, augment_p=0, G=None, src=None, rank=0, timing=False):
    device = torch.device('cuda', rank)
    if timing:                                   # the host's CUDA-only calls
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(torch.cuda.current_stream(device))
        c = torch.zeros([4, 2]).pin_memory().to(device)
        end.record(torch.cuda.current_stream(device))
        end.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return device, c.device, start.elapsed_time(end) >= 0, torch.cuda.max_memory_allocated(device)
    augment_pipe = SimpleNamespace(p=torch.zeros([]))
    augment_pipe.p.copy_(torch.as_tensor(augment_p))
    if src is not None:
        misc.copy_params_and_buffers(src, G, require_all=False)
    cur_nimg = 0
    return cur_nimg, float(augment_pipe.p)
'''


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def stand_in(tmp_path):
    path = tmp_path / 'legacy_loop.py'
    path.write_text(STAND_IN)
    return path


def snapshot_with_state(path, nimg, p):
    G = Generator(**small_G_kwargs())
    pipe = AugmentPipe(xflip=1)
    pipe.p.fill_(p)
    save_network_pkl(dict(G=G, D=None, G_ema=G, augment_pipe=pipe, training_state=dict(cur_nimg=nimg)), path)
    return str(path)


def test_resume_restores_kimg_and_augment_p_and_undo_restores_the_loop(stand_in, tmp_path):
    mod = load_module(stand_in, 'legacy_loop_a')
    original = mod.training_loop
    pkl = snapshot_with_state(tmp_path / 'snap.pkl', 12000, 0.37)
    assert original(resume_pkl=pkl) == (0, 0.0)                     # the legacy behaviour
    with patch(training_loop_module=mod, features=['resume']):
        nimg, p = mod.training_loop(resume_pkl=pkl)
        assert nimg == 12000 and p == pytest.approx(0.37)
        assert mod.training_loop(resume_pkl=None) == (0, 0.0)      # a fresh run is unchanged
    assert mod.training_loop is original


def test_widened_copy_preserves_the_source_where_the_host_copy_fails(stand_in):
    mod = load_module(stand_in, 'legacy_loop_b')
    torch.manual_seed(0)
    uncond, cond = Generator(**small_G_kwargs()), Generator(**small_G_kwargs(c_dim=3))
    with pytest.raises(RuntimeError):
        mod.training_loop(G=cond, src=uncond)
    with patch(training_loop_module=mod, features=['cond_copy']):
        mod.training_loop(G=cond, src=uncond)
    # Function-preserving: every class of the widened run draws what the source draws.
    z = torch.randn(4, uncond.z_dim)
    with torch.no_grad():
        want = uncond(z, None, noise_mode='const')
        for k in range(3):
            got = cond(z, torch.eye(3)[[k] * 4], noise_mode='const')
            assert torch.allclose(got, want, atol=1e-5), k
    assert torch.equal(cond.synthesis.b4.conv1.weight, uncond.synthesis.b4.conv1.weight)


def test_widened_copy_preserves_the_discriminator(stand_in):
    mod = load_module(stand_in, 'legacy_loop_d')
    torch.manual_seed(0)
    uncond, cond = Discriminator(**small_D_kwargs()), Discriminator(**small_D_kwargs(c_dim=3))
    with patch(training_loop_module=mod, features=['cond_copy']):
        mod.training_loop(G=cond, src=uncond)
    img = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        want = uncond(img, None)
        for k in range(3):
            assert torch.allclose(cond(img, torch.eye(3)[[k] * 4]), want, atol=1e-5), k


def test_any_other_shape_difference_is_a_one_line_error_not_a_slice(stand_in):
    mod = load_module(stand_in, 'legacy_loop_e')
    narrow = Generator(**small_G_kwargs())
    wide = Generator(**small_G_kwargs(synthesis_kwargs=dict(channel_base=256, channel_max=32, conv_clamp=256,
                                                            architecture='skip')))
    before = wide.synthesis.b4.conv1.weight.clone()
    with patch(training_loop_module=mod, features=['cond_copy']):
        with pytest.raises(PatchError, match=r'another architecture .*tensor shapes differ: .*synthesis'):
            mod.training_loop(G=wide, src=narrow)
        more = Generator(**small_G_kwargs(c_dim=3))
        with pytest.raises(PatchError, match='classes are never dropped'):
            mod.training_loop(G=Generator(**small_G_kwargs(c_dim=2)), src=more)
    assert torch.equal(wide.synthesis.b4.conv1.weight, before)          # nothing half-copied


def test_device_patch_runs_a_cuda_only_loop_on_the_cpu(stand_in):
    mod = load_module(stand_in, 'legacy_loop_c')
    if not torch.cuda.is_available():
        with pytest.raises((RuntimeError, AssertionError)):
            mod.training_loop(timing=True)                          # the legacy loop needs CUDA
    with patch(training_loop_module=mod, features=['device']):
        device, data_device, timed, peak = mod.training_loop(timing=True, device='cpu')
        assert device == torch.device('cpu') and data_device == torch.device('cpu') and timed and peak == 0
        default = mod.training_loop(timing=True)[0]                 # no device: CUDA when there is one
        assert default.type == ('cuda' if torch.cuda.is_available() else 'cpu')
        assert mod.training_loop(resume_pkl=None, device='cpu') == (0, 0.0)


def test_torch_compat_lets_a_sampler_pass_its_dataset_and_undoes(stand_in):
    class LegacySampler(torch.utils.data.Sampler):                  # as the host's InfiniteSampler
        def __init__(self, dataset):
            super().__init__(dataset)
    takes_it = torch.utils.data.Sampler.__init__ is not object.__init__
    if not takes_it:
        with pytest.raises(TypeError):
            LegacySampler([1, 2, 3])                                # torch >= 2.2 without the patch
    with patch(training_loop_module=load_module(stand_in, 'legacy_loop_d'), features=['torch_compat']):
        LegacySampler([1, 2, 3])
    assert (torch.utils.data.Sampler.__init__ is not object.__init__) == takes_it
    assert '__init__' not in vars(torch.utils.data.Sampler) or takes_it


def test_a_loop_of_another_layout_is_refused_and_left_alone(stand_in, tmp_path):
    changed = tmp_path / 'forked_loop.py'
    changed.write_text(STAND_IN.replace('cur_nimg = 0', 'cur_nimg = start_nimg()'))
    mod = load_module(changed, 'forked_loop')
    original = mod.training_loop
    with pytest.raises(PatchError, match=r'training_loop\(\) does not match .* no `cur_nimg = 0`'):
        patch(training_loop_module=mod, features=['resume'])
    assert mod.training_loop is original
    with pytest.raises(PatchError, match='unknown patch feature'):
        patch(training_loop_module=mod, features=['warp'])
    cpu_only = tmp_path / 'cpu_loop.py'
    cpu_only.write_text(STAND_IN.replace("torch.device('cuda', rank)", "torch.device('cpu')"))
    with pytest.raises(PatchError, match="no `device = torch.device"):
        patch(training_loop_module=load_module(cpu_only, 'cpu_loop'), features=['device'])


@pytest.mark.skipif(not CHECKOUT, reason='set COCKTAIL_TEST_HOST to a stylegan2-ada-pytorch checkout')
def test_patch_on_a_copy_of_the_real_host_loop(tmp_path, monkeypatch):
    import sys
    import types
    from plugin import hosts
    if importlib.util.find_spec('psutil') is None:     # the host loop imports it; not needed to patch it
        monkeypatch.setitem(sys.modules, 'psutil', types.ModuleType('psutil'))
    saved_env, saved_active = os.environ.get(hosts.HOST_ENV), hosts._active
    try:
        hosts.set_active_host(CHECKOUT)
        copy = tmp_path / 'training_loop_copy.py'
        shutil.copy(os.path.join(CHECKOUT, 'training', 'training_loop.py'), copy)
        mod = load_module(copy, 'training_loop_copy')
        handle = patch(training_loop_module=mod)
        try:
            assert mod.training_loop.__cocktail_patched__ == ('resume', 'cond_copy', 'device')
            import legacy
            from torch_utils import custom_ops
            data = legacy.load_network_pkl(open(REPO.parent / 'shared/fixtures/stylegan2-ada/uncond32/'
                                                'network-snapshot.pkl', 'rb'))
            assert type(data['G_ema']).__module__ == 'torch_utils.persistence'
            with pytest.raises(RuntimeError, match='not retrying'):
                custom_ops.get_plugin('bias_act_plugin', sources=[])
        finally:
            handle.undo()
        assert not hasattr(mod.training_loop, '__cocktail_patched__')
        broken = tmp_path / 'training_loop_fork.py'
        broken.write_text(copy.read_text().replace('misc.copy_params_and_buffers(', 'my_copy('))
        with pytest.raises(PatchError, match='copy_params_and_buffers'):
            patch(training_loop_module=load_module(broken, 'training_loop_fork'), features=['cond_copy'])
    finally:
        hosts._active = saved_active
        if saved_env is None:
            os.environ.pop(hosts.HOST_ENV, None)
        else:
            os.environ[hosts.HOST_ENV] = saved_env
