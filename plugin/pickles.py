"""Safe reading and atomic writing of host-layout network pickles.

A host snapshot is a pickled dict ``{training_set_kwargs, G, D, G_ema, augment_pipe}`` whose
modules are *persistent objects*: ``_reconstruct_persistent_obj(meta)`` with the module's
class name, constructor kwargs, tensors and the full source of the module that defines it.
The host's own loader executes that source. We never do:

* every global the pickle names must be on a short allow-list (tensor rebuilding, numpy
  scalars, OrderedDict, EasyDict, the persistent-object constructor); anything else is
  refused with an error naming it, before it could be called;
* tensor storages are decoded by ``torch.load(weights_only=True)``;
* a persistent object becomes an inert ``PersistentRecord``; the records of whole networks
  are then rebuilt into the active host's classes from ``class_name + _init_kwargs`` and
  their tensors are copied in by name, with names and shapes checked.
"""
import collections
import copy
import io
import os
import pickle
import tempfile
import types
import warnings

import numpy as np
import torch

from . import persistence
from .easydict import EasyDict
from .hosts import active_host, get_host


class NetworkPickleError(ValueError):
    """The file is not a usable network pickle (unreadable, unsafe, or inconsistent)."""


class UnsafePickleError(NetworkPickleError):
    """The pickle references something outside the allow-list."""


# --- Families of persistent classes, recognised from the module source they carry. -------

def detect_family(module_src):
    """Which known module a persistent object's embedded source is (never executed)."""
    own = persistence.parse_own_module_src(module_src)
    if own is not None:
        return own[0] or 'plugin:' + own[1]
    src = module_src or ''
    if 'class SynthesisInput' in src:
        return 'stylegan3.networks'
    if 'def modulated_conv2d' in src and 'class SynthesisBlock' in src:
        return 'stylegan2.networks'
    if 'class AugmentPipe' in src:
        return 'stylegan2.augment'
    return 'unknown'


class PersistentRecord:
    """A persistent object as data: what the pickle says, nothing executed.

    Kept for modules the host cannot rebuild (an augment pipe, an unknown class): it is
    written back unchanged by ``save_network_pkl``.
    """

    def __init__(self, meta):
        self.meta = meta

    class_name = property(lambda self: self.meta['class_name'])
    state = property(lambda self: self.meta['state'])
    family = property(lambda self: detect_family(self.meta.get('module_src')))
    init_args = property(lambda self: tuple(self.state.get('_init_args', ())))
    init_kwargs = property(lambda self: dict(self.state.get('_init_kwargs', {})))

    def named_tensors(self, prefix=''):
        """(name, tensor, kind) in state_dict order; nested records and modules are walked."""
        return _walk_tensors(self.state, prefix)

    def __repr__(self):
        return f'<PersistentRecord {self.family}:{self.class_name}>'


def _walk_tensors(state, prefix):
    skip = set(state.get('_non_persistent_buffers_set', ()) or ())
    for name, t in (state.get('_parameters') or {}).items():
        if t is not None:
            yield prefix + name, t, 'parameter'
    for name, t in (state.get('_buffers') or {}).items():
        if t is not None and name not in skip:
            yield prefix + name, t, 'buffer'
    for name, child in (state.get('_modules') or {}).items():
        if isinstance(child, PersistentRecord):
            yield from child.named_tensors(prefix + name + '.')
        elif isinstance(child, torch.nn.Module):            # a plain torch container or layer
            yield from _walk_tensors(child.__dict__, prefix + name + '.')


def _reconstruct_persistent_obj(meta):
    if not isinstance(meta, dict) or meta.get('type') != 'class' or not isinstance(meta.get('class_name'), str):
        raise NetworkPickleError('malformed persistent object in pickle (expected a class record)')
    if not isinstance(meta.get('state'), dict):
        raise NetworkPickleError(f"persistent object {meta['class_name']!r} has no state dict")
    return PersistentRecord(dict(meta))


# --- The allow-listed unpickler. --------------------------------------------------------------

def _load_storage_from_bytes(data):
    if not isinstance(data, (bytes, bytearray)):
        raise NetworkPickleError('tensor storage is not a byte string')
    try:
        return torch.load(io.BytesIO(data), weights_only=True, map_location='cpu')
    except pickle.UnpicklingError as e:
        raise UnsafePickleError(f'tensor storage refused by the weights-only loader: {e}') from None


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise NetworkPickleError('tensor rebuilt from something that is not a storage')
    if backward_hooks:
        raise UnsafePickleError('tensor carries backward hooks; refused')
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
                                           collections.OrderedDict(), metadata)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    if not isinstance(data, torch.Tensor):
        raise NetworkPickleError('parameter rebuilt from something that is not a tensor')
    if backward_hooks:
        raise UnsafePickleError('parameter carries backward hooks; refused')
    return torch.nn.Parameter(data, requires_grad=requires_grad)


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError('numpy scalar of object dtype refused')
    try:                                                   # numpy 2 moved the reconstructor
        from numpy._core.multiarray import scalar
    except ImportError:
        from numpy.core.multiarray import scalar
    return scalar(dtype, data)


