"""Merging networks that share one parameter space, tensor by tensor: one registry, used by
the cocktail's averaging stage (rooted models around the root) and by ``python -m plugin
merge`` (fine-tunes around their parent).

Each method is ``fn(base, models, **params) -> tensor`` for one tensor:

* ``mean``: the equal-weight average of ``base`` and every model.
* ``task-arithmetic``: base + scale * sum_j w_j (theta_j - base); weights default to
  1/(N+1) each, so scale 1 reproduces ``mean``.
* ``ties``: TIES-merging (Yadav et al. 2023): keep the largest ``density`` fraction of each
  task vector, elect a sign per element by the summed trimmed vectors, average only the
  entries that agree with it.
* ``dare``: DARE (Yu et al. 2024): drop each task-vector entry with probability ``drop``,
  rescale the survivors by 1/(1 - drop), then task arithmetic. ``drop`` 0 is task arithmetic.
* ``slerp``: spherical interpolation between ``base`` and one model at ``t``.

Buffers that are not weights (resampling filters, constant noise inputs; in alias-free
StyleGAN3 generators the up/down filters and the Fourier input's ``freqs``, ``phases`` and user
``transform``) are copied from the base, not merged: they are constants, and averaging
identical constants only adds rounding. Unknown parameters are an error, never ignored.

Alias-free generators are only merged when every input holds the base's Fourier features
(``synthesis.input.freqs``/``phases``, compared exactly): those are fixed random draws that
the layers were trained on, shared by fine-tunes of one parent and by nothing else; otherwise
``MergeError``. Each layer's ``magnitude_ema`` (the running mean square of its input, which
the layer divides by) is a statistic, not a weight: it is merged by the method's linear part
(``mean``: the mean; ``task-arithmetic``, ``ties`` and ``dare``: task arithmetic with the
same weights and scale, no trimming or dropping, which are meant for many-entry weight
deltas, not one number; ``slerp``: linear interpolation at ``t``), the first-order estimate of
the merged layer's input statistic, kept positive. Training the result (the cocktail's merge
stage) tracks it afresh.
"""
import copy
import inspect
from dataclasses import dataclass

import torch

from .errors import MergeError
from .layouts import fourier_mismatch

COPIED_BUFFERS = ('resample_filter', 'noise_const', 'up_filter', 'down_filter', 'freqs', 'phases', 'transform')
STATISTICS = ('magnitude_ema',)      # merged by the method's linear part (see above)


@dataclass(frozen=True)
class MergeParam:
    """A parameter some merge methods take (their keyword argument). Its default is the
    method's own (its signature): one place. Command lines generate their flags from these
    declarations (plugin.cli_flags.merge_param_options)."""
    name: str
    kind: str           # 'float', 'int' or 'floats' (comma-separated numbers)
    help: str


PARAMS = (
    MergeParam('weights', 'floats', 'task-vector weight per model, comma-separated'),
    MergeParam('scale', 'float', 'scale of the merged task vector'),
    MergeParam('density', 'float', 'fraction of each task vector kept'),
    MergeParam('drop', 'float', 'drop probability of task-vector entries'),
    MergeParam('t', 'float', 'position between the two models'),
    MergeParam('seed', 'int', 'seed of the drop masks'),
)


def _mean(base, models):
    return torch.stack([base, *models]).mean(0)


def _task_arithmetic(base, models, weights=None, scale=1.0):
    if weights is None:
        weights = [1.0 / (len(models) + 1)] * len(models)
    delta = sum(w * (t - base) for w, t in zip(weights, models))
    return base + scale * delta


def _ties(base, models, density=0.2, scale=1.0):
    deltas = torch.stack([t - base for t in models]).float()
    flat = deltas.reshape(len(models), -1)
    k = max(1, int(round(density * flat.shape[1])))
    if k < flat.shape[1]:
        thresh = flat.abs().kthvalue(flat.shape[1] - k + 1, dim=1, keepdim=True).values
        flat = torch.where(flat.abs() >= thresh, flat, torch.zeros_like(flat))
    sign = torch.sign(flat.sum(0))
    agree = (torch.sign(flat) == sign) & (flat != 0)
    merged = (flat * agree).sum(0) / agree.sum(0).clamp(min=1)
    return base + scale * merged.reshape(base.shape).to(base.dtype)


