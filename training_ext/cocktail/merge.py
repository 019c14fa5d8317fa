"""Merging models that share one parameter space (the rooted models), tensor by tensor.

A small registry of pure functions, chosen by name (``--merge-method``):

* ``mean``: the paper's equal-weight average of the root and every rooted model.
* ``task-arithmetic``: root + scale * sum_j w_j (theta_j - root) (weights default 1/N, so
  scale 1 reproduces ``mean``).
* ``ties``: TIES-merging: keep the largest ``density`` fraction of each delta, elect a sign
  per element by the summed trimmed deltas, average only the deltas that agree with it.
* ``slerp``: spherical interpolation between the root and one rooted model (two sources).

Buffers that are not weights (resampling filters, constant noise inputs) are copied from the
root, not merged: they are constants, and averaging identical constants only adds rounding.
"""
import torch

COPIED_BUFFERS = ('resample_filter', 'noise_const')


def _mean(root, others, **_):
    return torch.stack([root, *others]).mean(0)


def _task_arithmetic(root, others, weights=None, scale=1.0, **_):
    n = len(others) + 1
    weights = weights or [1.0 / n] * len(others)
    delta = sum(w * (t - root) for w, t in zip(weights, others))
    return root + scale * delta


def _ties(root, others, density=0.2, scale=1.0, **_):
    deltas = torch.stack([t - root for t in others]).float()
    flat = deltas.reshape(len(others), -1)
    k = max(1, int(round(density * flat.shape[1])))
    if k < flat.shape[1]:
        thresh = flat.abs().kthvalue(flat.shape[1] - k + 1, dim=1, keepdim=True).values
        flat = torch.where(flat.abs() >= thresh, flat, torch.zeros_like(flat))
    sign = torch.sign(flat.sum(0))
    agree = (torch.sign(flat) == sign) & (flat != 0)
    merged = (flat * agree).sum(0) / agree.sum(0).clamp(min=1)
    return root + scale * merged.reshape(root.shape).to(root.dtype)


def _slerp(root, others, t=0.5, **_):
    if len(others) != 1:
        raise ValueError(f'slerp merges two models (root + one rooted); got {len(others) + 1}')
    a, b = root.reshape(-1).double(), others[0].reshape(-1).double()
    na, nb = a.norm(), b.norm()
    if na < 1e-12 or nb < 1e-12:
        return torch.lerp(root, others[0], t)
    cos = torch.clamp((a / na) @ (b / nb), -1, 1)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-6:                      # (nearly) parallel: linear interpolation
        return torch.lerp(root, others[0], t)
    so = torch.sin(omega)
    out = (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b
    return out.reshape(root.shape).to(root.dtype)


MERGE_METHODS = {'mean': _mean, 'task-arithmetic': _task_arithmetic, 'ties': _ties, 'slerp': _slerp}


def merge_state_dicts(root, others, method='mean', **params):
    """Merged state dict: every floating tensor merged with ``method``, constants copied."""
    if method not in MERGE_METHODS:
        raise ValueError(f'unknown merge method {method!r}; choose from {", ".join(MERGE_METHODS)}')
    fn = MERGE_METHODS[method]
    out = {}
    for name, value in root.items():
        if name.rsplit('.', 1)[-1] in COPIED_BUFFERS or not value.is_floating_point():
            out[name] = value.clone()
            continue
        out[name] = fn(value, [o[name] for o in others], **params)
    return out


def merge_modules(root, others, method='mean', **params):
    """A copy of module ``root`` holding the merge of its tensors with those of ``others``."""
    import copy
    merged = copy.deepcopy(root)
    state = merge_state_dicts(root.state_dict(), [o.state_dict() for o in others], method, **params)
    merged.load_state_dict(state)
    return merged
