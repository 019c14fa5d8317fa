"""Layer-swap blending of two generators (the "toonify" blend, Pinkney & Adler 2020,
"Resolution Dependent GAN Interpolation for Controllable Image Synthesis Between Domains").

Synthesis blocks at resolutions up to ``swap_res`` come from A, those above from B; with a
blend width W > 0, every block is a mix (1 - b) A + b B with b = sigmoid((log2 r - log2 R -
1/2) / W), which tends to the hard swap as W -> 0. ``swap_res`` 0 takes every block from B.
The mapping network (with its w_avg) comes whole from A (``mapping='a'``) or B; the
discriminator is A's. Blending only makes sense between fine-tunes of one parent: their
layers still correspond. Unrelated models give noise, so the per-block distance is measured
and reported, with a warning when it looks like unrelated models.

Both generator layouts blend (``plugin.layouts``): StyleGAN2 (stylegan2-ada's and the stylegan3
repo's ``networks_stylegan2``) by block resolution, alias-free StyleGAN3-T/-R by each layer's
band limit (2 x its output cutoff: the input is at 4, ToRGB at the image resolution). In an
alias-free generator the Fourier features (``synthesis.input``'s freqs, phases and the user
``transform``) are never mixed: they come whole from the model whose input layer is taken
(the layers above were trained on those features). Each layer's ``magnitude_ema`` (the running
mean square of its input, by which the layer divides it) comes with the layer's weights, from
the same model (mixed as they are in a soft blend): the weights were trained on inputs
normalised by that model's statistic, so the pair stays together.
"""
import math

import torch

from .layouts import stylegan2_resolution
from .pickles import NetworkPickleError

UNRELATED_DISTANCE = 1.0     # relative distance of two independently initialised layers is ~1.4
INPUT_CONSTANTS = ('synthesis.input.freqs', 'synthesis.input.phases', 'synthesis.input.transform')


# The resolution of a StyleGAN2-layout tensor (any layout: plugin.layouts.tensor_resolutions(G)).
block_resolution = stylegan2_resolution


def check_swap_res(swap_res, img_resolution):
    allowed = [0] + [2 ** k for k in range(2, int(math.log2(img_resolution)) + 1)]
    if swap_res not in allowed:
        raise NetworkPickleError(f'--swap-res {swap_res}: must be one of {", ".join(map(str, allowed))} '
                                 f'(0: every block from B; {img_resolution}: every block from A)')


def b_share(res, swap_res, width):
    """How much of B block ``res`` receives: 0 or 1 for a hard swap, a sigmoid for width > 0."""
    if swap_res <= 0:
        return 1.0
    if width == 0:
        return 1.0 if res > swap_res else 0.0
    return 1.0 / (1.0 + math.exp(-(math.log2(res) - math.log2(swap_res) - 0.5) / width))


def blend_states(a, b, swap_res, width=0.0, mapping='a', resolution_of=block_resolution):
    """Blended generator state dict from the state dicts ``a`` and ``b`` (``swap_res`` may fall
    between resolutions, for a continuous sweep); ``resolution_of``: tensor name -> resolution
    (plugin.layouts.tensor_resolutions of the generator; default: a StyleGAN2 layout)."""
    if width < 0:
        raise NetworkPickleError(f'--blend-width {width}: must be >= 0')
    if mapping not in ('a', 'b'):
        raise NetworkPickleError(f"--mapping {mapping!r}: must be 'a' or 'b'")
    out = {}
    for name, ta in a.items():
        res = resolution_of(name)
        if res is None:
            raise NetworkPickleError(f'cannot blend: generator tensor {name} belongs to no synthesis resolution '
                                     '(a StyleGAN2 or alias-free StyleGAN3 layout is expected)')
        if res == 'mapping':
            out[name] = (a if mapping == 'a' else b)[name].clone()
            continue
        share = b_share(res, swap_res, width)
        if not ta.is_floating_point() or share in (0.0, 1.0) or name in INPUT_CONSTANTS:
            out[name] = (b if share >= 0.5 else a)[name].clone()
        else:
            out[name] = torch.lerp(ta, b[name].to(ta.dtype), share)
    return out


def block_distances(a, b, resolution_of=block_resolution):
    """{resolution or 'mapping': ||B - A|| / ||A||} over the generator's weights."""
    sums = {}
    for name, ta in a.items():
        res = resolution_of(name)
        if res is None or not ta.is_floating_point() or not name.endswith('weight'):
            continue
        d, n = sums.get(res, (0.0, 0.0))
        sums[res] = (d + float((b[name].double() - ta.double()).square().sum()), n + float(ta.double().square().sum()))
    return {res: math.sqrt(d / n) if n > 0 else 0.0 for res, (d, n) in sums.items()}


def unrelated_warning(distances):
    """A warning line when A and B do not look like fine-tunes of one parent, else None."""
    blocks = [d for r, d in distances.items() if r != 'mapping']
    if not blocks:
        return None
    median = sorted(blocks)[len(blocks) // 2]
    if median < UNRELATED_DISTANCE:
        return None
    order = sorted(distances, key=lambda r: (r != 'mapping', 0 if r == 'mapping' else r))
    listed = ', '.join(f'{r}: {distances[r]:.2f}' if r == 'mapping' else f'{r:g}: {distances[r]:.2f}' for r in order)
    return (f'A and B do not look like fine-tunes of one parent (median relative distance per block {median:.2f}; '
            f'independent networks are ~1.4): the blend will likely be noise. Per block: {listed}')
