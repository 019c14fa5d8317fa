"""Patching a legacy pipeline (a forked host, or a script that calls its training loop or
networks directly) in memory, by configuration, with an undo. The machinery, below the host
registry (it is handed the host whose classes rebuild pickles); ``plugin.patch`` is the public
entry point that also picks the checkout.

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
  'cond_copy'     an unconditional (or fewer-class) source resumed into a conditional run is
                  widened function-preservingly first (plugin.widen: every class starts as
                  the source network), where the host's copy fails on the widened mapping
                  layer; any other shape difference is a one-line PatchError, never sliced.
  'torch_compat'  the host's code runs on a current torch: its InfiniteSampler passes the
                  dataset to ``torch.utils.data.Sampler.__init__``, which torch 2.x no longer
                  takes (a TypeError before the first batch); the patch restores the old
                  no-op signature while it is applied.
  'zip_per_process'  the host's ImageFolderDataset opens its zip in the main process, and the
                  DataLoader workers forked from it inherit that open file: reads through the one
                  shared file offset collide ('Bad CRC-32' while the main process reads the
                  snapshot grid). The patch gives each process its own handle.
  'device'        training_loop() takes ``device=`` ('cuda', 'cpu'; default: CUDA when there is
                  one) and runs on a CPU: its hard-wired ``torch.device('cuda', rank)`` becomes
                  that device, and its CUDA-only calls (timing events, streams, peak-memory
                  stats, pinned memory, DDP device_ids) get CPU stand-ins when the device is a
                  CPU. On CUDA the loop is unchanged.

'resume', 'cond_copy' and 'device' rewrite ``training_loop()`` from its source (an AST
transform of the statements named above, compiled into the module's namespace). When the module does not
have the layout the patch expects (a fork changed those lines), ``PatchError`` says which
statement is missing and nothing is changed.
"""
import ast
import functools
import inspect
import os
import textwrap
import time
import warnings
import zipfile

import torch

from plugin.errors import PatchError
from plugin.devices import choose_device
from plugin.files import snapshot_kimg

FEATURES = ('safe_pickles', 'custom_ops', 'torch_compat', 'zip_per_process', 'resume', 'cond_copy', 'device')
LOOP_FEATURES = ('resume', 'cond_copy', 'device')


class Patch:
    """Undo handle: restores every replaced attribute, in reverse order."""

    def __init__(self):
        self._undo = []

    _INHERITED = object()

    def replace(self, owner, name, value):
        own = not isinstance(owner, type) or name in vars(owner)      # a class attribute may be inherited
        self._undo.append((owner, name, getattr(owner, name) if own else self._INHERITED))
        setattr(owner, name, value)

    def undo(self):
        while self._undo:
            owner, name, value = self._undo.pop()
            if value is self._INHERITED:
                delattr(owner, name)
            else:
                setattr(owner, name, value)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.undo()


def patch(host, features=FEATURES, training_loop_module=None):
    """Apply ``features`` to the checkout already imported (``host``: its Host, whose classes
    rebuild the pickles ``legacy.load_network_pkl`` reads), or to ``training_loop_module`` (a
    module object, e.g. a fork's copy). Returns a Patch."""
    unknown = sorted(set(features) - set(FEATURES))
    if unknown:
        raise PatchError(f'unknown patch feature(s) {unknown}; choose from {", ".join(FEATURES)}')
    handle = Patch()
    try:
        if 'safe_pickles' in features:
            import legacy
            handle.replace(legacy, 'load_network_pkl', functools.partial(_safe_load_network_pkl, host=host))
        if 'custom_ops' in features:
            from torch_utils import custom_ops
            handle.replace(custom_ops, 'get_plugin', _get_plugin_once)
        if 'torch_compat' in features and not _sampler_takes_data_source():
            handle.replace(torch.utils.data.Sampler, '__init__', _sampler_init)
        if 'zip_per_process' in features:
            from training import dataset as host_dataset
            folder = getattr(host_dataset, 'ImageFolderDataset', None)
            if folder is None or not callable(getattr(folder, '_get_zipfile', None)):
                raise PatchError('training/dataset.py does not match the layout the patch expects: no '
                                 'ImageFolderDataset._get_zipfile')
            handle.replace(folder, '_get_zipfile', _get_zipfile_per_process)
        loop_features = [f for f in LOOP_FEATURES if f in features]
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
def _safe_load_network_pkl(f, force_fp16=False, host=None):
    from plugin.pickles.rebuild import load
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        data = load(f, host)
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


