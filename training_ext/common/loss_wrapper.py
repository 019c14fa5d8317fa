"""Base for losses that extend the host's StyleGAN2 loss rather than fork it.

Subclasses are constructed like the host's loss (``device, G_mapping, G_synthesis, D,
augment_pipe, **kwargs``), pop their own kwargs, and pass the rest to the *active host's*
``training.loss.StyleGAN2Loss`` (so they run in the embedded loop and in a real host's loop).
Attribute reads they do not define (``pl_mean`` for resume, say) go to that inner loss.
"""
from plugin.hosts import active_host


class WrappedLoss:
    def __init__(self,
        device,                   # Training device (the host's loop passes it).
        G_mapping,                # The trained G's mapping network.
        G_synthesis,              # The trained G's synthesis network.
        D,                        # The trained discriminator.
        augment_pipe     = None,  # The loop's augment pipe; None = no augmentation.
        inner_class_name = 'training.loss.StyleGAN2Loss',  # Wrapped loss class, built by the active host.
        **loss_kwargs,            # For that loss (r1_gamma, pl_weight, ...).
    ):
        self.inner = active_host().construct_class_by_name(inner_class_name, device=device, G_mapping=G_mapping,
                                                           G_synthesis=G_synthesis, D=D, augment_pipe=augment_pipe,
                                                           **loss_kwargs)

    def __getattr__(self, name):
        if name == 'inner':                 # not constructed yet: no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        return self.inner.accumulate_gradients(phase=phase, real_img=real_img, real_c=real_c, gen_z=gen_z,
                                               gen_c=gen_c, sync=sync, gain=gain)


def unwrap(module):
    """The network a DistributedDataParallel wrapper holds, or ``module`` itself. A real host's
    loop hands the loss DDP-wrapped networks when it trains in several processes; their own
    attributes (``.selector``, ``.features``, ``.net``) are reached through ``.module``."""
    from torch.nn.parallel import DataParallel, DistributedDataParallel
    return module.module if isinstance(module, (DistributedDataParallel, DataParallel)) else module


def backward_synced(loss, modules):
    """``loss.backward()`` for a plugin term computed through the networks' own methods (not the
    DDP wrapper's forward, which alone triggers DDP's gradient averaging). When any of ``modules``
    is DDP-wrapped in a multi-process run, the term's gradients for their parameters are averaged
    across processes here, as DDP does for the host's terms; otherwise a plain backward (the
    embedded loop averages every gradient after the phase itself)."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    if not any(isinstance(m, DistributedDataParallel) for m in modules) or not dist.is_initialized():
        loss.backward()
        return
    params = [p for m in modules for p in unwrap(m).parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p in params:
        g = flat[offset:offset + p.numel()].reshape(p.shape)
        offset += p.numel()
        if p.grad is None:
            p.grad = g.clone()
        else:
            p.grad.add_(g)
