"""Patching a legacy pipeline (a forked host, or a script that calls its training loop or
networks directly) in memory, by configuration, with an undo.

    import plugin
    handle = plugin.patch('/path/to/stylegan2-ada-pytorch')      # or features=[...]
    ...                                                           # the pipeline, unchanged
    handle.undo()                                                 # (or: with plugin.patch(...):)

Features (all by default):
  'safe_pickles'  legacy.load_network_pkl reads pickles with the plugin's safe loader: networks
                  are rebuilt as the checkout's classes from their kwargs; no code in a pickle
                  runs.
  'custom_ops'    torch_utils.custom_ops.get_plugin builds through the plugin's loader: a failed
                  build is remembered (per source hash, across processes) and not retried.
  'resume'        training_loop() continues a resumed run where it stopped: kimg from the
                  pickle (its training_state, or its snapshot file name) and the augment
                  probability from its augment pipe, instead of restarting both at 0.
  'cond_copy'     the resume copy tolerates tensors whose shape changed (an unconditional
                  source resumed into a conditional run widens the mapping's first layer): the
                  overlapping slice is copied and the rest keeps its initialisation, where the
                  host's copy fails.

'resume' and 'cond_copy' rewrite ``training_loop()`` from its source (an AST transform of
the statements named above, compiled into the module's namespace). When the module does not
have the layout the patch expects (a fork changed those lines), ``PatchError`` says which
statement is missing and nothing is changed.
"""
import ast
import functools
import inspect
import os
import re
import textwrap
import warnings

import torch

from .hosts import set_active_host

FEATURES = ('safe_pickles', 'custom_ops', 'resume', 'cond_copy')


class PatchError(RuntimeError):
    """The pipeline's layout is not what a patch expects."""


class Patch:
    """Undo handle: restores every replaced attribute, in reverse order."""

    def __init__(self):
        self._undo = []

    def replace(self, owner, name, value):
        self._undo.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    def undo(self):
        while self._undo:
            owner, name, value = self._undo.pop()
            setattr(owner, name, value)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.undo()


def patch(host_path=None, features=FEATURES, training_loop_module=None):
    """Apply ``features`` to the checkout at ``host_path`` (or the one already imported), or
    to ``training_loop_module`` (a module object, e.g. a fork's copy). Returns a Patch."""
    unknown = sorted(set(features) - set(FEATURES))
    if unknown:
        raise PatchError(f'unknown patch feature(s) {unknown}; choose from {", ".join(FEATURES)}')
    if host_path is not None:
        set_active_host(host_path)
    handle = Patch()
    try:
        if 'safe_pickles' in features:
            import legacy
            handle.replace(legacy, 'load_network_pkl', _safe_load_network_pkl)
        if 'custom_ops' in features:
            from torch_utils import custom_ops
            handle.replace(custom_ops, 'get_plugin', _get_plugin_once)
        loop_features = [f for f in ('resume', 'cond_copy') if f in features]
        if loop_features:
            if training_loop_module is None:
                from training import training_loop as training_loop_module
            handle.replace(training_loop_module, 'training_loop',
                           patched_training_loop(training_loop_module, loop_features))
    except BaseException:
        handle.undo()
        raise
    return handle


# -- safe pickles ----------------------------------------------------------------------------------
def _safe_load_network_pkl(f, force_fp16=False):
    from .pickles import load_network_pkl
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        data = load_network_pkl(f)
    if force_fp16:
        raise PatchError('load_network_pkl(force_fp16=True) is not supported by the safe loader')
    return data


# -- custom ops ------------------------------------------------------------------------------------
def _get_plugin_once(module_name, sources, **build_kwargs):
    from torch_utils_ext.custom_ops import get_plugin
    module = get_plugin(module_name, sources, **build_kwargs)
    if module is None:                 # the host's caller catches this and uses its reference path
        raise RuntimeError(f'{module_name}: not built (no CUDA, or an earlier build failed); not retrying')
    return module


# -- the training loop -----------------------------------------------------------------------------
def patched_training_loop(module, features):
    """``module.training_loop`` rewritten for ``features``; PatchError if its layout differs."""
    fn = module.training_loop
    src = textwrap.dedent(inspect.getsource(fn))
    tree = ast.parse(src)
    func = tree.body[0]
    if not isinstance(func, ast.FunctionDef) or func.name != 'training_loop':
        raise PatchError(f'{module.__file__}: training_loop is not a plain function')
    where = f'{os.path.basename(module.__file__)}: training_loop()'
    if 'resume' in features:
        _replace_assign(func, 'cur_nimg', '_cocktail_resume_nimg(resume_pkl)', where, 'cur_nimg = 0')
        _insert_after_call(func, 'augment_pipe.p.copy_', '_cocktail_resume_augment_p(augment_pipe, resume_pkl)', where)
    if 'cond_copy' in features:
        _rename_call(func, 'misc.copy_params_and_buffers', '_cocktail_copy_params', where)
    ast.fix_missing_locations(tree)
    namespace = dict(module.__dict__, _cocktail_resume_nimg=resume_nimg,
                     _cocktail_resume_augment_p=resume_augment_p, _cocktail_copy_params=copy_params_widening)
    exec(compile(tree, module.__file__, 'exec'), namespace)
    new = namespace['training_loop']
    new.__cocktail_patched__ = tuple(features)
    return new


