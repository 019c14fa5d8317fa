"""Per-sample convolution weights of a hyper-modulated StyleGAN2 layer (arXiv 2112.02219).

One function, ``hypermod_weight``, builds for every sample n the weight

    W_c[n]   = gain * (gamma[n] (.) W_hat + beta[n])          gamma, beta broadcast over the kernel
    W_mod[n] = W_c[n] * styles[n]                             per input channel (StyleGAN2 modulation)
    W_out[n] = W_mod[n] / sqrt(sum_{i,k,k} W_mod[n]^2 + 1e-8)  per output channel (demodulation)

which the layer then applies as one grouped convolution. It is the hot path that a fused
kernel will replace (``impl='cuda'``); today only the reference exists, and ``'cuda'`` falls
back to it (as it will on a CPU tensor or when the kernel cannot be built).
"""
import torch

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
    impl:        'ref' or 'cuda' (a fused kernel, not built yet: falls back to 'ref').
    Returns [N, O, I, kh, kw], in float32 (or the dtype of ``base_weight``).
    """
    if impl not in IMPLS:
        raise ValueError(f'impl must be one of {IMPLS}, got {impl!r}')
    if base_weight.ndim != 4:
        raise ValueError(f'base_weight must be [O, I, kh, kw], got {tuple(base_weight.shape)}')
    out_ch, in_ch = base_weight.shape[:2]
    if styles.ndim != 2 or styles.shape[1] != in_ch:
        raise ValueError(f'styles must be [N, {in_ch}], got {tuple(styles.shape)}')
    return _hypermod_weight_ref(base_weight, styles, expand_modulation(gamma, out_ch, in_ch),
                                expand_modulation(beta, out_ch, in_ch), float(gain), demodulate)


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
