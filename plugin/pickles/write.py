"""Writing network pickles in the host's layout (modules as the host's persistent objects,
EasyDicts as dnnlib's), atomically."""
import copy
import io
import pickle
import types

import torch

from .. import persistence
from ..easydict import EasyDict
from ..files import atomic_write_bytes
from .read import PLAIN_TORCH_MODULES, NetworkPickleError, PersistentRecord, _reconstruct_persistent_obj, _short

def _persistent_reconstructor(meta):
    """Stand-in whose global name, in our pickles, is the host's reconstructor."""
    return _reconstruct_persistent_obj(meta)


_GLOBAL_NAMES = {
    id(_persistent_reconstructor): ('torch_utils.persistence', '_reconstruct_persistent_obj'),
    id(EasyDict): ('dnnlib.util', 'EasyDict'),
}


class _HostLayoutPickler(pickle._Pickler):
    """Writes our persistent modules, records and EasyDicts under the host's global names.

    Uses the pure-Python pickler because only it lets us name a global that is not
    importable here (``torch_utils.persistence`` exists only inside a host checkout).
    """

    def reducer_override(self, obj):
        if isinstance(obj, PersistentRecord):
            return _persistent_reconstructor, (obj.meta,)
        if isinstance(obj, torch.nn.Module) and persistence.is_persistent(obj):
            meta = dict(type='class', version=persistence.PICKLE_VERSION,
                        module_src=persistence.module_src_for(type(obj)),
                        class_name=type(obj).__qualname__, state=dict(obj.__dict__))
            return _persistent_reconstructor, (meta,)
        return NotImplemented

    def save_global(self, obj, name=None):
        target = _GLOBAL_NAMES.get(id(obj))
        if target is None:
            return super().save_global(obj, name)
        module, qualname = target
        self.write(pickle.GLOBAL + f'{module}\n{qualname}\n'.encode('utf-8'))
        self.memoize(obj)

    # The base class's dispatch table points at its own save_global: route ours instead.
    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[type] = save_global
    dispatch[types.FunctionType] = save_global


def _snapshot_copy(value):
    if isinstance(value, torch.nn.Module):
        return copy.deepcopy(value).eval().requires_grad_(False).cpu()
    return value


def _persistent(module):
    """Ours (@persistent_class), or a host checkout's (its torch_utils.persistence), which
    pickles itself in the host layout with the checkout's own source."""
    return persistence.is_persistent(module) or persistence.is_host_persistent(module)


def _check_savable(module):
    plain = tuple(PLAIN_TORCH_MODULES.values())
    if not _persistent(module):
        raise NetworkPickleError(f'cannot save {type(module).__name__}: not a persistent class '
                                 '(decorate it with plugin.persistence.persistent_class)')
    bad = [n for n, m in module.named_modules() if not _persistent(m) and type(m) not in plain]
    if bad:
        raise NetworkPickleError(f'cannot save {type(module).__name__}: these parts are neither persistent classes '
                                 f'nor plain torch layers: {_short(bad)}')


def dumps_network_pkl(data):
    """Bytes of ``data`` in the host layout (modules copied to CPU, eval, no grad)."""
    if not isinstance(data, dict):
        raise TypeError('network pickle data must be a dict such as {"G": ..., "D": ..., "G_ema": ...}')
    for key, value in data.items():
        if isinstance(value, torch.nn.Module):
            _check_savable(value)
    payload = {k: _snapshot_copy(v) for k, v in data.items()}
    buf = io.BytesIO()
    _HostLayoutPickler(buf, protocol=4).dump(payload)
    return buf.getvalue()


def save_network_pkl(data, path):
    """Write ``data`` to ``path`` atomically (see atomic_write_bytes)."""
    return atomic_write_bytes(dumps_network_pkl(data), path)
