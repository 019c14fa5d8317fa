"""Run the fused CUDA kernels on a CPU, unchanged, to test their logic where no GPU is at hand.

``with emulation.emulated_kernels(): ...`` makes ``custom_ops.get_plugin`` return, for each op,
its .cu source compiled as ordinary C++ against ``ops/cuda/emulation/simt.h`` (a cooperative-
fiber model of CUDA's blocks, threads, barriers and warp shuffles), and makes the ops accept CPU
tensors on their kernel path. The kernel bodies and launchers compile exactly as written; only
the launch syntax, the device checks and the CUDA includes are rewritten (``translate``).

This is a test of indexing, reductions, backward formulas and launch geometry, run by CI on
every change. Two bug classes a single in-order schedule would hide are trapped cheaply: every
``__shared__`` array starts each block filled with NaN bytes (a read before a write, such as a
missing ``__syncthreads``, gives NaN, not a left-over value), and ``schedule_seed`` runs blocks and
threads in a seeded shuffled order (tests run a second order). It does not replace the check on
a real GPU (tools/gpu_verify.sh): threads switch only at barriers, so memory-ordering races and
races within a warp are not seen, nor reads of exited lanes (shuffle masks are not checked),
fast-math rounding or speed.

A leaf module: it imports nothing of the project's but the cache location.
"""
import contextlib
import hashlib
import os
import re
import shutil

import torch

from torch_utils_ext.build_cache import cache_root

_HEADER_DIR = os.path.join(os.path.dirname(__file__), 'ops', 'cuda', 'emulation')
_active = False
_modules = {}


class TranslationError(ValueError):
    pass


def active():
    return _active


def have_compiler():
    """Whether a C++ compiler is on PATH (the emulated build needs one, nothing else)."""
    return any(shutil.which(cc) for cc in (os.environ.get('CXX', 'c++'), 'c++', 'g++'))


# The emulated kernels read the schedule at each launch (ops/cuda/emulation/simt.h).
SCHEDULE_ENV = 'CUDA_EMU_SCHEDULE_SEED'
DEFAULT_SCHEDULE_SEED = 1           # shuffled: CI never runs only the in-order schedule


@contextlib.contextmanager
def emulated_kernels(schedule_seed=DEFAULT_SCHEDULE_SEED):
    """Within the block, the ops' kernel paths run emulated on CPU tensors; blocks and threads
    run in the order ``schedule_seed`` shuffles them into (0: in order)."""
    global _active
    previous, previous_seed = _active, os.environ.get(SCHEDULE_ENV)
    _active = True                  # custom_ops.get_plugin asks active() before its own cache
    os.environ[SCHEDULE_ENV] = str(int(schedule_seed))
    try:
        yield
    finally:
        _active = previous
        if previous_seed is None:
            os.environ.pop(SCHEDULE_ENV, None)
        else:
            os.environ[SCHEDULE_ENV] = previous_seed


def _matching(text, start, open_ch, close_ch):
    """Index just past the bracket that closes the one at ``start``."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == open_ch:
            depth += 1
        elif text[i] == close_ch:
            depth -= 1
            if depth == 0:
                return i + 1
    raise TranslationError(f'unbalanced {open_ch}{close_ch} from offset {start}')


_KERNEL_NAME = re.compile(r'([A-Za-z_][\w:]*(?:\s*<[^<>;()]*>)?)\s*$')


def _rewrite_launches(text):
    out, pos = [], 0
    while True:
        start = text.find('<<<', pos)
        if start < 0:
            out.append(text[pos:])
            return ''.join(out)
        name = _KERNEL_NAME.search(text, pos, start)
        if name is None:
            raise TranslationError(f'no kernel name before the launch at offset {start}')
        end_cfg = text.find('>>>', start + 3)
        if end_cfg < 0:
            raise TranslationError(f'unterminated launch configuration at offset {start}')
        cfg = text[start + 3:end_cfg]
        paren = end_cfg + 3
        while paren < len(text) and text[paren].isspace():
            paren += 1
        if paren >= len(text) or text[paren] != '(':
            raise TranslationError(f'no argument list after the launch at offset {start}')
        close = _matching(text, paren, '(', ')')
        args = text[paren + 1:close - 1].strip()
        out.append(text[pos:name.start()])
        out.append(f'::cuda_emu::launch(::cuda_emu::config({cfg.strip()}), {name.group(1).strip()}'
                   f'{", " + args if args else ""})')
        pos = close


def translate(source):
    """The .cu text as C++ for the emulator (see the module docstring)."""
    lines, last_include = [], -1
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith('#include') and re.search(r'[<"](c10/cuda/|ATen/cuda/|cuda_runtime|cuda\.h|cuda_fp16)',
                                                         stripped):
            line = '// (emulation) ' + line
        if stripped.startswith('#include'):
            last_include = len(lines)
        lines.append(line)
    lines.insert(last_include + 1, '#include "simt.h"')
    text = '\n'.join(lines) + '\n'
    text = _rewrite_launches(text)
    text = _SHARED_DECL.sub(lambda m: f'{m.group(0)} ::cuda_emu::poison_shared(&{m.group(1)}, sizeof({m.group(1)}));',
                            text)
    return text.replace('.is_cuda()', '.is_cpu()')


# A static __shared__ declaration statement: its variable's name (group 1). ``extern __shared__``
# (dynamic shared memory) is refused at launch instead.
_SHARED_DECL = re.compile(r'(?<!extern )\b__shared__\s+[\w:<>, ]+?\b(\w+)\s*(?:\[[^;\]]*\]\s*)*;')


def build(name, sources):
    """The emulated extension of an op: its .cpp bindings as they are, its .cu files translated."""
    if name in _modules:
        return _modules[name]
    from torch.utils import cpp_extension
    h = hashlib.sha256()
    for path in list(sources) + [os.path.join(_HEADER_DIR, 'simt.h'), __file__]:
        with open(path, 'rb') as f:
            h.update(f.read())
    h.update(torch.__version__.encode())
    build_dir = os.path.join(cache_root(), f'{name}-emulated-{h.hexdigest()[:16]}')
    os.makedirs(build_dir, exist_ok=True)
    built = []
    for path in sources:
        if path.endswith('.cu'):
            with open(path) as f:
                text = translate(f.read())
            path = os.path.join(build_dir, os.path.basename(path)[:-3] + '_emulated.cpp')
            _write_if_changed(path, text)       # an unchanged file keeps ninja's build
        built.append(path)
    module = cpp_extension.load(name=f'{name}_emulated', sources=built, build_directory=build_dir,
                                extra_include_paths=[_HEADER_DIR], extra_cflags=['-O2'], verbose=False)
    _modules[name] = module
    return module


def _write_if_changed(path, text):
    if os.path.isfile(path):
        with open(path) as f:
            if f.read() == text:
                return
    with open(path, 'w') as f:
        f.write(text)
