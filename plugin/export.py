"""Export a result that is a plain StyleGAN2 network to a host checkout's own classes.

A merged or fine-tuned model saved by the embedded host already loads in the host's code
*with the plugin installed* (its module source is an import shim). Exported, it carries the
checkout's own class source, like a pickle the host wrote itself, so loading it needs no
plugin at all. Networks of plugin classes (a mined, bypass or hyper-modulated generator)
cannot be expressed in the host's classes and are refused by name.
"""
import warnings

import torch

from .hosts import get_host
from .hosts.checkout import CheckoutHost
from .persistence import is_host_persistent
from .pickles import NetworkPickleError, PersistentRecord, load_network_pkl, save_network_pkl


def export_to_host(src, dst, host_path, log=print):
    host = get_host(host_path)
    if not isinstance(host, CheckoutHost):
        raise NetworkPickleError('export needs --host PATH: a stylegan2-ada-pytorch or stylegan3 checkout')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        data = load_network_pkl(src, host=host)
    out = {}
    for key, value in data.items():
        if key == 'augment_pipe' and value is not None and not is_host_persistent(value):
            # The host's resume copies only G, D and G_ema; its train.py builds its own pipe.
            log(f'{key}: {type(value).__name__} is not the host\'s class; written as None')
            value = None
        elif isinstance(value, torch.nn.Module):
            bad = [n or key for n, m in value.named_modules() if not is_host_persistent(m)
                   and type(m).__module__.startswith(('plugin.', 'training_ext.'))]
            if bad:
                raise NetworkPickleError(f'{src}[{key}] is a plugin network ({type(value).__name__}); only plain '
                                         'StyleGAN2 networks can be exported to the host\'s classes')
        elif isinstance(value, PersistentRecord):
            raise NetworkPickleError(f'{src}[{key}]: {value.class_name} has no class in {host.name}')
        out[key] = value
    return save_network_pkl(out, dst)
