"""``plugin.patch(host_path, features)``: a legacy pipeline (a forked host, or a script that
calls its training loop or networks directly) fixed in memory, by configuration, with an undo.

    import plugin
    handle = plugin.patch('/path/to/stylegan2-ada-pytorch')      # or features=[...]
    ...                                                           # the pipeline, unchanged
    handle.undo()                                                 # (or: with plugin.patch(...):)

This module picks the checkout (making it the active host); the features and their machinery
are ``plugin.hosts.checkout.patch`` (its docstring lists them), which the checkout host also applies
around its own training loop.
"""
from .hosts import active_host, set_active_host
from .errors import PatchError
from .hosts.checkout.loop_rewrite import patched_training_loop
from .hosts.checkout.patch import FEATURES, LOOP_FEATURES, Patch
from .hosts.checkout.stand_ins import copy_params_widening, resume_augment_p, resume_nimg

__all__ = ['FEATURES', 'LOOP_FEATURES', 'Patch', 'PatchError', 'copy_params_widening', 'patch',
           'patched_training_loop', 'resume_augment_p', 'resume_nimg']


def patch(host_path=None, features=FEATURES, training_loop_module=None):
    """Apply ``features`` to the checkout at ``host_path`` (or the one already imported), or
    to ``training_loop_module`` (a module object, e.g. a fork's copy). Returns a Patch."""
    from .hosts.checkout import patch as patching
    if host_path is not None:
        set_active_host(host_path)
    return patching.patch(active_host(), features=features, training_loop_module=training_loop_module)
