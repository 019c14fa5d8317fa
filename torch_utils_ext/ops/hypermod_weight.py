"""Per-sample convolution weights of a hyper-modulated StyleGAN2 layer (arXiv 2112.02219).

One function, ``hypermod_weight``, builds for every sample n the weight

    W_c[n]   = gain * (gamma[n] (.) W_hat + beta[n])          gamma, beta broadcast over the kernel
    W_mod[n] = W_c[n] * styles[n]                             per input channel (StyleGAN2 modulation)
    W_out[n] = W_mod[n] / sqrt(sum_{i,k,k} W_mod[n]^2 + 1e-8)  per output channel (demodulation)

which the layer then applies as one grouped convolution. ``impl='cuda'`` runs the fused kernel
(``cuda/hypermod_weight.cu``: one pass per (sample, output channel) for the forward, one for
the backward, no [N, O, I, k, k] intermediates besides the output) on float32 CUDA tensors; on a
CPU tensor, in fp16, or when the kernel cannot be built it falls back to the reference, which
is also the test oracle. Low-rank factors are expanded by a matmul before the kernel (autograd
takes the gradient through it).
"""
import os

import torch

from torch_utils_ext import custom_ops

_SOURCES = [os.path.join(os.path.dirname(__file__), 'cuda', f) for f in ('hypermod_weight.cpp', 'hypermod_weight.cu')]

IMPLS = ('ref', 'cuda')


def expand_modulation(m, out_channels, in_channels):
    """[N, O, I] from a full modulation tensor or from low-rank factors.

    ``m`` is either a tensor [N, O, I], or a tuple ``(offset, left, right)``: ``offset``
    [O, I] or [N, O, I] (or None), ``left`` [N, O, R], ``right`` [I, R] or [N, I, R], meaning
    ``offset + left @ right^T``.
    """
    if isinstance(m, torch.Tensor):
        if m.ndim != 3 or tuple(m.shape[1:]) != (out_channels, in_channels):
            raise ValueError(f'modulation must be [N, {out_channels}, {in_channels}], got {tuple(m.shape)}')
        return m
    offset, left, right = m
    if left.ndim != 3 or left.shape[1] != out_channels or right.shape[-2] != in_channels \
            or right.shape[-1] != left.shape[2]:
        raise ValueError(f'low-rank factors must be [N, {out_channels}, R] and [({in_channels}), R]; got '
                         f'{tuple(left.shape)} and {tuple(right.shape)}')
    product = left @ right.transpose(-1, -2)
    return product if offset is None else product + offset


def hypermod_weight(base_weight, styles, gamma, beta, gain=1.0, demodulate=True, impl='ref'):
    """Per-sample modulated (and demodulated) conv weights.

    base_weight: [O, I, kh, kw], the frozen standardised weight W_hat.
    styles:      [N, I], the per-sample styles (the layer's affine of w).
    gamma, beta: [N, O, I] each, or low-rank factors (see ``expand_modulation``).
    gain:        a float scale of W_c (a demodulated layer does not depend on it).
    demodulate:  rescale each output channel of each sample to unit norm, as StyleGAN2.
    impl:        'ref', or 'cuda' (the fused kernel for float32 CUDA tensors; otherwise 'ref').
    Returns [N, O, I, kh, kw], in float32 (or the dtype of ``base_weight``).
    """
    if impl not in IMPLS:
        raise ValueError(f'impl must be one of {IMPLS}, got {impl!r}')
    if base_weight.ndim != 4:
        raise ValueError(f'base_weight must be [O, I, kh, kw], got {tuple(base_weight.shape)}')
    out_ch, in_ch = base_weight.shape[:2]
    if styles.ndim != 2 or styles.shape[1] != in_ch:
        raise ValueError(f'styles must be [N, {in_ch}], got {tuple(styles.shape)}')
    gamma, beta = expand_modulation(gamma, out_ch, in_ch), expand_modulation(beta, out_ch, in_ch)
    if impl == 'cuda' and _cuda_ready(base_weight, styles, gamma, beta):
        return _HypermodWeightCuda.apply(base_weight, styles, gamma, beta, float(gain), bool(demodulate))
    return _hypermod_weight_ref(base_weight, styles, gamma, beta, float(gain), demodulate)


def _plugin():
    return custom_ops.get_plugin('hypermod_weight_plugin', _SOURCES, extra_cuda_cflags=['--use_fast_math'])


def _cuda_ready(*tensors):
    return custom_ops.on_kernel_device(*tensors) and all(t.dtype == torch.float32 for t in tensors) \
        and _plugin() is not None


class _HypermodWeightCuda(torch.autograd.Function):
    @staticmethod
    def forward(ctx, base, styles, gamma, beta, gain, demod):
        shape = base.shape
        base3 = base.reshape(shape[0], shape[1], -1).contiguous()
        styles, gamma, beta = styles.contiguous(), gamma.contiguous(), beta.contiguous()
        out, dcoef = _plugin().forward(base3, styles, gamma, beta, gain, demod)
        ctx.save_for_backward(base3, styles, gamma, beta, dcoef)
        ctx.gain, ctx.demod, ctx.shape = gain, demod, shape
        return out.reshape(styles.shape[0], *shape)

    @staticmethod
    def backward(ctx, grad):
        base3, styles, gamma, beta, dcoef = ctx.saved_tensors
        g = grad.reshape(grad.shape[0], base3.shape[0], base3.shape[1], -1).contiguous().float()
        dgamma, dbeta, dstyles = _plugin().backward(g, base3, styles, gamma, beta, dcoef, ctx.gain, ctx.demod)
        return None, dstyles, dgamma, dbeta, None, None          # the base weight is a frozen buffer


def _hypermod_weight_ref(base_weight, styles, gamma, beta, gain, demodulate):
    dtype = base_weight.dtype
    w = torch.addcmul(beta.to(dtype).unsqueeze(-1).unsqueeze(-1), gamma.to(dtype).unsqueeze(-1).unsqueeze(-1),
                      base_weight.unsqueeze(0))
    if gain != 1:
        w = w * gain
    w = w * styles.to(dtype).reshape(styles.shape[0], 1, -1, 1, 1)
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).rsqrt()
    return w
