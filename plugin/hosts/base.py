"""What the plugin needs from a host, and nothing more.

Plugin features never import a host's modules directly: they ask the active ``Host`` for
classes (by the host's ``class_name`` strings or by persistent family) and construct them
with the host's kwargs. The embedded host is one implementation; a real checkout is another.
"""
import functools

from plugin import class_registry
from plugin.errors import HostError  # noqa: F401 -- hosts raise it; imported from here too


class Host:
    name = 'abstract'

    # pickle family -> module holding the family's network classes under their host names
    family_modules = {}
    # host class-path prefix (as in the kwargs' class_name) -> module that implements it here
    class_path_modules = {}
    # packages whose classes a host module may hold (a class it imported from elsewhere is not
    # the host's): see class_registry.module_classes
    packages = ()

    def network_class(self, family, class_name):
        """The class implementing ``class_name`` of ``family`` in this host, or None. A lookup
        in the family module's own classes: a stored name is never getattr-ed on a module."""
        import torch
        module = self.family_modules.get(family)
        if module is None or not isinstance(class_name, str):
            return None
        cls = self._module_classes(module).get(class_name)
        return cls if isinstance(cls, type) and issubclass(cls, torch.nn.Module) else None

    def _module_classes(self, module):
        cache = self._classes_by_module
        if module not in cache:
            cache[module] = class_registry.module_classes(module, self.packages)
        return cache[module]

    @functools.cached_property
    def _classes_by_module(self):
        return {}

    @functools.cached_property
    def _registry(self):
        """The closed registry for this host: class path -> class (the host's seam classes
        under their host paths, and the plugin's own classes)."""
        found = dict(class_registry.own_classes())
        for prefix, module in self.class_path_modules.items():
            found.update((prefix + name, cls) for name, cls in self._module_classes(module).items())
        return found

    def classes(self):
        return self._registry

    def resolve_class_path(self, class_path):
        """Resolve a ``class_name`` (e.g. 'training.networks.Generator') in the closed registry;
        anything else raises UnregisteredClassError (nothing is imported by a given name)."""
        if not isinstance(class_path, str):
            raise class_registry.UnregisteredClassError(f'class_name must be a string, got {type(class_path).__name__}')
        cls = self.classes().get(class_registry.canonical(class_path))
        if cls is None:
            raise class_registry.UnregisteredClassError(
                f'{self.name} host: {class_path!r} is not a registered class (only host networks, '
                'losses, datasets, augment pipes and the plugin\'s own classes can be built by name)')
        return class_registry.check(class_path, cls)

    def report(self, name, value):
        """A training statistic, to the collectors of the loop that runs (its stats.jsonl).
        Each host says where: the embedded one to its training_stats, a checkout to its own."""
        raise NotImplementedError(f'{type(self).__name__}.report')

    def construct_class_by_name(self, class_name, *args, **kwargs):
        return self.resolve_class_path(class_name)(*args, **kwargs)

    def __repr__(self):
        return f'<{type(self).__name__} {self.name}>'
