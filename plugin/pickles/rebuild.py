"""Rebuilding records into a host's modules, with the resource bounds, and the one entry
point that reads and rebuilds a pickle for a given host (``load``). The host is always an
argument here: choosing the active host is ``plugin.pickles``' (the package's) job.
"""
import copy
import os
import pickle
import warnings

import torch

from .. import class_registry
from . import read
from .read import (NetworkPickleError, PersistentRecord, UnsafePickleError, _clip, _short,
                   _short_repr)

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

    def __init__(self,
        budget,       # Bytes the guarded code may allocate in all; more raises UnsafePickleError.
        max_modules,  # Submodules it may register; more raises UnsafePickleError.
        what,         # Name of what is being built, for error messages.
    ):
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


def rebuild_module(record, host, what='module'):
    """Build ``record`` as a module of ``host``; None when the host has no such class.

    Only registered classes are built (class_registry), stored kwargs must be plain data
    naming only registered network classes, and the constructor may allocate at most a few
    times the bytes of the tensors the record carries. Any failure is a NetworkPickleError."""
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


def load(path_or_file, host, rebuild=True):
    """Read a host-layout network pickle safely.

    Returns a dict with the pickle's keys (any subset of G, D, G_ema, augment_pipe,
    training_set_kwargs, plus whatever else it holds). Network records are rebuilt as
    modules of ``host``; objects the host has no class for stay
    ``PersistentRecord``s, with a warning. ``rebuild=False`` returns all records as data.
    Whatever the file holds, the only exceptions are NetworkPickleError and its subclass
    UnsafePickleError.
    """
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
    data = read.read_records(path_or_file, name)
    if rebuild:
        for key, value in list(data.items()):
            if isinstance(value, PersistentRecord):
                module = rebuild_module(value, host, what=f'{name}[{key}]')
                if module is None:
                    warnings.warn(f'{name}[{key}]: {value.family}:{value.class_name} has no class in the '
                                  f'{host.name} host; kept as inert data', stacklevel=4)
                else:
                    data[key] = module
    return data