# -- torch compatibility ---------------------------------------------------------------------------
def _sampler_takes_data_source():
    try:
        inspect.signature(torch.utils.data.Sampler.__init__).bind(None, None)
        return torch.utils.data.Sampler.__init__ is not object.__init__
    except TypeError:
        return False


def _sampler_init(self, data_source=None):
    """torch < 2.2's Sampler.__init__: took the data source and ignored it."""


# -- one zip handle per process ---------------------------------------------------------------------
def _get_zipfile_per_process(self):
    """The dataset's zip, opened by this process: one inherited from the parent over fork shares
    its file offset with the parent and the other workers, so it is left to them and reopened."""
    if getattr(self, '_zipfile', None) is not None and getattr(self, '_cocktail_zip_pid', None) != os.getpid():
        self._zipfile = None
    if self._zipfile is None:
        self._zipfile = zipfile.ZipFile(self._path)
        self._cocktail_zip_pid = os.getpid()
    return self._zipfile


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
    if 'device' in features:
        _choose_device(func, where)
    ast.fix_missing_locations(tree)
    namespace = dict(module.__dict__, _cocktail_resume_nimg=resume_nimg,
                     _cocktail_resume_augment_p=resume_augment_p, _cocktail_copy_params=copy_params_widening,
                     _cocktail_loop_device=loop_device, _cocktail_cuda=cuda_or_cpu_stand_in,
                     _cocktail_pin_memory=pin_memory, _cocktail_device_ids=ddp_device_ids)
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


def _is_cuda_device_call(node):
    return isinstance(node, ast.Call) and _call_name(node) == 'torch.device' and node.args \
        and isinstance(node.args[0], ast.Constant) and node.args[0].value == 'cuda'


def _choose_device(func, where):
    """`device = torch.device('cuda', rank)` -> the ``device=`` argument (added to the
    signature); `torch.cuda.X(...)` -> `_cocktail_cuda(device).X(...)`; `t.pin_memory()` ->
    `_cocktail_pin_memory(t, device)`; `device_ids=[device]` -> `_cocktail_device_ids(device)`."""
    names = [a.arg for a in func.args.args + func.args.kwonlyargs]
    if 'device' in names:
        raise PatchError(f'{where} already takes a `device` argument; the device patch does not apply')
    found = False
    for stmts in _walk_statements(func):
        for s in stmts:
            if isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name) \
                    and s.targets[0].id == 'device' and _is_cuda_device_call(s.value):
                rank = s.value.args[1] if len(s.value.args) > 1 else ast.Constant(0)
                s.value = ast.Call(func=ast.Name(id='_cocktail_loop_device', ctx=ast.Load()),
                                   args=[ast.Name(id='device', ctx=ast.Load()), rank], keywords=[])
                found = True
    if not found:
        raise PatchError(f"{where} does not match the layout the patch expects: no `device = torch.device('cuda', rank)`")
    func.args.kwonlyargs.append(ast.arg(arg='device'))
    func.args.kw_defaults.append(ast.Constant(None))
    device = ast.Name(id='device', ctx=ast.Load())
    for node in ast.walk(func):
        if not isinstance(node, ast.Call):
            continue
        target = node.func
        if isinstance(target, ast.Attribute) and ast.unparse(target.value) == 'torch.cuda':
            target.value = ast.Call(func=ast.Name(id='_cocktail_cuda', ctx=ast.Load()), args=[device], keywords=[])
        elif isinstance(target, ast.Attribute) and target.attr == 'pin_memory' and not node.args:
            node.args = [target.value, device]
            node.func = ast.Name(id='_cocktail_pin_memory', ctx=ast.Load())
        for kw in node.keywords:
            if kw.arg == 'device_ids':
                kw.value = ast.Call(func=ast.Name(id='_cocktail_device_ids', ctx=ast.Load()), args=[device], keywords=[])


