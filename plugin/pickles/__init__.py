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

README "What loading a pickle guarantees" states the contract; tests/plugin/pickles/test_hostile_pickles.py
and tests/plugin/pickles/test_pickle_fuzz.py hold it.

Layout: ``read`` (unpickler, checks, records; no host), ``rebuild`` (records -> a given host's
modules), ``write`` (the host layout); this package picks the host (the active one unless told)
and is what the rest of the plugin imports. Hosts themselves use the submodules, so that the
host registry and the pickle reader do not import each other.
"""

from ..files import atomic_write_bytes, load_tensors_file, save_tensors
from ..hosts import active_host, get_host
from .read import (MAX_DEPTH, MAX_NODES, PLAIN_TORCH_MODULES, NetworkPickleError, PersistentRecord, SafeArray,
                   SafeUnpickler, UnsafePickleError, check_structure, detect_family)
from .rebuild import ALLOCATION_SLACK, MAX_INT, check_stored_kwargs, load_tensors
from .rebuild import load as _load, rebuild_module as _rebuild_module
from .write import dumps_network_pkl, save_network_pkl

__all__ = ['ALLOCATION_SLACK', 'MAX_DEPTH', 'MAX_INT', 'MAX_NODES', 'PLAIN_TORCH_MODULES', 'NetworkPickleError',
           'PersistentRecord', 'SafeArray', 'SafeUnpickler', 'UnsafePickleError', 'atomic_write_bytes',
           'check_stored_kwargs', 'check_structure', 'detect_family', 'dumps_network_pkl', 'load_network_pkl',
           'load_tensors', 'load_tensors_file', 'rebuild_module', 'save_network_pkl', 'save_tensors']


def _host(host):
    return get_host(host) if host is not None else active_host()


def load_network_pkl(path_or_file, host=None, rebuild=True):
    """Read a host-layout network pickle safely (``rebuild.load``) for ``host`` (a Host, a
    checkout path, 'embedded'; default: the active host)."""
    return _load(path_or_file, _host(host), rebuild=rebuild)


def rebuild_module(record, host=None, what='module'):
    """``record`` built as a module of ``host`` (default: the active host); see rebuild.rebuild_module."""
    return _rebuild_module(record, _host(host), what=what)
