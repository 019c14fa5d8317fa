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
  their tensors are copied in by name, with names and shapes checked;
* every class name met while rebuilding (the record's own, and every ``class_name`` nested
  in its stored kwargs) is looked up in the closed registry (``plugin.class_registry``),
  which only holds network classes then; nothing is imported by a stored name;
* resources are bounded before they are spent: declared storage sizes against the bytes
  present, tensor views against their storage, nesting depth, stored kwargs' sizes, and the
  memory a constructor may allocate against the tensors the record carries.

README "What loading a pickle guarantees" states the contract; tests/test_hostile_pickles.py
and tests/test_pickle_fuzz.py hold it.
"""
import collections
import copy
import io
import math
import os
import pickle
import pickletools
import tempfile
import types
import warnings

import numpy as np
import torch

from . import class_registry, persistence
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

# Element sizes of the storage types torch's legacy storage format names.
_STORAGE_ELEMENT_SIZES = {
    'torch.storage.UntypedStorage': 1, 'torch.UntypedStorage': 1,
    'torch.FloatStorage': 4, 'torch.DoubleStorage': 8, 'torch.HalfStorage': 2, 'torch.BFloat16Storage': 2,
    'torch.LongStorage': 8, 'torch.IntStorage': 4, 'torch.ShortStorage': 2, 'torch.CharStorage': 1,
    'torch.ByteStorage': 1, 'torch.BoolStorage': 1, 'torch.ComplexFloatStorage': 8,
    'torch.ComplexDoubleStorage': 16,
}


class _StorageHeaderScan(pickle.Unpickler):
    """Reads the headers of one storage in torch's legacy format without allocating it:
    ``persistent_load`` sees each declared storage (type, key, element count)."""

    def __init__(self, f):
        super().__init__(f)
        self.declared = {}

    def find_class(self, module, name):
        key = f'{module}.{name}'
        if key not in _STORAGE_ELEMENT_SIZES:
            raise UnsafePickleError(f"tensor storage names global '{key}'; refused")
        return key

    def persistent_load(self, pid):
        if (not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != 'storage'
                or pid[1] not in _STORAGE_ELEMENT_SIZES or not isinstance(pid[4], int) or pid[4] < 0):
            raise NetworkPickleError('malformed tensor storage header')
        self.declared[pid[2]] = pid[4] * _STORAGE_ELEMENT_SIZES[pid[1]]
        return None


def _declared_storage_bytes(data):
    """Bytes the storage record ``data`` declares, read from its headers (nothing allocated)."""
    f = io.BytesIO(data)
    scan = _StorageHeaderScan(f)
    for _ in range(4):                  # magic number, protocol version, system info, the storage
        scan.load()
    return sum(scan.declared.values())


def _load_storage_from_bytes(data):
    if not isinstance(data, (bytes, bytearray)):
        raise NetworkPickleError('tensor storage is not a byte string')
    # torch allocates a storage at the size its header declares before reading the data, so a
    # few bytes could ask for terabytes: check the declaration against the bytes present first.
    declared = _declared_storage_bytes(data)
    if declared > len(data):
        raise NetworkPickleError(f'a tensor storage declares {declared:,} bytes but holds {len(data):,}; refused')
    try:
        return torch.load(io.BytesIO(data), weights_only=True, map_location='cpu')
    except pickle.UnpicklingError as e:
        raise UnsafePickleError(f'tensor storage refused by the weights-only loader: {e}') from None


def _storage_elements(storage, dtype):
    nbytes = storage.nbytes() if isinstance(storage, torch.UntypedStorage) else storage._untyped_storage.nbytes()
    return nbytes // max(1, torch.empty((), dtype=dtype).element_size())


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise NetworkPickleError('tensor rebuilt from something that is not a storage')
    if backward_hooks:
        raise UnsafePickleError('tensor carries backward hooks; refused')
    if (not isinstance(storage_offset, int) or not isinstance(size, tuple) or not isinstance(stride, tuple)
            or len(size) != len(stride) or len(size) > 16
            or not all(isinstance(v, int) and v >= 0 for v in (storage_offset, *size, *stride))):
        raise NetworkPickleError('malformed tensor header (offset, size, stride)')
    # A view may not hold more elements than its storage (stride-0 views would turn a few bytes
    # into a tensor whose every later use runs for hours).
    dtype = storage.dtype if isinstance(storage, torch.TypedStorage) else torch.uint8
    if math.prod(size) > _storage_elements(storage, dtype):
        raise NetworkPickleError(f'a tensor of shape {size} is larger than its storage; refused')
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
                                           collections.OrderedDict(), metadata)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    if not isinstance(data, torch.Tensor):
        raise NetworkPickleError('parameter rebuilt from something that is not a tensor')
    if backward_hooks:
        raise UnsafePickleError('parameter carries backward hooks; refused')
    return torch.nn.Parameter(data, requires_grad=bool(requires_grad))


_NUMPY_KINDS = 'biufc'          # bool, signed, unsigned, float, complex: plain numbers only


def _plain_number_dtype(dtype, what):
    if not isinstance(dtype, np.dtype) or dtype.hasobject or dtype.kind not in _NUMPY_KINDS or dtype.fields:
        raise UnsafePickleError(f'{what} of dtype {dtype!r} refused (only plain numeric numpy data is allowed; '
                                'object dtypes would dereference raw bytes as pointers)')
    return dtype


def _numpy_dtype(obj, align=False, copy=False):
    # Always a fresh copy: the pickle's BUILD step then sets state on our copy, never on
    # numpy's shared built-in dtype objects. Checked again where it is used (after BUILD).
    if not isinstance(obj, str) or len(obj) > 8:
        raise UnsafePickleError(f'numpy dtype {obj!r} refused (only plain numeric type codes are allowed)')
    return _plain_number_dtype(np.dtype(obj, bool(align), True), 'numpy dtype')


def _numpy_scalar(dtype, data=None):
    _plain_number_dtype(dtype, 'numpy scalar')
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise NetworkPickleError('malformed numpy scalar (its bytes do not match its dtype)')
    return np.frombuffer(data, dtype=dtype)[0].copy()


class _ArrayClass:
    """What the unpickler gets for ``numpy.ndarray``: only a marker for ``_reconstruct`` (calling
    ndarray(shape) from a pickle would allocate whatever shape it names)."""


def _numpy_reconstruct(subtype, shape, typecode):
    # numpy pickles an array as _reconstruct(ndarray, (0,), b'b') then BUILD with its state.
    if subtype is not _ArrayClass:
        raise UnsafePickleError('numpy _reconstruct of anything but a plain ndarray refused')
    return np.ndarray.__new__(SafeArray, (0,), 'b')


class SafeArray(np.ndarray):
    """A numpy array read from a pickle: its state is checked before numpy sees it (plain
    numeric dtype, a shape whose size matches the bytes present); pickled again as a plain
    ndarray, so the host reads what we write. (stylegan3 networks keep int64 sizes in
    ndarrays.)"""

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) != 5:
            raise NetworkPickleError('malformed numpy array state')
        version, shape, dtype, fortran, raw = state
        _plain_number_dtype(dtype, 'numpy array')
        if (not isinstance(shape, tuple) or len(shape) > 32
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in shape)):
            raise NetworkPickleError('malformed numpy array shape')
        if not isinstance(raw, bytes) or len(raw) != math.prod(shape) * dtype.itemsize:
            raise NetworkPickleError('numpy array: its bytes do not match its shape and dtype')
        super().__setstate__((version, shape, dtype, bool(fortran), raw))

    def __reduce__(self):
        return np.asarray(self).view(np.ndarray).__reduce__()

    def __reduce_ex__(self, protocol):
        return self.__reduce__()


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


def _bare_module_maker(cls):
    """What the unpickler gets for a plain torch class: it makes a bare instance whatever it is
    called with, so a pickle can never run the class's constructor (``Linear(65536, 65536)``
    from a few bytes would allocate and fill 16 GiB); the pickle's state is set afterwards."""
    class BareModule:
        def __new__(maker, *args, **kwargs):
            return cls.__new__(cls)
    BareModule.__qualname__ = BareModule.__name__ = f'Bare{cls.__name__}'
    return BareModule


