"""Reference ops: the fast conv/resample orderings equal the plain chain; upfirdn2d equals a
direct definition; bias_act follows its formula."""
import math

import numpy as np
import pytest
import torch

from torch_utils_ext.ops.bias_act import bias_act
from torch_utils_ext.ops.conv2d_resample import conv2d_resample, conv2d_resample_generic
from torch_utils_ext.ops.upfirdn2d import downsample2d, setup_filter, upfirdn2d, upsample2d


def upfirdn_numpy(x, f, up, down, pad):
    """Textbook definition, one channel at a time, with explicit loops over the filter."""
    n, c, h, w = x.shape
    px0, px1, py0, py1 = pad
    u = np.zeros((n, c, h * up, w * up), x.dtype)
    u[:, :, ::up, ::up] = x
    big = np.zeros((n, c, h * up + max(py0, 0) + max(py1, 0), w * up + max(px0, 0) + max(px1, 0)), x.dtype)
    big[:, :, max(py0, 0):max(py0, 0) + h * up, max(px0, 0):max(px0, 0) + w * up] = u
    big = big[:, :, max(-py0, 0): big.shape[2] - max(-py1, 0), max(-px0, 0): big.shape[3] - max(-px1, 0)]
    fh, fw = f.shape
    oh, ow = big.shape[2] - fh + 1, big.shape[3] - fw + 1
    out = np.zeros((n, c, oh, ow), x.dtype)
    for i in range(fh):
        for j in range(fw):   # true convolution: the filter is flipped
            out += f[fh - 1 - i, fw - 1 - j] * big[:, :, i:i + oh, j:j + ow]
    return out[:, :, ::down, ::down]


@pytest.mark.parametrize('up,down,pad', [(1, 1, (0, 0, 0, 0)), (2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)),
                                         (2, 2, (1, 2, 0, 3)), (1, 1, (-1, 2, 1, -2)), (3, 1, (1, 1, 1, 1))])
def test_upfirdn2d_matches_definition(up, down, pad):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    f = torch.rand(3, 4, dtype=torch.float64)          # asymmetric, to catch flips
    ours = upfirdn2d(x, f, up=up, down=down, padding=list(pad))
    ref = upfirdn_numpy(x.numpy(), f.numpy(), up, down, pad)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-12, atol=1e-12)


def test_setup_filter():
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and math.isclose(f.sum().item(), 1.0, rel_tol=1e-6)
    assert torch.equal(f, torch.outer(torch.tensor([1., 3, 3, 1]), torch.tensor([1., 3, 3, 1])) / 64)
    assert setup_filter([1] * 8).ndim == 1                      # long filters stay separable
    with pytest.raises(ValueError):
        setup_filter([])


def test_resample_sizes_and_dc_gain():
    f = setup_filter([1, 3, 3, 1])
    x = torch.ones(1, 2, 8, 8)
    up = upsample2d(x, f)
    down = downsample2d(x, f)
    assert up.shape == (1, 2, 16, 16) and down.shape == (1, 2, 4, 4)
    # Interior of a constant image stays constant: the filters have unit DC gain.
    assert torch.allclose(up[..., 2:-2, 2:-2], torch.ones(1), atol=1e-6)
    assert torch.allclose(down[..., 1:-1, 1:-1], torch.ones(1), atol=1e-6)


@pytest.mark.parametrize('k', [1, 3])
@pytest.mark.parametrize('up,down', [(1, 1), (2, 1), (1, 2)])
@pytest.mark.parametrize('groups', [1, 2])
@pytest.mark.parametrize('flip_weight', [True, False])
def test_conv2d_resample_fast_paths_equal_generic_chain(k, up, down, groups, flip_weight):
    torch.manual_seed(1)
    f = setup_filter([1, 3, 3, 1]).double()
    x = torch.randn(2, 4 * groups, 8, 8, dtype=torch.float64)
    w = torch.randn(6 * groups, 4, k, k, dtype=torch.float64)
    kw = dict(f=f, up=up, down=down, padding=k // 2, groups=groups, flip_weight=flip_weight)
    fast = conv2d_resample(x, w, **kw)
    slow = conv2d_resample_generic(x, w, **kw)
    assert fast.shape == (2, 6 * groups, 8 * up // down, 8 * up // down)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-10)


def test_conv2d_resample_gradients_match_generic():
    torch.manual_seed(2)
    f = setup_filter([1, 3, 3, 1]).double()
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    g1 = torch.autograd.grad(conv2d_resample(x, w, f=f, up=2, padding=1).square().sum(), [x, w])
    g2 = torch.autograd.grad(conv2d_resample_generic(x, w, f=f, up=2, padding=1).square().sum(), [x, w])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


def test_bias_act_formula():
    x = torch.tensor([[-2.0, 0.5], [3.0, -0.1]])
    b = torch.tensor([1.0, -1.0])
    y = bias_act(x, b, act='lrelu', clamp=1.0)
    v = x + b
    expected = (torch.where(v >= 0, v, 0.2 * v) * math.sqrt(2)).clamp(-1, 1)
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(bias_act(x, None, act='linear', gain=3.0), 3 * x)
    with pytest.raises(ValueError, match='unknown activation'):
        bias_act(x, act='gelu2')


def test_conv2d_resample_rejects_mismatched_channels():
    with pytest.raises(ValueError, match='channels'):
        conv2d_resample(torch.zeros(1, 3, 4, 4), torch.zeros(2, 4, 3, 3), padding=1)


@pytest.mark.parametrize('filt', ['4x4', '4', '3x5', '8'])
def test_upfirdn2d_adjoint_is_the_gradient(filt):
    """The fused op's backward is upfirdn2d with adjoint_params: check <A x, g> == <x, A* g>
    with the reference, in float64, over ups, downs, paddings (crops too) and flips."""
    from torch_utils_ext.ops.upfirdn2d import _upfirdn2d_ref, adjoint_params, parse_padding, parse_scaling
    torch.manual_seed(0)
    f = torch.rand([int(s) for s in filt.split('x')], dtype=torch.float64)
    for up, down, pad, flip in [(1, 1, (1, 2, 1, 2), False), (2, 1, (2, 1, 2, 1), False), (1, 2, (1, 1, 1, 1), True),
                                (2, 2, (-1, 3, 0, 2), False), ((1, 2), (2, 1), (2, 2, 1, 3), True)]:
        x = torch.randn(2, 3, 9, 11, dtype=torch.float64)
        params = (*parse_scaling(up), *parse_scaling(down), *parse_padding(pad), flip, 1.7)
        y = _upfirdn2d_ref(x, f, up, down, pad, flip, 1.7)
        g = torch.randn_like(y)
        a = adjoint_params(params, x.shape, y.shape, f)
        dx = _upfirdn2d_ref(g, f, a[0:2], a[2:4], a[4:8], a[8], a[9])
        assert dx.shape == x.shape
        assert torch.allclose((y * g).sum(), (x * dx).sum(), rtol=1e-10)