def _walk_statements(func):
    for node in ast.walk(func):
        for field in ('body', 'orelse', 'finalbody'):
            stmts = getattr(node, field, None)
            if isinstance(stmts, list):
                yield stmts


def _replace_assign(func, target, expr, where, expected):
    for stmts in _walk_statements(func):
        for i, s in enumerate(stmts):
            if isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name) \
                    and s.targets[0].id == target and isinstance(s.value, ast.Constant) and s.value.value == 0:
                s.value = ast.parse(expr, mode='eval').body
                return
    raise PatchError(f'{where} does not match the layout the patch expects: no `{expected}`')


def _call_name(node):
    return ast.unparse(node.func) if isinstance(node, ast.Call) else None


def _insert_after_call(func, call, stmt, where):
    for stmts in _walk_statements(func):
        for i, s in enumerate(stmts):
            if isinstance(s, ast.Expr) and _call_name(s.value) == call:
                stmts.insert(i + 1, ast.parse(stmt).body[0])
                return
    raise PatchError(f'{where} does not match the layout the patch expects: no `{call}(...)` statement')


def _rename_call(func, call, new_name, where):
    found = False
    for node in ast.walk(func):
        if isinstance(node, ast.Call) and _call_name(node) == call:
            node.func = ast.Name(id=new_name, ctx=ast.Load())
            found = True
    if not found:
        raise PatchError(f'{where} does not match the layout the patch expects: no `{call}(...)` call')


# -- what the patched loop calls -------------------------------------------------------------------
def _resume_data(resume_pkl):
    if resume_pkl is None or not os.path.isfile(str(resume_pkl)):
        return None
    return _read_records(os.path.abspath(str(resume_pkl)), os.stat(str(resume_pkl)).st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _read_records(path, mtime_ns):
    """The pickle as records (read once for both resume hooks; the mtime keys a rewritten file)."""
    from .pickles import load_network_pkl
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return load_network_pkl(path, rebuild=False)


def resume_nimg(resume_pkl):
    """Images already shown in the run the pickle comes from: its training_state (embedded
    loop), else the kimg in a host snapshot's file name (network-snapshot-000123.pkl), else 0."""
    if resume_pkl is None:
        return 0
    data = _resume_data(resume_pkl)
    state = data.get('training_state') if isinstance(data, dict) else None
    if isinstance(state, dict) and 'cur_nimg' in state:
        return int(state['cur_nimg'])
    m = re.search(r'network-snapshot-(\d{6})\.pkl$', str(resume_pkl))
    return int(m.group(1)) * 1000 if m else 0


def resume_augment_p(augment_pipe, resume_pkl):
    """Restore the augment probability the resumed run had reached (its augment pipe's p)."""
    data = _resume_data(resume_pkl)
    if augment_pipe is None or not isinstance(data, dict) or data.get('augment_pipe') is None:
        return None
    pipe = data['augment_pipe']
    p = {n: t for n, t, _ in pipe.named_tensors()}.get('p') if hasattr(pipe, 'named_tensors') else getattr(pipe, 'p', None)
    if p is not None:
        augment_pipe.p.copy_(torch.as_tensor(p, device=augment_pipe.p.device).reshape(augment_pipe.p.shape))
    return p


@torch.no_grad()
def copy_params_widening(src_module, dst_module, require_all=False):
    """The host's copy of parameters and buffers by name, where a tensor whose shape grew
    (the mapping's first layer, or the label embedding, of an unconditional source resumed
    into a conditional run) gets the overlapping slice and keeps its initialisation elsewhere."""
    src = dict(src_module.named_parameters())
    src.update(src_module.named_buffers())
    dst = dict(dst_module.named_parameters())
    dst.update(dst_module.named_buffers())
    for name, t in dst.items():
        if name not in src:
            if require_all:
                raise PatchError(f'resume: {name} is missing in the source network')
            continue
        s = src[name].detach()
        if s.shape == t.shape:
            t.copy_(s)
        elif s.ndim == t.ndim:
            region = tuple(slice(0, min(a, b)) for a, b in zip(s.shape, t.shape))
            t[region] = s[region].to(t.dtype)