_ALLOWED_GLOBALS = {
    'torch_utils.persistence._reconstruct_persistent_obj': _reconstruct_persistent_obj,
    'collections.OrderedDict': collections.OrderedDict,
    'torch._utils._rebuild_tensor_v2': _rebuild_tensor_v2,
    'torch._utils._rebuild_parameter': _rebuild_parameter,
    'torch._utils._rebuild_parameter_with_state': _rebuild_parameter,
    'torch.storage._load_from_bytes': _load_storage_from_bytes,
    'numpy.core.multiarray.scalar': _numpy_scalar,
    'numpy._core.multiarray.scalar': _numpy_scalar,
    'numpy.dtype': _numpy_dtype,
    'numpy.ndarray': _ArrayClass,
    'numpy.core.multiarray._reconstruct': _numpy_reconstruct,
    'numpy._core.multiarray._reconstruct': _numpy_reconstruct,
    'dnnlib.util.EasyDict': EasyDict,
    'builtins.set': _set,
    '__builtin__.set': _set,
    'builtins.frozenset': frozenset,
    '_codecs.encode': _codecs_encode,
    **{name: _bare_module_maker(cls) for name, cls in PLAIN_TORCH_MODULES.items()},
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


MAX_DEPTH = 200                 # real snapshots nest about 20 levels (records, states, modules)
MAX_NODES = 2_000_000           # containers and leaves counted as a tree (shared parts counted each time)


def _children(obj):
    if isinstance(obj, PersistentRecord):
        return [obj.meta]
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return list(obj)
    if isinstance(obj, torch.nn.Module):
        return [obj.__dict__]
    return None


def check_structure(data, name):
    """Refuse what recursive code could not walk: nesting deeper than MAX_DEPTH, a structure
    that contains itself, or one whose shared parts expand to more than MAX_NODES (a few
    kilobytes of pickle can share a list with itself 2**40 times over). Iterative, each
    object visited once."""
    height, size, open_ = {}, {}, set()
    stack = [(data, False)]
    while stack:
        obj, finished = stack.pop()
        key = id(obj)
        kids = _children(obj)
        if kids is None or (not finished and key in height):
            continue
        if finished:
            open_.discard(key)
            height[key] = 1 + max((height.get(id(c), 0) for c in kids), default=0)
            size[key] = 1 + sum(size.get(id(c), 1) for c in kids)
            if height[key] > MAX_DEPTH:
                raise NetworkPickleError(f'{name}: nested more than {MAX_DEPTH} levels deep; refused')
            if size[key] > MAX_NODES:
                raise NetworkPickleError(f'{name}: its shared parts expand to more than {MAX_NODES:,} objects; refused')
            continue
        if key in open_:
            raise NetworkPickleError(f'{name}: a structure that contains itself; refused')
        open_.add(key)
        stack.append((obj, True))
        stack.extend((c, False) for c in kids)


# --- Rebuilding records into the active host's modules. ----------------------------------------

def _module_class_for(record, host):
    family = record.family
    if family.startswith('plugin:'):
        return class_registry.own_persistent_class(family[len('plugin:'):], record.class_name)
    return host.network_class(family, record.class_name)


# Stored constructor kwargs are plain data. Their size and depth are already bounded by
# check_structure, which every loaded file passes before any record is rebuilt.
MAX_INT = 2 ** 40               # larger ints are no network's sizes (and big-int arithmetic can stall)


def check_stored_kwargs(record, host, what):
    """Refuse stored constructor arguments that are not plain data, or that name a class
    outside the closed registry, before any constructor sees them. Returns nothing; raises
    UnsafePickleError naming the path and the value."""

    def walk(value, path):
        if value is None or isinstance(value, (bool, float, str)):
            return
        if isinstance(value, int):
            if abs(value) > MAX_INT:
                raise UnsafePickleError(f'{what}: {path} = {value} is implausibly large for a network; refused')
            return
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise UnsafePickleError(f'{what}: {path} has a key of type {type(key).__name__}; refused')
                if key == 'class_name':
                    _check_class_name(item, f'{path}.class_name', host, what)
                walk(item, f'{path}.{key}')
            return
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(item, f'{path}[{i}]')
            return
        raise UnsafePickleError(f'{what}: {path} holds a {type(value).__name__}; stored kwargs must be plain data')

    walk(list(record.init_args), '_init_args')
    walk(record.state.get('_init_kwargs', {}), '_init_kwargs')


def _check_class_name(value, path, host, what):
    try:
        with class_registry.networks_only():
            host.resolve_class_path(value)
    except class_registry.UnregisteredClassError:
        raise UnsafePickleError(f'{what}: {path} = {value!r} is not a registered network class; refused '
                                '(nothing a pickle names is imported)') from None


class _AllocationGuard(torch.overrides.TorchFunctionMode):
    """Bounds what a constructor allocates with factory functions (randn, empty, zeros, ...)
    and how many submodules it creates. Each tensor request is sized on the meta device
    first, so a refused one never allocates."""

    # Factories whose size comes from their arguments: sized on the meta device first.
    SIZED = {torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn, torch.randint,
             torch.randperm, torch.arange, torch.linspace, torch.logspace, torch.eye, torch.empty_strided}
    # Factories from data (bounded by the stored kwargs): counted after the fact.
    FROM_DATA = {torch.tensor, torch.as_tensor}

    def __init__(self, budget, max_modules, what):
        super().__init__()
        self.budget, self.max_modules, self.what, self.spent, self.modules = budget, max_modules, what, 0, 0

    def __enter__(self):
        self._hook = torch.nn.modules.module.register_module_module_registration_hook(self._count_module)
        return super().__enter__()

    def __exit__(self, *exc):
        self._hook.remove()
        return super().__exit__(*exc)

    def _count_module(self, parent, name, child):
        self.modules += 1
        if self.modules > self.max_modules:
            raise UnsafePickleError(f'{self.what}: its stored kwargs would build more than {self.max_modules:,} '
                                     'layers (far more than the tensors it carries); refused')

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.SIZED:
            probe = func(*args, **{**kwargs, 'device': 'meta'})   # the mode is off inside its handler
            self._spend(probe.numel() * probe.element_size())
        result = func(*args, **kwargs)
        if func in self.FROM_DATA and isinstance(result, torch.Tensor):
            self._spend(result.numel() * result.element_size())
        return result

    def _spend(self, nbytes):
        self.spent += nbytes
        if self.spent > self.budget:
            raise UnsafePickleError(f'{self.what}: its stored kwargs would allocate more than {self.budget:,} bytes '
                                     f'(the tensors it carries allow that much); refused')


ALLOCATION_SLACK = 256 * 2 ** 20    # bytes a constructor may allocate beyond its record's tensors


def rebuild_module(record, host=None, what='module'):
    """Build ``record`` as a module of ``host``; None when the host has no such class.

    Only registered classes are built (class_registry), stored kwargs must be plain data
    naming only registered network classes, and the constructor may allocate at most a few
    times the bytes of the tensors the record carries. Any failure is a NetworkPickleError."""
    host = host or active_host()
    check_stored_kwargs(record, host, what)       # first: even a record kept as data must be plain
    cls = _module_class_for(record, host)
    if cls is None:
        return None
    tensors = list(record.named_tensors())
    budget = 4 * sum(t.numel() * t.element_size() for _, t, _ in tensors if isinstance(t, torch.Tensor))
    try:
        with class_registry.networks_only(), _AllocationGuard(budget + ALLOCATION_SLACK, 4 * len(tensors) + 1000,
                                                              what):
            module = cls(*copy.deepcopy(record.init_args), **copy.deepcopy(record.init_kwargs))
    except class_registry.UnregisteredClassError as e:
        raise UnsafePickleError(f'{what}: {e}') from None
    except NetworkPickleError:
        raise
    except Exception as e:         # our constructors, fed data from a file: any failure is the file's
        raise NetworkPickleError(f'{what}: {record.class_name} kwargs {_short_repr(record.init_kwargs)} are not '
                                 f'understood by the {host.name} host: {type(e).__name__}: {e}') from None
    load_tensors(module, dict((n, t) for n, t, _ in tensors), what=what)
    module.train(bool(record.state.get('training', False)))
    requires_grad = {n: t.requires_grad for n, t, k in tensors if k == 'parameter' and isinstance(t, torch.Tensor)}
    for name, p in module.named_parameters():
        p.requires_grad_(requires_grad.get(name, False))
    return module


def _short_repr(value, n=300):
    return _clip(repr(value), n)


def _clip(text, n):
    return text if len(text) <= n else text[:n] + '...'


def load_tensors(module, tensors, what='module'):
    """Copy ``tensors`` (name -> tensor) into ``module``'s parameters and buffers; names and
    shapes must match exactly (a silent broadcast would corrupt the network)."""
    bad = sorted(n for n, t in tensors.items() if not isinstance(t, torch.Tensor))
    if bad:
        raise NetworkPickleError(f'{what}: entries that should be tensors are not: {_short(bad)}')
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


# Opcodes a network pickle never needs: out-of-band buffers and bytearrays (protocol 5; the
# C unpickler allocates a bytearray's declared size before reading it), persistent ids, and
# the protocol-0/1 instance opcodes. Host snapshots are protocol 4 (ours too).
_REFUSED_OPCODES = {'BYTEARRAY8', 'NEXT_BUFFER', 'READONLY_BUFFER', 'PERSID', 'BINPERSID', 'INST', 'OBJ',
                    'EXT1', 'EXT2', 'EXT4'}


def _scan_opcodes(blob, name):
    """Walk the opcodes (pure parsing, no object is built; ~10 ms for a 5 MB snapshot) and
    refuse those above before the unpickler acts on any of them."""
    try:
        for op, _, pos in pickletools.genops(io.BytesIO(blob)):
            if op.name in _REFUSED_OPCODES:
                raise UnsafePickleError(f'{name}: opcode {op.name} at byte {pos} is not allowed in a network pickle')
    except NetworkPickleError:
        raise
    except ValueError as e:
        raise NetworkPickleError(f'{name}: not a readable network pickle (truncated or corrupt?): {_clip(str(e), 200)}') \
            from None


def _unpickle(f, name):
    blob = f.read()
    if blob[:2] == b'PK':
        raise NetworkPickleError(f'{name}: a zip archive (torch.save checkpoint or dataset?), not a network pickle')
    if len(blob) < 2 or blob[0] != pickle.PROTO[0] or not 2 <= blob[1] <= pickle.HIGHEST_PROTOCOL:
        raise NetworkPickleError(f'{name}: not a readable network pickle (no pickle header; truncated or corrupt?)')
    _scan_opcodes(blob, name)
    return SafeUnpickler(io.BytesIO(blob)).load()


# --- Public API. ---------------------------------------------------------------------------

def load_network_pkl(path_or_file, host=None, rebuild=True):
    """Read a host-layout network pickle safely.

    Returns a dict with the pickle's keys (any subset of G, D, G_ema, augment_pipe,
    training_set_kwargs, plus whatever else it holds). Network records are rebuilt as
    modules of ``host`` (default: the active host); objects the host has no class for stay
    ``PersistentRecord``s, with a warning. ``rebuild=False`` returns all records as data.
    Whatever the file holds, the only exceptions are NetworkPickleError and its subclass
    UnsafePickleError.
    """
    host = get_host(host) if host is not None else active_host()
    name = (os.fspath(path_or_file) if isinstance(path_or_file, (str, os.PathLike))
            else str(getattr(path_or_file, 'name', '<stream>')))
    try:
        return _load(path_or_file, name, host, rebuild)
    except NetworkPickleError as e:
        if str(e).startswith(name):
            raise
        raise type(e)(f'{name}: {e}') from None
    except FileNotFoundError:
        raise NetworkPickleError(f'{name}: no such file') from None
    except IsADirectoryError:
        raise NetworkPickleError(f'{name}: is a directory, not a pickle') from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RuntimeError, UnicodeDecodeError, MemoryError, OverflowError, RecursionError) as e:
        raise NetworkPickleError(f'{name}: not a readable network pickle (truncated or corrupt?): '
                                 f'{type(e).__name__}: {_clip(str(e), 200)}') from None
    except Exception as e:          # anything else a malformed file provokes is still the file's fault
        raise NetworkPickleError(f'{name}: not a usable network pickle: {type(e).__name__}: '
                                 f'{_clip(str(e), 200)}') from None


def _load(path_or_file, name, host, rebuild):
    if hasattr(path_or_file, 'read'):
        data = _unpickle(path_or_file, name)
    else:
        with open(path_or_file, 'rb') as f:
            data = _unpickle(f, name)
    check_structure(data, name)
    if not isinstance(data, dict):
        raise NetworkPickleError(f'{name}: expected a dict of networks, found {type(data).__name__}')
    if not any(isinstance(data.get(k), PersistentRecord) for k in ('G', 'D', 'G_ema')):
        keys = ', '.join(map(str, data.keys())) or 'none'
        raise NetworkPickleError(f'{name}: no network under G, D or G_ema (keys: {_clip(keys, 200)})')
    if rebuild:
        for key, value in list(data.items()):
            if isinstance(value, PersistentRecord):
                module = rebuild_module(value, host, what=f'{name}[{key}]')
                if module is None:
                    warnings.warn(f'{name}[{key}]: {value.family}:{value.class_name} has no class in the '
                                  f'{host.name} host; kept as inert data', stacklevel=3)
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
