"""Upsample, pad, FIR-filter, downsample (upfirdn) on NCHW tensors.

The reference is built from plain torch ops: zero insertion for upsampling, ``F.pad`` (or
slicing, for negative padding), a depthwise convolution with the flipped filter (so the
filter is applied as a true convolution, as signal processing defines FIR filtering), then
strided slicing for downsampling.
"""
import os

import torch
import torch.nn.functional as F

from torch_utils_ext import custom_ops
from torch_utils_ext.ops import default_impl

_SOURCES = [os.path.join(os.path.dirname(__file__), 'cuda', f) for f in ('upfirdn2d.cpp', 'upfirdn2d.cu')]


def _pair(v, name):
    if isinstance(v, int):
        return v, v
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(i, int) for i in v):
        return int(v[0]), int(v[1])
    raise ValueError(f'{name} must be an int or a pair of ints, got {v!r}')


def parse_scaling(s):
    sx, sy = _pair(s, 'scaling factor')
    if sx < 1 or sy < 1:
        raise ValueError(f'scaling factors must be >= 1, got {s!r}')
    return sx, sy


def parse_padding(p):
    """Return (x0, x1, y0, y1) from an int, a pair (x, y) or a quadruple."""
    if isinstance(p, int):
        return p, p, p, p
    if isinstance(p, (list, tuple)) and all(isinstance(i, int) for i in p):
        if len(p) == 2:
            return p[0], p[0], p[1], p[1]
        if len(p) == 4:
            return tuple(int(i) for i in p)
    raise ValueError(f'padding must be an int, a pair or a quadruple of ints, got {p!r}')


def filter_size(f):
    """(width, height) of a 1D (separable) or 2D filter; (1, 1) for None."""
    if f is None:
        return 1, 1
    if f.ndim == 2:
        return f.shape[-1], f.shape[0]
    return f.shape[0], f.shape[0]


def setup_filter(f, normalize=True, flip_filter=False, gain=1, separable=None, device=None):
    """Make a float32 FIR filter tensor from a list, as the host's ``setup_filter``.

    A 1D list becomes the outer product with itself (a 2D filter) unless it is long enough
    (>= 8 taps) to be kept separable; the filter is normalised to sum 1 and scaled so that
    ``gain`` applies once over both axes.
    """
    f = torch.as_tensor(1.0 if f is None else f, dtype=torch.float32, device=device)
    if f.ndim == 0:
        f = f.reshape(1)
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError('filter must be a non-empty 1D or 2D list')
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    return f * (gain ** (f.ndim / 2))


def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, impl=None):
    """Upsample by zero insertion, pad, convolve with ``f``, keep every ``down``-th sample.

    ``impl='cuda'`` runs the fused kernel (``cuda/upfirdn2d.cu``) on CUDA tensors, with every
    order of derivative (the op is linear: its adjoint is itself with up/down swapped);
    otherwise, or without a build, the reference.
    """
    if x.ndim != 4:
        raise ValueError(f'upfirdn2d expects an NCHW tensor, got shape {tuple(x.shape)}')
    impl = impl or default_impl()           # None: the project's policy (see torch_utils_ext.ops)
    if impl == 'cuda' and custom_ops.on_kernel_device(x) and _plugin() is not None:
        if f is None:
            f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
        params = (*parse_scaling(up), *parse_scaling(down), *parse_padding(padding), bool(flip_filter), float(gain))
        return _UpFirDn2dCuda.apply(x, f.to(device=x.device, dtype=torch.float32).contiguous(), params)
    return _upfirdn2d_ref(x, f, up, down, padding, flip_filter, gain)


def _plugin():
    return custom_ops.get_plugin('upfirdn2d_plugin', _SOURCES)


def adjoint_params(params, in_shape, out_shape, f):
    """The upfirdn2d whose output is the gradient of one with ``params`` with respect to its
    input: up and down swapped, the filter flipped, the padding transposed so that the output
    has the input's size."""
    upx, upy, downx, downy, px0, px1, py0, py1, flip, gain = params
    fw, fh = filter_size(f)
    h, w = in_shape[2], in_shape[3]
    oh, ow = out_shape[2], out_shape[3]
    return (downx, downy, upx, upy,
            fw - 1 - px0, w * upx - ow * downx - upx + 1 + px0,
            fh - 1 - py0, h * upy - oh * downy - upy + 1 + py0, not flip, gain)


class _UpFirDn2dCuda(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, f, params):
        upx, upy, downx, downy, px0, px1, py0, py1, flip, gain = params
        y = _plugin().forward(x.contiguous(), f, upx, upy, downx, downy, px0, px1, py0, py1, flip, gain)
        ctx.save_for_backward(f)
        ctx.params, ctx.in_shape, ctx.out_shape = params, x.shape, y.shape
        return y

    @staticmethod
    def backward(ctx, dy):
        f, = ctx.saved_tensors
        return _UpFirDn2dCuda.apply(dy, f, adjoint_params(ctx.params, ctx.in_shape, ctx.out_shape, f)), None, None


def _upfirdn2d_ref(x, f, up, down, padding, flip_filter, gain):
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    upx, upy = parse_scaling(up)
    downx, downy = parse_scaling(down)
    px0, px1, py0, py1 = parse_padding(padding)
    n, c, h, w = x.shape

    if upx > 1 or upy > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape(n, c, h * upy, w * upx)

    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]

    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].repeat(c, 1, 1, 1), groups=c)
    else:
        x = F.conv2d(x, f.reshape(1, 1, 1, -1).expand(c, 1, 1, f.shape[0]), groups=c)
        x = F.conv2d(x, f.reshape(1, 1, -1, 1).expand(c, 1, f.shape[0], 1), groups=c)

    if downx > 1 or downy > 1:
        x = x[:, :, ::downy, ::downx]
    return x


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl=None):
    """Upsample by ``up`` with FIR filter ``f``; output size is input size times ``up``."""
    upx, upy = parse_scaling(up)
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    pad = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2,
           py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=up, padding=pad, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl=None):
    """Low-pass with FIR filter ``f`` and downsample by ``down``."""
    downx, downy = parse_scaling(down)
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    pad = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2,
           py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter, gain=gain, impl=impl)
