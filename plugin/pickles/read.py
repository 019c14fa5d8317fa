"""Reading a network pickle as inert data: the safe unpickler, its checks, and records.

No host is involved here: a persistent object becomes a ``PersistentRecord`` (class name,
constructor kwargs, tensors); ``plugin.pickles.rebuild`` turns records into a host's modules.
The package docstring (``plugin/pickles/__init__.py``) states what loading guarantees.
"""
import collections
import io
import math
import pickle
import pickletools

import numpy as np
import torch

from .. import persistence
from ..easydict import EasyDict


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
        # The stylegan3 repo's networks_stylegan2.py renamed the mapping's skip_w_avg_update to
        # update_emas (and flattened Generator's synthesis_kwargs); stylegan2-ada's has no update_emas.
        if 'update_emas' in src and 'skip_w_avg_update' not in src:
            return 'stylegan3.networks_stylegan2'
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


def _short_repr(value, n=300):
    return _clip(repr(value), n)


def _clip(text, n):
    return text if len(text) <= n else text[:n] + '...'


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


def read_records(path_or_file, name):
    """The pickle at ``path_or_file`` as data (networks as PersistentRecords), checked: opcodes,
    globals, structure, and at least one network under G, D or G_ema."""
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
    return data
