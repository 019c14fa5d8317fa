"""Patching a legacy pipeline (a forked host, or a script that calls its training loop or
networks directly) in memory, by configuration, with an undo: the features and the undo handle.
Below the host registry (it is handed the host whose classes rebuild pickles); ``plugin.patch``
is the public entry point that also picks the checkout. The loop's rewriting is
``loop_rewrite.py``; what the rewritten loop calls at run time is ``stand_ins.py``.

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
import functools
import inspect
import os
import warnings
import zipfile

import torch

from plugin.errors import PatchError

from .loop_rewrite import patched_training_loop

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
