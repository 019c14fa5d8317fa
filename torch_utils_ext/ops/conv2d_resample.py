"""2D convolution combined with FIR up/downsampling.

``conv2d_resample`` computes, in exact arithmetic, the same thing as the simple chain
``upfirdn2d(up, pad) -> conv2d -> upfirdn2d(down)`` (``_conv2d_resample_generic``), but picks
a cheaper but equivalent ordering when it can: filter-then-strided-conv for downsampling,
transposed-strided-conv-then-filter for upsampling, and resampling before/after 1x1 convs.
The generic chain is kept as the oracle the fast paths are tested against.
"""
import torch.nn.functional as F

from .upfirdn2d import filter_size, parse_padding, parse_scaling, upfirdn2d


def _conv(x, w, stride=1, padding=0, groups=1, transpose=False, flip_weight=True):
    # F.conv2d is a correlation; flip_weight=False turns it into a true convolution.
    if not flip_weight:
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def _resampling_padding(f, up, down, padding):
    """Padding that makes the chain output ``size * up / down`` for a 'same'-padded kernel."""
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    return px0, px1, py0, py1


def _check(x, w, f, up, down, groups):
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError('conv2d_resample expects NCHW input and OIHW weight')
    if (up > 1 or down > 1) and f is None:
        raise ValueError('up/downsampling needs a resampling filter')
    if x.shape[1] != w.shape[1] * groups:
        raise ValueError(f'input has {x.shape[1]} channels, weight expects {w.shape[1] * groups}')


def conv2d_resample(x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True, flip_filter=False):
    """Convolve ``x`` with ``w``, optionally up/downsampling (integer factors, same on both axes)."""
    up = parse_scaling(up)[0]
    down = parse_scaling(down)[0]
    _check(x, w, f, up, down, groups)
    out_ch, in_per_group, kh, kw = w.shape
    px0, px1, py0, py1 = _resampling_padding(f, up, down, padding)

    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)

    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up ** 2, flip_filter=flip_filter)

    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    if up > 1:
        # A transposed strided convolution is a convolution of the zero-inserted input: it
        # saves the multiply-adds on the inserted zeros. Its weight is (in, out/groups, kh, kw).
        if groups == 1:
            wt = w.transpose(0, 1)
        else:
            wt = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
            wt = wt.reshape(groups * in_per_group, out_ch // groups, kh, kw)
        # The transposed conv yields the 'full' output; the rest of the padding (or crop)
        # moves to the filter step. Cropping common to both sides is done by the conv itself.
        px0, px1 = px0 - (kw - 1), px1 - (kw - up)
        py0, py1 = py0 - (kh - 1), py1 - (kh - up)
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv(x, wt, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2, flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x

    if up == 1 and down == 1 and px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)

    return _conv2d_resample_generic(x, w, f, up, down, (px0, px1, py0, py1), groups, flip_weight, flip_filter)


def _conv2d_resample_generic(x, w, f, up, down, pad, groups, flip_weight, flip_filter):
    x = upfirdn2d(x, f if up > 1 else None, up=up, padding=list(pad), gain=up ** 2, flip_filter=flip_filter)
    x = _conv(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x


def conv2d_resample_generic(x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True, flip_filter=False):
    """The unoptimised chain, for tests: same contract as ``conv2d_resample``."""
    up = parse_scaling(up)[0]
    down = parse_scaling(down)[0]
    _check(x, w, f, up, down, groups)
    pad = _resampling_padding(f, up, down, padding)
    return _conv2d_resample_generic(x, w, f, up, down, pad, groups, flip_weight, flip_filter)
