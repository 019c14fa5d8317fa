"""Filtered leaky ReLU: the alias-free nonlinearity of StyleGAN3 (Karras et al. 2021, sec. 3.2).

A pointwise nonlinearity creates frequencies above the Nyquist limit of the signal it acts on.
The alias-free generator therefore applies it at a temporarily higher sampling rate: upsample
with a low-pass filter, apply the (biased, scaled, clamped) leaky ReLU, low-pass again and
decimate. Per channel, in this order:

1. add the bias ``b``;
2. upsample by ``up`` (zero insertion), pad by ``padding`` (negative values crop), and convolve
   with ``fu`` scaled by ``up**2`` (so that the interpolation keeps the signal's level);
3. ``y = lrelu(y, slope) * gain``, then clamp to ``[-clamp, clamp]`` when ``clamp`` is given;
4. convolve with ``fd`` and keep every ``down``-th sample.

Both convolutions are 'valid' (each output sample's footprint lies inside its input), so the
output is ``(in * up + pad0 + pad1 - (fu_taps - 1) - (fd_taps - 1) + down - 1) // down`` wide.
A 1D filter is separable (applied along x, then y); a 2D one (StyleGAN3-R's radial filters) is
applied as is; None is the identity.

Only the pure-PyTorch reference exists (the CPU path, and the oracle a fused CUDA kernel would
be tested against); with ``impl='cuda'`` its upsampling and activation steps use the fused
upfirdn2d and bias_act kernels where those apply.
"""
import math

import torch
import torch.nn.functional as F

from . import default_impl
from .bias_act import bias_act
from .upfirdn2d import filter_size, parse_padding, upfirdn2d


def output_size(in_size, fu, fd, up, down, padding):
    """(width, height) that ``filtered_lrelu`` returns for an input of ``in_size`` = (w, h)."""
    px0, px1, py0, py1 = parse_padding(padding)
    (fuw, fuh), (fdw, fdh) = filter_size(fu), filter_size(fd)
    w = (in_size[0] * up + px0 + px1 - (fuw - 1) - (fdw - 1) + down - 1) // down
    h = (in_size[1] * up + py0 + py1 - (fuh - 1) - (fdh - 1) + down - 1) // down
    return w, h


def filtered_lrelu(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=math.sqrt(2), slope=0.2, clamp=None,
                   flip_filter=False, impl=None):
    """Bias, upsample with ``fu``, leaky ReLU times ``gain``, clamp, downsample with ``fd``.

    ``x`` is NCHW; ``b`` has one value per channel (or None); ``up``/``down`` are integer
    factors; ``padding`` is an int, (x, y) or (x0, x1, y0, y1), applied after zero insertion;
    ``slope`` is the leaky ReLU's negative slope (1: linear); ``flip_filter`` correlates with
    the filters instead of convolving. ``impl``: 'ref', 'cuda' or None (the project's policy,
    ``torch_utils_ext.ops.default_impl``), passed on to the steps.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f'filtered_lrelu expects an NCHW tensor, got {getattr(x, "shape", type(x))}')
    if not (isinstance(up, int) and up >= 1 and isinstance(down, int) and down >= 1):
        raise ValueError(f'up and down must be integers >= 1, got {up!r} and {down!r}')
    if b is not None and tuple(b.shape) != (x.shape[1],):
        raise ValueError(f'bias must have shape [{x.shape[1]}], got {tuple(b.shape)}')
    if not float(gain) > 0:
        raise ValueError(f'gain must be positive, got {gain!r}')
    if not float(slope) >= 0:
        raise ValueError(f'slope must be >= 0, got {slope!r}')
    if clamp is not None and not float(clamp) >= 0:
        raise ValueError(f'clamp must be None or >= 0, got {clamp!r}')
    return _filtered_lrelu_ref(x, fu, fd, b, up, down, parse_padding(padding), float(gain), float(slope),
                               None if clamp is None else float(clamp), bool(flip_filter), impl or default_impl())


def _filtered_lrelu_ref(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter, impl='ref'):
    if b is not None:
        x = x + b.to(x.dtype).reshape(1, -1, 1, 1)
    if impl == 'cuda' and x.is_cuda:
        x = upfirdn2d(x, fu, up=up, padding=list(padding), gain=up ** 2, flip_filter=flip_filter, impl=impl)
    else:
        x = _upsample(x, fu, up, padding, flip_filter)
    # slope 1 is the identity (ToRGB): bias_act's 'linear' skips the no-op leaky ReLU.
    if slope == 1:
        x = bias_act(x, act='linear', gain=gain, clamp=clamp, impl=impl)
    else:
        x = bias_act(x, act='lrelu', alpha=slope, gain=gain, clamp=clamp, impl=impl)
    return _downsample(x, fd, down, flip_filter)


def _upsample(x, f, up, padding, flip_filter):
    """upfirdn2d(x, f, up=up, padding=padding, gain=up**2) without multiplying by the inserted
    zeros: a strided transposed convolution computes the full convolution of the zero-inserted
    signal (up times fewer products), and the padding becomes a crop or pad of its output."""
    if f is None or up == 1:
        return upfirdn2d(x, f, up=up, padding=list(padding), gain=up ** 2, flip_filter=flip_filter, impl='ref')
    c = x.shape[1]
    px0, px1, py0, py1 = padding
    f = f.to(x.dtype) * up ** f.ndim                 # the gain up**2: up per pass when separable
    if flip_filter:
        f = f.flip(list(range(f.ndim)))              # the transposed conv convolves: flip to correlate
    # Output sample o of the padded 'valid' convolution is sample o + taps - 1 - pad0 of the full one.
    if f.ndim == 2:
        kh, kw = f.shape
        x = F.conv_transpose2d(x, f[None, None].expand(c, 1, kh, kw), stride=up, groups=c)
        return F.pad(x, [px0 - (kw - 1), up + px1 - kw, py0 - (kh - 1), up + py1 - kh])
    k = f.shape[0]
    x = F.conv_transpose2d(x, f.reshape(1, 1, 1, k).expand(c, 1, 1, k), stride=(1, up), groups=c)
    x = F.pad(x, [px0 - (k - 1), up + px1 - k])
    x = F.conv_transpose2d(x, f.reshape(1, 1, k, 1).expand(c, 1, k, 1), stride=(up, 1), groups=c)
    return F.pad(x, [0, 0, py0 - (k - 1), up + py1 - k])


def _downsample(x, f, down, flip_filter):
    """upfirdn2d(x, f, down=down), computing only the samples that are kept: a strided
    depthwise convolution instead of a full one followed by slicing."""
    if f is None:
        return x[:, :, ::down, ::down] if down > 1 else x
    if down == 1:
        return upfirdn2d(x, f, flip_filter=flip_filter, impl='ref')
    c = x.shape[1]
    f = f.to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))      # F.conv2d correlates: flip for a true convolution
    if f.ndim == 2:
        return F.conv2d(x, f[None, None].expand(c, 1, *f.shape), stride=down, groups=c)
    x = F.conv2d(x, f.reshape(1, 1, 1, -1).expand(c, 1, 1, f.shape[0]), stride=(1, down), groups=c)
    return F.conv2d(x, f.reshape(1, 1, -1, 1).expand(c, 1, f.shape[0], 1), stride=(down, 1), groups=c)
