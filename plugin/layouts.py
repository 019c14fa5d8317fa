"""What the training-free tools and the cocktail need to know about a generator's layout,
beyond its tensor names: which synthesis resolution a tensor belongs to, whether two alias-free
(StyleGAN3) generators share their Fourier features, and whether they share a design.

Two layouts exist:

* **StyleGAN2** (stylegan2-ada's ``training.networks`` and the stylegan3 repo's
  ``training.networks_stylegan2``, identical tensor names): blocks ``synthesis.b<res>.*``; a
  tensor's resolution is its block's.
* **Alias-free** (the stylegan3 repo's ``training.networks_stylegan3``, -T and -R): a Fourier
  input ``synthesis.input`` and layers ``synthesis.L<idx>_<size>_<channels>``. Several layers
  share one sampling rate (a 16 px generator samples every layer at 16; a 1024 px one keeps 16
  for its first layers), so the sampling rate does not order them. Their **cutoff** does: it
  grows geometrically from layer to layer, and a layer's output holds no content above it. A
  layer's resolution is therefore **2 x its output cutoff** (``out_cutoff``), the resolution
  that just holds its content, as a StyleGAN2 block at resolution r holds content up to r/2:
  the input's is 2 x its bandwidth (4 by default), ToRGB's and the critically sampled layers'
  the image resolution. Values between powers of two are kept as they are (a 16 px generator's
  layers are at 4, 5.7, 8, 11.3, 16, ...), so "up to R" is well defined for any R.

Layouts are read from the modules (duck typing: ``synthesis.layer_names`` and
``synthesis.input``), so a real checkout's classes work the same as the embedded host's.
"""
import inspect
import re

import torch

_BLOCK = re.compile(r'^synthesis\.b(\d+)\.')

# The Fourier features of an alias-free generator: fixed random draws at construction, never
# trained. Layers downstream are trained on *these* features: two generators with different
# draws (independently initialised) have layers that do not correspond.
FOURIER_BUFFERS = ('synthesis.input.freqs', 'synthesis.input.phases')

def is_alias_free(G):
    """True for an alias-free (StyleGAN3-T/-R) generator."""
    return is_alias_free_synthesis(getattr(G, 'synthesis', None))


def is_alias_free_synthesis(synthesis):
    """True for an alias-free (StyleGAN3-T/-R) synthesis network."""
    return hasattr(synthesis, 'layer_names') and hasattr(synthesis, 'input')


def stylegan2_resolution(name):
    """A StyleGAN2-layout G tensor's block resolution, 'mapping', or None."""
    if name.startswith('mapping.'):
        return 'mapping'
    m = _BLOCK.match(name)
    return int(m.group(1)) if m else None


def tensor_resolutions(G):
    """A function: G's tensor name -> its synthesis resolution (a number), 'mapping', or None
    (a tensor of neither), for either layout (see the module docstring)."""
    if not is_alias_free(G):
        return stylegan2_resolution
    prefixes = {'synthesis.input.': _round(2 * float(G.synthesis.input.bandwidth))}
    for name in G.synthesis.layer_names:
        prefixes[f'synthesis.{name}.'] = _round(2 * float(getattr(G.synthesis, name).out_cutoff))

    def of(name):
        if name.startswith('mapping.'):
            return 'mapping'
        prefix = name[:name.index('.', len('synthesis.')) + 1] if name.startswith('synthesis.') else ''
        return prefixes.get(prefix)
    return of


def _round(res):
    """Resolutions from the geometric cutoff schedule, rounded so that 8.000000000001 is 8."""
    nearest = round(res)
    return nearest if abs(res - nearest) < 1e-6 else round(res, 6)


def swap_resolutions(G):
    """The resolutions a swap can be placed at (0 aside): powers of two from 4 to the image's."""
    res, out = 4, []
    while res <= G.img_resolution:
        out.append(res)
        res *= 2
    return out


