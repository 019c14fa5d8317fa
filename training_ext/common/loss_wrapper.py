"""Base for losses that extend the host's StyleGAN2 loss rather than fork it.

Subclasses are constructed like the host's loss, pop their own kwargs, and pass the rest to
the *active host's* ``training.loss.StyleGAN2Loss`` (so they run in the embedded loop and in a
real host's loop). Both loops' conventions are taken: stylegan2-ada's (and the embedded)
``device, G_mapping, G_synthesis, D, augment_pipe`` with calls that pass ``sync``, and the
stylegan3 repo's ``device, G, D, augment_pipe`` with calls that pass ``cur_nimg`` (its -R blur
schedule) and no ``sync``. Attribute reads they do not define (``pl_mean`` for resume, say) go
to that inner loss.
"""
import inspect

from plugin.hosts import active_host


def generator_halves(G_mapping, G_synthesis, G, who):
    """(mapping, synthesis) from either loop's loss arguments: the stylegan3 repo's passes ``G``,
    stylegan2-ada's (and the embedded) the two halves."""
    if G is not None:
        return G.mapping, G.synthesis
    if G_mapping is None or G_synthesis is None:
        raise TypeError(f'{who} needs D and either G or G_mapping and G_synthesis')
    return G_mapping, G_synthesis


class WrappedLoss:
    def __init__(self,
        device,                   # Training device (the host's loop passes it).
        G_mapping        = None,  # The trained G's mapping network (stylegan2-ada's loop and the embedded one).
        G_synthesis      = None,  # The trained G's synthesis network (likewise).
        D                = None,  # The trained discriminator.
        augment_pipe     = None,  # The loop's augment pipe; None = no augmentation.
        inner_class_name = 'training.loss.StyleGAN2Loss',  # Wrapped loss class, built by the active host.
        G                = None,  # The trained G whole: what the stylegan3 repo's loop passes instead.
        **loss_kwargs,            # For that loss (r1_gamma, pl_weight, ...).
    ):
        # Two loop conventions: stylegan2-ada's (and the embedded) loop builds the loss from
        # G_mapping and G_synthesis and calls it with sync; the stylegan3 repo's builds it from G
        # and calls it with cur_nimg (the -R blur schedule) instead. The plugin's terms use the
        # two halves; the inner loss gets what its own signature takes.
        G_mapping, G_synthesis = generator_halves(G_mapping, G_synthesis, G, type(self).__name__)
        if D is None:
            raise TypeError(f'{type(self).__name__} needs D and either G or G_mapping and G_synthesis')
        self.G_mapping, self.G_synthesis, self.D, self.augment_pipe = G_mapping, G_synthesis, D, augment_pipe
        host = active_host()
        inner = host.resolve_class_path(inner_class_name)
        nets = dict(G=G) if 'G' in inspect.signature(inner.__init__).parameters else \
            dict(G_mapping=G_mapping, G_synthesis=G_synthesis)
        if 'G' in nets and G is None:
            raise TypeError(f'{inner_class_name} of {host} is built from G; the loop passed G_mapping and G_synthesis')
        self.inner = host.construct_class_by_name(inner_class_name, device=device, D=D, augment_pipe=augment_pipe,
                                                  **nets, **loss_kwargs)
        self._inner_takes = set(inspect.signature(self.inner.accumulate_gradients).parameters)

    def __getattr__(self, name):
        if name == 'inner':                 # not constructed yet: no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync=True, gain=1, cur_nimg=None):
        """Either loop's call (see __init__); ``sync`` and ``cur_nimg`` reach the inner loss where
        it takes them. A loss that needs the progress (stylegan3 -R's blur) and gets none raises."""
        kwargs = dict(phase=phase, real_img=real_img, real_c=real_c, gen_z=gen_z, gen_c=gen_c, gain=gain)
        if 'sync' in self._inner_takes:
            kwargs['sync'] = sync
        if 'cur_nimg' in self._inner_takes:
            kwargs['cur_nimg'] = cur_nimg
        return self.inner.accumulate_gradients(**kwargs)


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
