"""Persistent classes: modules that know how to be saved in the host's pickle layout.

The host pickles each network module as ``_reconstruct_persistent_obj(meta)`` where
``meta = {type, version, module_src, class_name, state}`` and ``state`` is the module's
``__dict__`` including the constructor arguments (``_init_args``, ``_init_kwargs``).
``@persistent_class`` records those arguments on our classes, so that

* the safe loader can rebuild any module from ``class_name + init kwargs + tensors`` and
  never needs (or runs) the source embedded in a pickle, and
* the saver can write our modules in exactly the host's layout.

A class names its *family*: classes that implement the host's own interface (the embedded
host's ``Generator`` is a stand-in for ``training.networks.Generator``) belong to
``'stylegan2.networks'``, so a pickle saved by one host is rebuilt into the active host's
classes. Plugin-only classes (miners, hyper-modulated layers) have no family and are found
by their own module path, looked up in the closed registry (plugin.class_registry).
"""
import copy
import functools
import re
import sys

PICKLE_VERSION = 6                       # the host's persistence format version
OWN_PACKAGES = ('plugin.', 'training_ext.', 'torch_utils_ext.')
_MARKER = '# gan-cocktail persistent class:'
_MARKER_RE = re.compile(r'^# gan-cocktail persistent class: family=(\S+) module=(\S+) class=(\w+)\s*$', re.M)

_REGISTRY = {}                           # (module, qualname) -> class
# family -> the host module its classes stand for (their class_name prefix in training options)
HOST_CLASS_PATHS = {'stylegan2.networks': 'training.networks.',
                    'stylegan3.networks_stylegan2': 'training.networks_stylegan2.',
                    'stylegan3.networks': 'training.networks_stylegan3.'}


def persistent_class(family=None):
    """Class decorator. ``family`` is the host interface the class implements, or None."""
    def decorate(cls):
        orig_init = cls.__init__

        @functools.wraps(orig_init)
        def __init__(self, *args, **kwargs):
            orig_init(self, *args, **kwargs)
            # The outermost decorated class runs last, so subclasses record their own args.
            if type(self).__init__ is __init__:
                object.__setattr__(self, '_init_args', copy.deepcopy(tuple(args)))
                object.__setattr__(self, '_init_kwargs', copy.deepcopy(dict(kwargs)))

        cls.__init__ = __init__
        cls.__reduce_ex__ = _reduce_ex
        cls.__deepcopy__ = _deepcopy
        cls._persistent_family = family
        _REGISTRY[(cls.__module__, cls.__qualname__)] = cls
        return cls
    return decorate


def _reduce_ex(self, protocol):
    """Pickled by any pickler (a host training loop's plain ``pickle.dump`` of a snapshot)
    while a host checkout is imported: the host's own layout, ``_reconstruct_persistent_obj(meta)``
    with our import shim as its source, which both the safe loader and the host's loader read.
    Without a checkout, ordinary pickling (our own writer, plugin.pickles, handles the layout)."""
    host_persistence = sys.modules.get('torch_utils.persistence')
    reconstruct = getattr(host_persistence, '_reconstruct_persistent_obj', None)
    if reconstruct is None or not hasattr(self, '_init_kwargs'):
        return object.__reduce_ex__(self, protocol)
    meta = dict(type='class', version=PICKLE_VERSION, module_src=module_src_for(type(self)),
                class_name=type(self).__qualname__, state=dict(self.__dict__))
    return reconstruct, (meta,)


def _deepcopy(self, memo):
    """What copy.deepcopy does for a plain object (deepcopy would otherwise use _reduce_ex)."""
    cls = type(self)
    clone = cls.__new__(cls)
    memo[id(self)] = clone
    for key, value in self.__dict__.items():
        clone.__dict__[key] = copy.deepcopy(value, memo)
    return clone


def is_persistent(obj):
    return (type(obj).__module__, type(obj).__qualname__) in _REGISTRY and hasattr(obj, '_init_kwargs')


def module_src_for(cls):
    """The ``module_src`` our pickles carry: a two-line import shim, not our source.

    A host that executes it (the real host's loader does) gets our class when the plugin
    is installed; our own loader only reads the marker line.
    """
    family = cls._persistent_family or '-'
    return (f'{_MARKER} family={family} module={cls.__module__} class={cls.__qualname__}\n'
            f'from {cls.__module__} import {cls.__qualname__}  # noqa: F401\n')


def constructor_kwargs(module):
    """``module``'s constructor kwargs plus the ``class_name`` that rebuilds it: the host's
    path for a host-family class (``training.networks.Generator``), else our own module path."""
    kw = copy.deepcopy(dict(module._init_kwargs))
    cls = type(module)
    if not hasattr(cls, '_persistent_family'):      # a host checkout's class (its own persistence)
        # Its decorator subclasses the checkout's class: the module of that class
        # (training.networks, or the stylegan3 repo's training.networks_stylegan2/3).
        module = getattr(cls.__mro__[1], '__module__', '') if len(cls.__mro__) > 1 else ''
        kw['class_name'] = f'{module if module.startswith("training.") else "training.networks"}.{cls._orig_class_name}'
        return kw
    prefix = HOST_CLASS_PATHS.get(cls._persistent_family, f'{cls.__module__}.')
    kw['class_name'] = prefix + cls.__qualname__
    return kw


def parse_own_module_src(src):
    """(family, module, class) when ``src`` is one of our shims, else None."""
    m = _MARKER_RE.search(src or '')
    if not m:
        return None
    family, module, name = m.groups()
    return (None if family == '-' else family), module, name


def registered_classes():
    """{(module, qualname): class} of every class decorated here so far."""
    return dict(_REGISTRY)


def is_host_persistent(obj):
    """Whether ``obj`` is an instance of a class decorated by a host's torch_utils.persistence
    (recognised by the attributes that decorator adds: nothing of the checkout is imported)."""
    cls = type(obj)
    return hasattr(cls, '_orig_module_src') and hasattr(cls, '_orig_class_name') and hasattr(obj, 'init_kwargs')
