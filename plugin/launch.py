"""Run directories, logging and process launch for a training run (the host train.py's
behaviour: numbered run directory, training_options.json, log.txt, one process per GPU)."""
import json
import os
import re
import sys
import tempfile

import torch

from .easydict import to_plain
from .files import list_snapshots


class Tee:
    """Copies everything written to stdout/stderr into log.txt as well."""

    def __init__(self, path):
        self.file = open(path, 'a')
        self.stdout, self.stderr = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = self._wrap(self.stdout), self._wrap(self.stderr)

    def _wrap(self, stream):
        tee = self

        class _Stream:
            def write(self, text):
                stream.write(text)
                tee.file.write(text)
                tee.file.flush()
                return len(text)

            def flush(self):
                stream.flush()
                tee.file.flush()

            def __getattr__(self, name):
                return getattr(stream, name)
        return _Stream()

    def close(self):
        sys.stdout, sys.stderr = self.stdout, self.stderr
        self.file.close()


def next_run_dir(outdir, desc):
    prev = [d for d in os.listdir(outdir) if os.path.isdir(os.path.join(outdir, d))] if os.path.isdir(outdir) else []
    ids = [int(m.group()) for m in (re.match(r'^\d+', d) for d in prev) if m]
    return os.path.join(outdir, f'{max(ids, default=-1) + 1:05d}-{desc}')


def describe(args):
    return json.dumps(to_plain(args), indent=2)


def _init_process_group(rank, world_size, temp_dir, device):
    """torch.distributed for one process of a multi-process run, any host (gloo on CPU, nccl on
    CUDA), rendezvous through a file in ``temp_dir``."""
    if world_size <= 1:
        return
    import torch.distributed as dist
    backend = 'nccl' if torch.device(device).type == 'cuda' else 'gloo'
    init_file = os.path.abspath(os.path.join(temp_dir, '.torch_distributed_init'))
    dist.init_process_group(backend, init_method=f'file://{init_file}', rank=rank, world_size=world_size)


def _subprocess(rank, args, temp_dir, host_spec):
    from .hosts import active_host, set_active_host
    host = set_active_host(host_spec) if host_spec is not None else active_host()
    tee = Tee(os.path.join(args.run_dir, 'log.txt'))
    try:
        _init_process_group(rank, args.num_gpus, temp_dir, args.device)
        if rank != 0:
            sys.stdout = open(os.devnull, 'w')
        return host.training_loop(rank=rank, **args)
    finally:
        tee.close()


def launch(args, host_spec=None, exist_ok=False):
    """Create the run directory and train (one process per GPU, or per --gpus on CPU)."""
    os.makedirs(args.run_dir, exist_ok=exist_ok)
    with open(os.path.join(args.run_dir, 'training_options.json'), 'wt') as f:
        json.dump(to_plain(args), f, indent=2)
    with tempfile.TemporaryDirectory() as temp_dir:
        if args.num_gpus == 1:
            last = _subprocess(0, args, temp_dir, host_spec)
            if last is not None:            # the embedded loop says; a checkout's loop returns nothing
                return last
        else:
            torch.multiprocessing.spawn(_subprocess, args=(args, temp_dir, host_spec), nprocs=args.num_gpus)
    snaps = list_snapshots(args.run_dir)
    return snaps[-1] if snaps else None