# -- what the patched loop calls -------------------------------------------------------------------
def loop_device(choice, rank):
    """The patched loop's device: ``choice`` ('cuda', 'cuda:1', 'cpu', a torch.device), or CUDA
    ``rank`` when there is a CUDA device, else the CPU."""
    choice = choose_device(choice)
    if choice.type == 'cuda' and choice.index is None:
        return torch.device('cuda', rank)
    return choice


class _CpuEvent:
    """torch.cuda.Event's timing interface on the host clock."""

    def __init__(self, enable_timing=False, **_):
        self.t = None

    def record(self, stream=None):
        self.t = time.perf_counter()

    def synchronize(self):
        pass

    def elapsed_time(self, end):
        return (end.t - self.t) * 1000.0


class _CpuStandIn:
    """The torch.cuda calls a training loop makes, for a loop that runs on a CPU."""
    Event = _CpuEvent

    @staticmethod
    def current_stream(device=None):
        return None

    @staticmethod
    def max_memory_allocated(device=None):
        return 0

    @staticmethod
    def reset_peak_memory_stats(device=None):
        pass

    @staticmethod
    def synchronize(device=None):
        pass

    @staticmethod
    def is_available():
        return False

    def __getattr__(self, name):
        raise PatchError(f'the training loop calls torch.cuda.{name}, which has no CPU stand-in; run it on CUDA')


_CPU = _CpuStandIn()


def cuda_or_cpu_stand_in(device):
    return torch.cuda if device.type == 'cuda' else _CPU


def pin_memory(tensor, device):
    return tensor.pin_memory() if device.type == 'cuda' else tensor


def ddp_device_ids(device):
    return [device] if device.type == 'cuda' else None


def _resume_data(resume_pkl):
    if resume_pkl is None or not os.path.isfile(str(resume_pkl)):
        return None
    return _read_records(os.path.abspath(str(resume_pkl)), os.stat(str(resume_pkl)).st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _read_records(path, mtime_ns):
    """The pickle as records (read once for both resume hooks; the mtime keys a rewritten file)."""
    from plugin.pickles.rebuild import load
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return load(path, None, rebuild=False)        # records only: no host involved


def resume_nimg(resume_pkl):
    """Images already shown in the run the pickle comes from: its training_state (embedded
    loop), else the kimg in a host snapshot's file name (network-snapshot-000123.pkl), else 0."""
    if resume_pkl is None:
        return 0
    data = _resume_data(resume_pkl)
    state = data.get('training_state') if isinstance(data, dict) else None
    if isinstance(state, dict) and 'cur_nimg' in state:
        return int(state['cur_nimg'])
    kimg = snapshot_kimg(resume_pkl)
    return kimg * 1000 if kimg is not None else 0


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
    """The host's copy of parameters and buffers by name, for a resume into a run with more
    classes: an unconditional (or fewer-class) source is first widened function-preservingly
    (plugin.widen: every class starts as the source network), then copied exactly. Any other
    shape difference is a one-line error naming the tensors; nothing is sliced or broadcast."""
    from plugin.widen import widen_discriminator, widen_generator
    theirs, ours = getattr(src_module, 'c_dim', None), getattr(dst_module, 'c_dim', None)
    if theirs is not None and ours is not None and theirs != ours:
        if theirs > ours:
            raise PatchError(f'resume: the pickle\'s {type(src_module).__name__} has {theirs} classes, this run '
                             f'{ours}; classes are never dropped')
        widen = widen_generator if hasattr(src_module, 'mapping') and hasattr(src_module, 'synthesis') \
            else widen_discriminator
        src_module = widen(src_module, ours)
    src = dict(src_module.named_parameters())
    src.update(src_module.named_buffers())
    dst = dict(dst_module.named_parameters())
    dst.update(dst_module.named_buffers())
    missing = [name for name in dst if name not in src]
    if missing and require_all:
        raise PatchError(f'resume: {", ".join(missing[:6])} missing in the source network')
    bad = [f'{n} {tuple(src[n].shape)} vs {tuple(t.shape)}' for n, t in dst.items() if n in src and src[n].shape != t.shape]
    if bad:
        raise PatchError(f'resume: the pickle\'s {type(src_module).__name__} has another architecture than this run\'s '
                         f'(tensor shapes differ: {", ".join(bad[:4])}{" ..." if len(bad) > 4 else ""})')
    for name, t in dst.items():
        if name in src:
            t.copy_(src[name].detach().to(t.dtype))