def _dare(base, models, drop=0.9, weights=None, scale=1.0, seed=0, generator=None):
    # One generator for the whole merge (passed by merge_state_dicts), so every tensor gets
    # its own mask and the result is reproducible for a seed.
    generator = generator if generator is not None else torch.Generator().manual_seed(seed)
    rescaled = []
    for t in models:
        delta = t - base
        if drop > 0:
            keep = torch.rand(delta.shape, generator=generator) >= drop
            delta = torch.where(keep, delta / (1 - drop), torch.zeros_like(delta))
        rescaled.append(base + delta)
    return _task_arithmetic(base, rescaled, weights, scale)


def _slerp(base, models, t=0.5):
    if len(models) != 1:
        raise ValueError(f'slerp merges two models (a base and one other); got {len(models) + 1}')
    a, b = base.reshape(-1).double(), models[0].reshape(-1).double()
    na, nb = a.norm(), b.norm()
    if na < 1e-12 or nb < 1e-12:
        return torch.lerp(base, models[0], t)
    cos = torch.clamp((a / na) @ (b / nb), -1, 1)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-6:                      # (nearly) parallel: linear interpolation
        return torch.lerp(base, models[0], t)
    so = torch.sin(omega)
    out = (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b
    return out.reshape(base.shape).to(base.dtype)


MERGE_METHODS = {'mean': _mean, 'task-arithmetic': _task_arithmetic, 'ties': _ties, 'dare': _dare,
                 'slerp': _slerp}
# Methods whose result is defined relative to a base (a parent's task vectors).
TASK_VECTOR_METHODS = ('task-arithmetic', 'ties', 'dare')


def method_params(method):
    """The parameters ``method`` takes, with their defaults."""
    sig = inspect.signature(MERGE_METHODS[method])
    return {n: p.default for n, p in list(sig.parameters.items())[2:] if n != 'generator'}


def param_defaults(name):
    """{method: its default} for every method that takes parameter ``name``."""
    return {m: method_params(m)[name] for m in MERGE_METHODS if name in method_params(m)}


def check_params(method, params):
    if method not in MERGE_METHODS:
        raise ValueError(f'unknown merge method {method!r}; choose from {", ".join(MERGE_METHODS)}')
    unknown = sorted(set(params) - set(method_params(method)))
    if unknown:
        takes = ', '.join(method_params(method)) or 'no parameters'
        raise ValueError(f'merge method {method!r} does not take {", ".join(unknown)} (it takes {takes})')


def _statistic(method, base, models, params):
    """A running statistic (magnitude_ema) merged by the method's linear part, kept positive."""
    if method == 'slerp':
        out = torch.lerp(base, models[0], params.get('t', 0.5))
    elif method == 'mean':
        out = _mean(base, models)
    else:
        weights = params.get('weights')
        if method == 'ties' and weights is None:
            weights = [1.0 / len(models)] * len(models)     # TIES averages the (agreeing) task vectors
        out = _task_arithmetic(base, models, weights, params.get('scale', 1.0))
    return out.clamp(min=1e-8)


def merge_state_dicts(base, others, method='mean', **params):
    """Merged state dict: every floating tensor merged with ``method``, constants copied,
    statistics merged by the method's linear part; ``MergeError`` for alias-free inputs whose
    Fourier features differ."""
    check_params(method, params)
    mismatch = fourier_mismatch([base, *others], ['the base'] + [f'model {i + 1}' for i in range(len(others))])
    if mismatch:
        raise MergeError(mismatch)
    fn = MERGE_METHODS[method]
    if method == 'dare':
        params = dict(params, generator=torch.Generator().manual_seed(int(params.get('seed', 0))))
    out = {}
    for name, value in base.items():
        last = name.rsplit('.', 1)[-1]
        if last in COPIED_BUFFERS or not value.is_floating_point():
            out[name] = value.clone()
        elif last in STATISTICS:
            out[name] = _statistic(method, value, [o[name] for o in others], params)
        else:
            out[name] = fn(value, [o[name] for o in others], **params)
    return out


def merge_modules(base, others, method='mean', **params):
    """A copy of module ``base`` holding the merge of its tensors with those of ``others``."""
    merged = copy.deepcopy(base)
    state = merge_state_dicts(base.state_dict(), [o.state_dict() for o in others], method, **params)
    merged.load_state_dict(state)
    return merged
