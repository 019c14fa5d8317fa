"""Freezing parameters in a way that survives the host's training loop.

The host's loop calls ``requires_grad_(True)`` on the whole G or D at every phase and builds
its optimisers from ``module.parameters()``, so neither requires_grad flags nor optimiser
parameter lists can freeze part of a network. A gradient mask can: a hook multiplies the
parameter's gradient by a mask (0 = frozen) every time one is computed. With Adam and a
gradient that is always zero, the moments stay zero and the update is exactly zero, so
frozen values stay bit-identical; every parameter still gets a gradient, so data-parallel
reduction is unaffected. Masks are buffers of the module that owns the hook, so they are
saved in pickles and move with ``.to(device)``; a parameter frozen outright needs no buffer.
"""
import torch


def mask_buffer_name(param_name):
    return 'gradmask__' + param_name.replace('.', '__')


def register_gradient_masks(owner, params, masks=None):
    """Mask the gradients of ``params`` (name -> Parameter, names relative to ``owner``).

    ``masks``: name -> mask (broadcastable to the parameter), kept as a buffer of ``owner``
    so it is saved with the network; parameters without a mask are frozen outright.
    """
    handles = []
    for name, p in params.items():
        if masks is not None and name in masks:
            buf = mask_buffer_name(name)
            if not hasattr(owner, buf):
                owner.register_buffer(buf, masks[name].detach().clone().to(p.device, torch.float32))
            hook = (lambda g, owner=owner, buf=buf: g * getattr(owner, buf).to(g.dtype))
        else:
            hook = torch.zeros_like
        handles.append(p.register_hook(hook))
    return handles


def gradient_masks(owner):
    """name -> mask buffer, for every mask registered on ``owner``."""
    return {n[len('gradmask__'):].replace('__', '.'): b for n, b in owner.named_buffers(recurse=False)
            if n.startswith('gradmask__')}
