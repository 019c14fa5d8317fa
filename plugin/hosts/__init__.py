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
        raise HostError(f'--host {spec}: running inside a real checkout is not available in this version; '
                        'use the embedded host (omit --host)')
    raise HostError(f'--host {spec!r}: not a directory and not "embedded"')


def active_host():
    """The host used when none is passed: ``$COCKTAIL_HOST`` or the embedded one."""
    global _active
    if _active is None:
        _active = get_host(os.environ.get(HOST_ENV) or None)
    return _active


def set_active_host(spec):
    global _active
    _active = get_host(spec)
    return _active
