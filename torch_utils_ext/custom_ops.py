"""Loading fused CUDA ops: JIT-built with ninja through torch.utils.cpp_extension, cached by
a hash of their sources, and never retried after a failure.

``get_plugin(name, sources)`` returns the compiled module, or None when the op should use
its reference path: no CUDA device (nothing is attempted on a CPU), or a build that failed.
Inside ``emulation.emulated_kernels()`` it returns the same sources built for the CPU emulator.
A failure warns once, with the reason on one line, and is remembered for the life of the
process (the host's upfirdn2d loader retries on every call); a marker file in the build
directory remembers it across processes until the sources change.
"""
import hashlib
import os
import warnings

import torch

from torch_utils_ext import emulation
from torch_utils_ext.build_cache import cache_root

_plugins = {}                 # name -> module or None (failed / unavailable)


def _source_hash(sources):
    h = hashlib.sha256()
    for path in sources:
        h.update(os.path.basename(path).encode())
        with open(path, 'rb') as f:
            h.update(f.read())
    h.update(torch.__version__.encode())
    h.update(str(torch.version.cuda).encode())
    return h.hexdigest()[:16]


def on_kernel_device(*tensors):
    """Whether tensors can take an op's kernel path: on a CUDA device, or on the CPU while the
    kernels are emulated (``torch_utils_ext.emulation``, for tests)."""
    device = 'cpu' if emulation.active() else 'cuda'
    return all(t.device.type == device for t in tensors)


def get_plugin(name, sources, **build_kwargs):
    if emulation.active():                      # tests: the same sources, compiled for the CPU emulator
        return emulation.build(name, sources)
    if name in _plugins:
        return _plugins[name]
    if not torch.cuda.is_available():
        _plugins[name] = None
        return None
    build_dir = os.path.join(cache_root(), f'{name}-{_source_hash(sources)}')
    failed_marker = os.path.join(build_dir, 'BUILD_FAILED')
    if os.path.isfile(failed_marker):
        with open(failed_marker) as f:
            reason = f.read().strip()
        warnings.warn(f'custom op {name}: an earlier build of these sources failed ({reason}); using the '
                      f'reference implementation. Delete {build_dir} to retry.', stacklevel=2)
        _plugins[name] = None
        return None
    try:
        from torch.utils import cpp_extension
        os.makedirs(build_dir, exist_ok=True)
        module = cpp_extension.load(name=name, sources=list(sources), build_directory=build_dir, verbose=False,
                                    **build_kwargs)
    except Exception as e:                      # compiler missing, nvcc error, ABI mismatch, ...
        reason = ' '.join(str(e).split())[:300] or type(e).__name__
        try:
            with open(failed_marker, 'w') as f:
                f.write(reason + '\n')
        except OSError:
            pass
        warnings.warn(f'custom op {name}: build failed ({reason}); using the reference implementation', stacklevel=2)
        module = None
    _plugins[name] = module
    return module


def reset(name=None):
    """Forget loaded or failed plugins (tests; after fixing a toolchain)."""
    if name is None:
        _plugins.clear()
    else:
        _plugins.pop(name, None)
