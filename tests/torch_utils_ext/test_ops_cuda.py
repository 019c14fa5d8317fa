"""Fused CUDA ops against their references (forward, gradients, second order), on two backends:

- ``cuda``: the kernels built with nvcc and run on a GPU (skipped without one; tools/gpu_verify.sh
  runs them on a GPU machine);
- ``emulated``: the same kernel sources compiled as C++ for the CPU emulator of
  ``torch_utils_ext.emulation`` (needs only a C++ compiler), so that CI checks the kernels' logic
  on every change. The StyleGAN2-size case is left to the GPU: emulated, it takes minutes.
"""
import pytest
import torch

from torch_utils_ext import emulation
from torch_utils_ext.ops.hypermod_weight import _plugin, hypermod_weight

BACKENDS = ['cuda', 'emulated']


@pytest.fixture(params=BACKENDS)
def device(request):
    """The device the kernels' tensors live on, with the kernels of that backend in force."""
    if request.param == 'cuda':
        if not torch.cuda.is_available():
            pytest.skip('needs a CUDA device')
        yield 'cuda'
    else:
        if not emulation.have_compiler():
            pytest.skip('needs a C++ compiler')
        with emulation.emulated_kernels():
            yield 'cpu'


def generator(device, seed):
    return torch.Generator(device).manual_seed(seed)


def relative_error(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


@pytest.mark.parametrize('shape', [(4, 8, 16, 3), (2, 64, 32, 3), (3, 512, 512, 3), (5, 7, 9, 1), (2, 3, 300, 3)])
@pytest.mark.parametrize('demodulate', [True, False])
@pytest.mark.parametrize('rank', [0, 4])
def test_hypermod_weight_cuda_matches_reference(device, shape, demodulate, rank):
    n, o, i, k = shape
    if device == 'cpu' and o * i > 64 * 64:
        pytest.skip('StyleGAN2 size: on the GPU backend only (minutes when emulated)')
    assert _plugin() is not None, 'the hypermod_weight kernel did not build'
    torch.manual_seed(0)
    base = torch.randn([o, i, k, k], device=device)
    styles = torch.randn([n, i], device=device).requires_grad_(True)
    if rank:
        gamma = (torch.randn([o, i], device=device), torch.randn([n, o, rank], device=device).requires_grad_(True),
                 torch.randn([i, rank], device=device).requires_grad_(True))
    else:
        gamma = torch.randn([n, o, i], device=device).requires_grad_(True)
    beta = (0.1 * torch.randn([n, o, i], device=device)).requires_grad_(True)
    leaves = [styles, beta] + ([gamma[1], gamma[2]] if rank else [gamma])
    outs, grads = [], []
    for impl in ('cuda', 'ref'):
        w = hypermod_weight(base, styles, gamma, beta, gain=0.7, demodulate=demodulate, impl=impl)
        probe = torch.randn(w.shape, device=device, generator=generator(device, 1))
        grads.append(torch.autograd.grad((w * probe).sum(), leaves))
        outs.append(w.detach())
    assert relative_error(outs[0], outs[1]) <= 1e-4
    for a, b in zip(*grads):
        assert relative_error(a, b) <= 1e-4


@pytest.mark.parametrize('act', ['linear', 'relu', 'lrelu'])
@pytest.mark.parametrize('clamp', [None, 0.5])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_bias_act_cuda_matches_reference_to_second_order(device, act, clamp, dtype):
    """Output, first gradients, and an R1-style gradient of a gradient (through a linear layer
    in front, so the second-order path through the kernel's backward is not trivially zero)."""
    from torch_utils_ext.ops.bias_act import _plugin as bias_act_plugin
    from torch_utils_ext.ops.bias_act import bias_act
    assert bias_act_plugin() is not None, 'the bias_act kernel did not build'
    torch.manual_seed(0)
    x = torch.randn([32, 16], device=device, dtype=dtype, requires_grad=True)
    W = torch.randn([16, 16], device=device, dtype=dtype, requires_grad=True)
    b = torch.randn([16], device=device, dtype=dtype, requires_grad=True)
    probe = torch.randn([32, 16], device=device, dtype=dtype, generator=generator(device, 1))
    results = []
    for impl in ('cuda', 'ref'):
        y = bias_act(x @ W, b, act=act, clamp=clamp, impl=impl)
        gx, gb = torch.autograd.grad((y * probe).sum(), [x, b], create_graph=True)
        r1, = torch.autograd.grad(gx.square().sum(), [W])
        results.append((y.detach(), gx.detach(), gb.detach(), r1))
    tol = 1e-4 if dtype == torch.float32 else 1e-2
    for a, ref in zip(*results):
        assert relative_error(a.float(), ref.float()) <= tol


@pytest.mark.parametrize('case', [dict(up=2, padding=(2, 1, 2, 1)), dict(down=2, padding=1), dict(padding=(-1, 2, 0, 1)),
                                  dict(up=2, down=2, padding=2, flip_filter=True), dict(up=(1, 2), down=(2, 1))])
@pytest.mark.parametrize('filt', [[1, 3, 3, 1], [1, 2, 3, 4, 4, 3, 2, 1]])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_upfirdn2d_cuda_matches_reference(device, case, filt, dtype):
    from torch_utils_ext.ops.upfirdn2d import _plugin as upfirdn2d_plugin
    from torch_utils_ext.ops.upfirdn2d import setup_filter, upfirdn2d
    assert upfirdn2d_plugin() is not None, 'the upfirdn2d kernel did not build'
    torch.manual_seed(0)
    f = setup_filter(filt, device=device)
    x = torch.randn([2, 8, 13, 16], device=device, dtype=dtype, requires_grad=True)
    results = []
    for impl in ('cuda', 'ref'):
        y = upfirdn2d(x, f, gain=1.5, impl=impl, **case)
        probe = torch.randn(y.shape, device=device, dtype=dtype, generator=generator(device, 1))
        gx, = torch.autograd.grad((y * probe).sum(), [x], create_graph=True)
        ggx, = torch.autograd.grad((gx * x).sum(), [x])
        results.append((y.detach(), gx.detach(), ggx))
    tol = 1e-4 if dtype == torch.float32 else 1e-2
    for a, ref in zip(*results):
        assert relative_error(a.float(), ref.float()) <= tol
