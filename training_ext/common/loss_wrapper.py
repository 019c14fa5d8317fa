"""Base for losses that extend the host's StyleGAN2 loss rather than fork it.

Subclasses are constructed like the host's loss (``device, G_mapping, G_synthesis, D,
augment_pipe, **kwargs``), pop their own kwargs, and pass the rest to the *active host's*
``training.loss.StyleGAN2Loss`` (so they run in the embedded loop and in a real host's loop).
Attribute reads they do not define (``pl_mean`` for resume, say) go to that inner loss.
"""
from plugin.hosts import active_host


class WrappedLoss:
    def __init__(self, device, G_mapping, G_synthesis, D, augment_pipe=None,
                 inner_class_name='training.loss.StyleGAN2Loss', **loss_kwargs):
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
