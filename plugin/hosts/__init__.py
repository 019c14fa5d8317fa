"""Host selection: the embedded host by default; ``--host PATH`` names a real checkout."""
import os

from .base import Host, HostError
from .embedded import EmbeddedHost

HOST_ENV = 'COCKTAIL_HOST'
_active = None


def get_host(spec=None):
    """A Host for ``spec``: None or 'embedded' -> the embedded host; a path -> a checkout."""
    if spec is None or spec == 'embedded':
        return EmbeddedHost()
    if isinstance(spec, Host):
        return spec
    if os.path.isdir(str(spec)):
        from .checkout import CheckoutHost
        return CheckoutHost(spec)
    raise HostError(f'--host {spec!r}: not a directory and not "embedded"')


def active_host():
    """The host used when none is passed: ``$COCKTAIL_HOST`` or the embedded one."""
    global _active
    if _active is None:
        _active = get_host(os.environ.get(HOST_ENV) or None)
    return _active


def set_active_host(spec):
    """Make ``spec`` the active host; a checkout is also put in $COCKTAIL_HOST so that
    processes the run spawns (one per GPU) use it too."""
    global _active
    _active = get_host(spec)
    if getattr(_active, 'path', None):
        os.environ[HOST_ENV] = _active.path
    return _active


def report(name, value):
    """A training statistic, to the loop that runs (the embedded one's or the checkout's
    training_stats, hence its stats.jsonl); returns ``value``."""
    return active_host().report(name, value)