def _set(items=()):
    return set(items)


def _codecs_encode(text, encoding='latin1'):
    # Protocol-2 pickles encode bytes as _codecs.encode(str, 'latin1'): nothing else allowed.
    if not isinstance(text, str) or encoding != 'latin1':
        raise UnsafePickleError('_codecs.encode is only allowed as (str, "latin1")')
    return text.encode('latin1')


# Plain torch layers and containers that persistent modules may hold as children. They carry
# tensors only; networks are always rebuilt from their persistent parent's kwargs.
PLAIN_TORCH_MODULES = {
    'torch.nn.modules.container.ModuleList': torch.nn.ModuleList,
    'torch.nn.modules.container.ModuleDict': torch.nn.ModuleDict,
    'torch.nn.modules.container.Sequential': torch.nn.Sequential,
    'torch.nn.modules.linear.Linear': torch.nn.Linear,
    'torch.nn.modules.linear.Identity': torch.nn.Identity,
    'torch.nn.modules.activation.ReLU': torch.nn.ReLU,
    'torch.nn.modules.activation.LeakyReLU': torch.nn.LeakyReLU,
    'torch.nn.modules.activation.Tanh': torch.nn.Tanh,
    'torch.nn.modules.activation.Sigmoid': torch.nn.Sigmoid,
    'torch.nn.modules.normalization.LayerNorm': torch.nn.LayerNorm,
    'torch.nn.modules.conv.Conv2d': torch.nn.Conv2d,
    'torch.nn.modules.sparse.Embedding': torch.nn.Embedding,
    'torch.nn.modules.batchnorm.BatchNorm1d': torch.nn.BatchNorm1d,
}

_ALLOWED_GLOBALS = {
    'torch_utils.persistence._reconstruct_persistent_obj': _reconstruct_persistent_obj,
    'collections.OrderedDict': collections.OrderedDict,
    'torch._utils._rebuild_tensor_v2': _rebuild_tensor_v2,
    'torch._utils._rebuild_parameter': _rebuild_parameter,
    'torch._utils._rebuild_parameter_with_state': _rebuild_parameter,
    'torch.storage._load_from_bytes': _load_storage_from_bytes,
    'numpy.core.multiarray.scalar': _numpy_scalar,
    'numpy._core.multiarray.scalar': _numpy_scalar,
    'numpy.dtype': np.dtype,
    'dnnlib.util.EasyDict': EasyDict,
    'builtins.set': _set,
    '__builtin__.set': _set,
    'builtins.frozenset': frozenset,
    '_codecs.encode': _codecs_encode,
    **PLAIN_TORCH_MODULES,
}


class SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        key = f'{module}.{name}'
        if key in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[key]
        raise UnsafePickleError(f"refused to load global '{key}': not allowed in a network pickle "
                                '(a hostile or non-network pickle?)')

    def persistent_load(self, pid):
        raise UnsafePickleError('refused persistent id: not allowed in a network pickle')


# --- Rebuilding records into the active host's modules. ----------------------------------------

def _module_class_for(record, host):
    family = record.family
    if family.startswith('plugin:'):
        return persistence.find_own_class(family[len('plugin:'):], record.class_name)
    return host.network_class(family, record.class_name)


def rebuild_module(record, host=None, what='module'):
    """Build ``record`` as a module of ``host``; None when the host has no such class."""
    host = host or active_host()
    cls = _module_class_for(record, host)
    if cls is None:
        return None
    try:
        module = cls(*copy.deepcopy(record.init_args), **copy.deepcopy(record.init_kwargs))
    except (TypeError, ValueError) as e:
        raise NetworkPickleError(f'{what}: {record.class_name} kwargs {record.init_kwargs} are not understood by '
                                 f'the {host.name} host: {e}') from None
    load_tensors(module, dict((n, t) for n, t, _ in record.named_tensors()), what=what)
    module.train(bool(record.state.get('training', False)))
    requires_grad = {n: t.requires_grad for n, t, k in record.named_tensors() if k == 'parameter'}
    for name, p in module.named_parameters():
        p.requires_grad_(requires_grad.get(name, False))
    return module


def load_tensors(module, tensors, what='module'):
    """Copy ``tensors`` (name -> tensor) into ``module``'s parameters and buffers; names and
    shapes must match exactly (a silent broadcast would corrupt the network)."""
    own = dict(module.named_parameters())
    own.update((n, b) for n, b in module.named_buffers() if _is_persistent_buffer(module, n))
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise NetworkPickleError(f'{what}: tensors do not match the architecture; missing {_short(missing)}, '
                                 f'unexpected {_short(unexpected)}')
    bad = [f'{n} {tuple(tensors[n].shape)} vs {tuple(own[n].shape)}' for n in own if tensors[n].shape != own[n].shape]
    if bad:
        raise NetworkPickleError(f'{what}: tensor shapes differ: {_short(bad)}')
    with torch.no_grad():
        for name, t in own.items():
            t.copy_(tensors[name])


def _is_persistent_buffer(module, name):
    owner_name, _, leaf = name.rpartition('.')
    owner = module.get_submodule(owner_name) if owner_name else module
    return leaf not in owner._non_persistent_buffers_set


def _short(names, n=6):
    names = list(names)
    return '[]' if not names else ', '.join(names[:n]) + (f' (+{len(names) - n} more)' if len(names) > n else '')


def _unpickle(f, name):
    if not f.seekable():
        f = io.BytesIO(f.read())
    head = f.read(2)
    if head[:2] == b'PK':
        raise NetworkPickleError(f'{name}: a zip archive (torch.save checkpoint or dataset?), not a network pickle')
    if len(head) < 2 or head[0] != pickle.PROTO[0] or not 2 <= head[1] <= pickle.HIGHEST_PROTOCOL:
        raise NetworkPickleError(f'{name}: not a readable network pickle (no pickle header; truncated or corrupt?)')
    f.seek(-2, io.SEEK_CUR)
    return SafeUnpickler(f).load()


# --- Public API. ---------------------------------------------------------------------------

def load_network_pkl(path_or_file, host=None, rebuild=True):
    """Read a host-layout network pickle safely.

    Returns a dict with the pickle's keys (any subset of G, D, G_ema, augment_pipe,
    training_set_kwargs, plus whatever else it holds). Network records are rebuilt as
    modules of ``host`` (default: the active host); objects the host has no class for stay
    ``PersistentRecord``s, with a warning. ``rebuild=False`` returns all records as data.
    """
    host = get_host(host) if host is not None else active_host()
    name = getattr(path_or_file, 'name', path_or_file)
    try:
        if hasattr(path_or_file, 'read'):
            data = _unpickle(path_or_file, name)
        else:
            with open(path_or_file, 'rb') as f:
                data = _unpickle(f, name)
    except NetworkPickleError as e:
        raise type(e)(f'{name}: {e}') from None
    except FileNotFoundError:
        raise NetworkPickleError(f'{name}: no such file') from None
    except IsADirectoryError:
        raise NetworkPickleError(f'{name}: is a directory, not a pickle') from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RuntimeError, UnicodeDecodeError, MemoryError) as e:
        raise NetworkPickleError(f'{name}: not a readable network pickle (truncated or corrupt?): '
                                 f'{type(e).__name__}: {e}') from None
    if not isinstance(data, dict):
        raise NetworkPickleError(f'{name}: expected a dict of networks, found {type(data).__name__}')
    if not any(isinstance(data.get(k), PersistentRecord) for k in ('G', 'D', 'G_ema')):
        keys = ', '.join(map(str, data.keys())) or 'none'
        raise NetworkPickleError(f'{name}: no network under G, D or G_ema (keys: {keys})')
    if rebuild:
        for key, value in list(data.items()):
            if isinstance(value, PersistentRecord):
                module = rebuild_module(value, host, what=f'{name}[{key}]')
                if module is None:
                    warnings.warn(f'{name}[{key}]: {value.family}:{value.class_name} has no class in the '
                                  f'{host.name} host; kept as inert data', stacklevel=2)
                else:
                    data[key] = module
    return data


# --- Writing. -------------------------------------------------------------------------------

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
    from .hosts.checkout import is_host_persistent
    return persistence.is_persistent(module) or is_host_persistent(module)


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


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_network_pkl(data, path):
    """Write ``data`` to ``path`` atomically (see atomic_write_bytes)."""
    return atomic_write_bytes(dumps_network_pkl(data), path)


def atomic_write_bytes(blob, path):
    """Write ``blob`` to ``path`` atomically: a temporary file in the same folder, flushed
    and fsynced, then renamed. An interrupted save never leaves a partial file at ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())             # mkstemp makes 0600; give it the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_tensors(obj, path):
    """``torch.save`` of plain containers of tensors, atomically; read back with load_tensors_file."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(buf.getvalue(), path)


def load_tensors_file(path):
    """Read a file written by save_tensors; ``weights_only`` so it can hold no code."""
    return torch.load(path, map_location='cpu', weights_only=True)
