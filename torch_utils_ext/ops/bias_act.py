"""Fused bias + activation + gain + clamp.

Semantics follow the host's ``bias_act``: ``y = clamp(act(x + b) * gain, -clamp, clamp)``,
where the default gain of an activation keeps the signal's second moment roughly
unchanged (sqrt(2) for the ReLU family).
"""
import math
import os
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from torch_utils_ext import custom_ops

_SOURCES = [os.path.join(os.path.dirname(__file__), 'cuda', f) for f in ('bias_act.cpp', 'bias_act.cu')]
_KERNEL_ACTS = {'linear': 0, 'relu': 1, 'lrelu': 2}     # piecewise linear: what the kernel handles


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

    ``impl='cuda'`` uses the fused kernel (``cuda/bias_act.cu``) for linear/relu/lrelu on CUDA
    tensors with a positive gain, with first and second derivatives (R1 differentiates through
    D's gradient); anything else, or a kernel that cannot be built, runs the reference.
    """
    if act not in ACTIVATIONS:
        raise ValueError(f'unknown activation {act!r}; expected one of {sorted(ACTIVATIONS)}')
    if impl == 'cuda' and custom_ops.on_kernel_device(x) and act in _KERNEL_ACTS and _plugin() is not None:
        spec = ACTIVATIONS[act]
        alpha = float(spec.def_alpha if alpha is None else alpha)
        gain = float(spec.def_gain if gain is None else gain)
        if gain > 0 and (b is None or (custom_ops.on_kernel_device(b) and b.dtype == x.dtype)):
            params = (dim % x.ndim, _KERNEL_ACTS[act], alpha, gain, -1.0 if clamp is None else float(clamp))
            return _BiasActCuda.apply(x, b, params)
    return _bias_act_ref(x, b, dim, act, alpha, gain, clamp)


def _plugin():
    return custom_ops.get_plugin('bias_act_plugin', _SOURCES, extra_cuda_cflags=['--use_fast_math'])


class _BiasActCuda(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, params):
        dim, act, alpha, gain, clamp = params
        x = x.contiguous()
        y = _plugin().forward(x, b.contiguous() if b is not None else x.new_empty([0]), dim, act, alpha, gain, clamp)
        ctx.save_for_backward(y)
        ctx.params, ctx.has_b = params, b is not None
        return y

    @staticmethod
    def backward(ctx, dy):
        y, = ctx.saved_tensors
        dx = _BiasActGrad.apply(dy.contiguous(), y, ctx.params)
        db = None
        if ctx.has_b and ctx.needs_input_grad[1]:
            dim = ctx.params[0]
            db = dx.sum([d for d in range(dx.ndim) if d != dim])
        return dx, db, None


class _BiasActGrad(torch.autograd.Function):
    """dx = dy * multiplier(y): linear in dy, and the multiplier is piecewise constant in y, so
    its own gradient is the same multiplier (and zero with respect to y)."""

    @staticmethod
    def forward(ctx, dy, y, params):
        ctx.save_for_backward(y)
        ctx.params = params
        _, act, alpha, gain, clamp = params
        return _plugin().multiplier(dy, y, act, alpha, gain, clamp)

    @staticmethod
    def backward(ctx, ddx):
        y, = ctx.saved_tensors
        return _BiasActGrad.apply(ddx.contiguous(), y, ctx.params), None, None


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
