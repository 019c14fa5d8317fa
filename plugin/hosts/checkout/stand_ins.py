"""What a rewritten training loop calls at run time (loop_rewrite.py puts them in its namespace):
the device choice, CPU stand-ins for the loop's CUDA-only calls, the resume position and augment
probability read from the resumed pickle, and the widening parameter copy."""
import functools
import os
import time
import warnings

import torch

from plugin.devices import choose_device
from plugin.errors import PatchError
from plugin.files import snapshot_kimg


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
    def max_memory_reserved(device=None):      # the stylegan3 repo's loop reports it too
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