def fourier_mismatch(states, labels):
    """None when every state dict (name -> tensor) holds exactly the first one's Fourier
    features (or none has any: not alias-free), else one line naming the first that differs."""
    for name in FOURIER_BUFFERS:
        if name not in states[0]:
            continue
        for state, label in zip(states[1:], labels[1:]):
            if name not in state or not torch.equal(state[name], states[0][name]):
                return (f'{label} has other Fourier features ({name}) than {labels[0]}: alias-free (StyleGAN3) '
                        'generators can only be averaged when they are fine-tunes of one parent, whose fixed random '
                        'frequencies and phases they keep (fine-tuning, or the cocktail\'s rooting, from one parent '
                        'makes that true); independently initialised ones have their own, and their layers do not '
                        'correspond')
    return None


_LAYER_DESIGN = ('is_torgb', 'is_critically_sampled', 'in_sampling_rate', 'out_sampling_rate', 'in_cutoff',
                 'out_cutoff', 'in_half_width', 'out_half_width', 'conv_kernel', 'conv_clamp', 'down_radial',
                 'in_size', 'out_size')


def design(G):
    """An alias-free generator's design as {what: value}: the input's band and grid, every
    layer's rates, cutoffs, transition bands, sizes, kernel, clamp and filter shape, and the
    output scale. These decide what the tensors compute, and tensor shapes need not show them
    (an output scale, a cutoff schedule). {} for a StyleGAN2 layout (its tensors say it all)."""
    if not is_alias_free(G):
        return {}
    s = G.synthesis
    out = {'output_scale': _value(getattr(s, 'output_scale', None))}
    for attr in ('bandwidth', 'sampling_rate', 'size'):
        out[f'input.{attr}'] = _value(getattr(s.input, attr, None))
    for name in s.layer_names:
        layer = getattr(s, name)
        for attr in _LAYER_DESIGN:
            out[f'{name}.{attr}'] = _value(getattr(layer, attr, None))
    return out


def _value(v):
    if hasattr(v, 'tolist'):
        v = v.tolist()
    return round(v, 9) if isinstance(v, float) else v


def design_differences(a, b):
    """What differs between the designs of generators ``a`` and ``b`` (see design), as
    'what: x vs y' strings, [] when nothing does."""
    da, db = design(a), design(b)
    return [f'{k}: {da.get(k, "missing")} vs {db.get(k, "missing")}' for k in sorted(set(da) | set(db))
            if da.get(k) != db.get(k)]


# A generator's own constructor arguments; the rest of a flattened kwargs dict is its synthesis's.
_GENERATOR_KEYS = ('class_name', 'z_dim', 'c_dim', 'w_dim', 'img_resolution', 'img_channels', 'mapping_kwargs')


def synthesis_class_and_kwargs(G_kwargs):
    """(class path, kwargs) of the synthesis network of the generator built from ``G_kwargs``
    (its constructor kwargs with ``class_name``): stylegan2-ada nests them in
    ``synthesis_kwargs``; the stylegan3 repo's two generators take them flattened. The class
    is the generator module's own ``SynthesisNetwork``."""
    module = G_kwargs.get('class_name', 'training.networks.Generator').rsplit('.', 1)[0]
    if 'synthesis_kwargs' in G_kwargs:
        kwargs = dict(G_kwargs['synthesis_kwargs'])
    else:
        kwargs = {k: v for k, v in G_kwargs.items() if k not in _GENERATOR_KEYS}
    return f'{module}.SynthesisNetwork', kwargs


def takes_update_emas(mapping):
    """Whether ``mapping`` follows the stylegan3 repo's convention: its running means (``w_avg``,
    the alias-free layers' magnitude EMAs) move only when called with ``update_emas=True``; the
    stylegan2-ada convention is ``skip_w_avg_update`` (``w_avg`` follows every training-mode
    call). A wrapper of another mapping (a miner, a hyper mapping) says so itself through a
    ``takes_update_emas`` attribute: its own signature takes ``**kwargs``."""
    explicit = getattr(getattr(mapping, 'module', mapping), 'takes_update_emas', None)   # (inside DDP too)
    if explicit is not None:
        return bool(explicit)
    try:
        params = inspect.signature(mapping.forward if hasattr(mapping, 'forward') else mapping).parameters
    except (TypeError, ValueError):
        return False
    return 'update_emas' in params and 'skip_w_avg_update' not in params
