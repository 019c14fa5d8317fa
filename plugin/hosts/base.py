"""What the plugin needs from a host, and nothing more.

Plugin features never import a host's modules directly: they ask the active ``Host`` for
classes (by the host's ``class_name`` strings or by persistent family) and construct them
with the host's kwargs. The embedded host is one implementation; a real checkout is another.
"""
import importlib


class HostError(RuntimeError):
    """A host cannot be used, or lacks something the plugin needs."""


class Host:
    name = 'abstract'

    # pickle family -> importable module holding the family's classes under their host names
    family_modules = {}
    # host class-path prefix (as in the kwargs' class_name) -> module that implements it here
    class_path_modules = {}

    def network_class(self, family, class_name):
        """The class implementing ``class_name`` of ``family`` in this host, or None."""
        module = self.family_modules.get(family)
        if module is None:
            return None
        cls = getattr(importlib.import_module(module), class_name, None)
        return cls if isinstance(cls, type) else None

    def resolve_class_path(self, class_path):
        """Resolve a ``class_name`` kwarg of the host (e.g. 'training.networks.Generator')."""
        for prefix, module in self.class_path_modules.items():
            if class_path.startswith(prefix):
                cls = getattr(importlib.import_module(module), class_path[len(prefix):], None)
                if isinstance(cls, type):
                    return cls
                raise HostError(f'{self.name} host: no class {class_path!r}')
        module, _, name = class_path.rpartition('.')
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError):
            raise HostError(f'{self.name} host: cannot resolve class {class_path!r}') from None

    def report(self, name, value):
        """A training statistic, to the collectors of the loop that runs (its stats.jsonl)."""
        from .embedded.training_stats import report
        return report(name, value)

    def construct_class_by_name(self, class_name, *args, **kwargs):
        return self.resolve_class_path(class_name)(*args, **kwargs)

    def __repr__(self):
        return f'<{type(self).__name__} {self.name}>'
