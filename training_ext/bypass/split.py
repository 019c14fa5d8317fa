"""Running a host generator or discriminator in two parts, split at a resolution R.

Works on any network with the host's layout (``synthesis.b{res}`` blocks with ``num_conv`` /
``num_torgb``, ``D.b{res}`` blocks and the ``D.b4`` epilogue), so it runs on the embedded
host's networks and on a real checkout's alike.

Generator: ``low`` = blocks b4..bR (output: features at R, and the partial RGB image of a
skip generator), ``high`` = blocks above R (the frozen decoder).
Discriminator: ``high`` = blocks above R (image -> features at R; the frozen encoder),
``low`` = blocks bR..b8 and the epilogue (features at R -> score).

A feature map at R travels as one tensor: ``cat(x, img)`` along channels when there is an
image, so that caches and critics deal with one shape.
"""
import torch


def check_split_resolution(img_resolution, res):
    if res < 4 or res >= img_resolution or res & (res - 1):
        raise ValueError(f'the bypass resolution must be a power of two from 4 to {img_resolution // 2} '
                         f'for a {img_resolution}px network, got {res}')


def _synthesis_blocks(synthesis):
    """(res, block, first w index) for every block, the way the host's synthesis walks them."""
    out, w_idx = [], 0
    for res in synthesis.block_resolutions:
        block = getattr(synthesis, f'b{res}')
        out.append((res, block, w_idx))
        w_idx += block.num_conv
    return out


def g_modules(synthesis, res, high):
    """The synthesis blocks above (high=True) or up to (high=False) resolution ``res``."""
    return [b for r, b, _ in _synthesis_blocks(synthesis) if (r > res) == high]


def _run(synthesis, x, img, ws, lo, hi, **kwargs):
    for res, block, w_idx in _synthesis_blocks(synthesis):
        if lo < res <= hi:
            x, img = block(x, img, ws.narrow(1, w_idx, block.num_conv + block.num_torgb), **kwargs)
    return x, img


def synthesis_low(synthesis, ws, res, **kwargs):
    """Features at ``res`` (one tensor, see the module doc) from blocks b4..b{res}."""
    x, img = _run(synthesis, None, None, ws.to(torch.float32), 0, res, **kwargs)
    x = x.to(torch.float32)
    return x if img is None else torch.cat([x, img.to(torch.float32)], dim=1)


def synthesis_high(synthesis, h, ws, res, img_channels, has_img, **kwargs):
    """The image from features at ``res``, through the blocks above ``res``."""
    x, img = (h[:, :-img_channels], h[:, -img_channels:]) if has_img else (h, None)
    _, img = _run(synthesis, x, img, ws.to(torch.float32), res, synthesis.img_resolution, **kwargs)
    return img


def d_high(D, img, res, force_fp32=True):
    """Discriminator features at ``res`` (cat(x, downsampled image) for a skip D)."""
    x = None
    for r in D.block_resolutions:
        if r > res:
            x, img = getattr(D, f'b{r}')(x, img, force_fp32=force_fp32)
    x = x.to(torch.float32)
    return x if img is None else torch.cat([x, img.to(torch.float32)], dim=1)


def d_low(D, x, img, c, res, force_fp32=True):
    """The discriminator's score from features ``x`` (and image ``img``, skip D) at ``res``."""
    for r in D.block_resolutions:
        if r <= res:
            x, img = getattr(D, f'b{r}')(x, img, force_fp32=force_fp32)
    cmap = D.mapping(None, c) if getattr(D, 'mapping', None) is not None else None
    return D.b4(x, img, cmap)


def g_feature_channels(synthesis, res):
    """Channels of the generator's features at ``res`` (image channels included) and whether
    an image travels with them."""
    blocks = g_modules(synthesis, res, high=False)
    last = blocks[-1]
    return int(last.conv1.weight.shape[0]), bool(last.is_last or last.architecture == 'skip')
