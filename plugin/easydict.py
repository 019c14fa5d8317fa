"""EasyDict: a dict whose keys are also attributes (the host's config idiom).

Pickles written by the host reference ``dnnlib.util.EasyDict``; the safe loader maps that
name to this class and the saver writes this class under that name, so configs round-trip.
"""
import os


class EasyDict(dict):
    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def __delattr__(self, name):
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None


def to_plain(obj):
    """Deep copy of nested EasyDicts/dicts/lists as plain JSON-friendly containers."""
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj
