"""The closed registry: the only classes that may ever be constructed by name.

A ``class_name`` string can come from a pickle (a persistent record's class, or a
``class_name`` nested in its stored constructor kwargs), from a JSON file a run left behind
(``training_options.json``, ``pipeline_state.json``) or from the plugin's own options. The
host resolves such strings by importing any dotted path; we never do. A name is looked up in
a dict built once from fixed module lists written in code (this file and each host's
``class_path_modules``), and a name not in it is refused. Nothing a file says is imported,
``getattr``-ed on a module, or evaluated.

Two levels: while a pickle is being rebuilt (``networks_only()``), only network classes
(``torch.nn.Module`` subclasses) resolve; the training loop may also build the seams it was
configured with (losses, datasets, optimisers).
"""
import contextlib
import contextvars
import importlib

# Our modules that define persistent classes (networks a pickle may hold). A constant list:
# tests/plugin/pickles/test_hostile_pickles.py fails when a module using @persistent_class is missing here.
OWN_NETWORK_MODULES = (
    'plugin.hosts.embedded.layers',
    'plugin.hosts.embedded.generator',
    'plugin.hosts.embedded.networks_stylegan3',
    'plugin.hosts.embedded.discriminator',
    'plugin.hosts.embedded.networks_stylegan2',
    'plugin.hosts.embedded.augment',
    'training_ext.mining.miner',
    'training_ext.hypermod.networks',
    'training_ext.bypass.encoders',
    'training_ext.bypass.networks',
)

# The plugin's training seams (losses, datasets) that its stages name in training options.
# Never constructed while a pickle is rebuilt (they are not networks).
OWN_SEAM_CLASSES = (
    'training_ext.common.generated.LabelDataset',
    'training_ext.common.generated.GeneratedDataLoss',
    'training_ext.mining.loss.MiningLoss',
    'training_ext.hypermod.loss.SelfInitLoss',
    'training_ext.hypermod.loss.HypermodLoss',
)

# Third-party classes the host's options name (optimisers).
THIRD_PARTY_CLASSES = ('torch.optim.Adam',)

# Class paths that moved: old path (as stored in older pickles) -> current path. Looked up
# before the registry, so pickles written by earlier versions keep loading.
MOVED = {}


class UnregisteredClassError(LookupError):
    """A class name that is not in the closed registry."""


_networks_only = contextvars.ContextVar('networks_only', default=False)
_own = None


@contextlib.contextmanager
def networks_only():
    """While active, only network classes resolve (a pickle is being rebuilt)."""
    token = _networks_only.set(True)
    try:
        yield
    finally:
        _networks_only.reset(token)


def rebuilding():
    return _networks_only.get()


def _split(path):
    module, _, name = path.rpartition('.')
    return module, name


def own_classes():
    """{'module.Class': class} for every class of ours that may be built by name."""
    global _own
    if _own is None:
        from . import persistence
        classes = {}
        for module in OWN_NETWORK_MODULES:
            importlib.import_module(module)            # a constant from the list above
        for (module, qualname), cls in persistence.registered_classes().items():
            if module.startswith(persistence.OWN_PACKAGES):
                classes[f'{module}.{qualname}'] = cls
        for path in OWN_SEAM_CLASSES + THIRD_PARTY_CLASSES:
            module, name = _split(path)
            classes[path] = getattr(importlib.import_module(module), name)  # constants, not stored names
        _own = classes
    return _own


def own_persistent_class(module, name):
    """Our persistent class named by a pickle's shim (module and class, as text), from the
    registry; None when it is not one of ours. The named module is never imported."""
    from . import persistence
    cls = own_classes().get(canonical(f'{module}.{name}'))
    registered = persistence.registered_classes()
    return cls if cls is not None and (cls.__module__, cls.__qualname__) in registered else None


def module_classes(module_name, packages):
    """The classes in fixed module ``module_name``'s namespace that belong to ``packages``
    (defined there or re-exported from a sibling), by name: never a class it merely imported
    from elsewhere (``subprocess.Popen`` imported by a module is not a network)."""
    module = importlib.import_module(module_name)
    return {name: obj for name, obj in vars(module).items()
            if isinstance(obj, type) and not name.startswith('_') and not issubclass(obj, BaseException)
            and obj.__module__.startswith(packages)}


def check(path, cls):
    """``cls`` as resolved for ``path``; refuses non-networks while a pickle is rebuilt."""
    import torch
    if rebuilding() and not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise UnregisteredClassError(f'{path!r} is not a network class; a pickle may only name networks')
    return cls


def canonical(path):
    return MOVED.get(path, path)
