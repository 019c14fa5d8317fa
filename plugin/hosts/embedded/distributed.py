"""Data parallelism for the embedded loop: torch.distributed (gloo on CPU, nccl on CUDA).

Gradients are all-reduced explicitly after each phase rather than through a DDP wrapper:
the result is the same average, and parameters that get no gradient (frozen by a plugin
method) cannot break the reduction, which DDP without find_unused_parameters would.
"""
import hashlib

import numpy as np
import torch
import torch.distributed as dist


def world():
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_reduce_mean_(tensors):
    """Average tensors across processes in place (one flat buffer, one collective)."""
    n = world()
    if n == 1 or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= n
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].reshape(t.shape))
        offset += t.numel()


def broadcast_(tensors, src=0):
    if world() > 1:
        for t in tensors:
            dist.broadcast(t, src)


def barrier():
    if world() > 1:
        dist.barrier()


def seed_for(*keys):
    """A 32-bit seed that depends only on ``keys`` (stable across processes and runs)."""
    digest = hashlib.sha256(repr(tuple(int(k) for k in keys)).encode()).digest()
    return int.from_bytes(digest[:4], 'little')


class GlobalBatchSampler:
    """Yields, per training step, this process's share of one global batch.

    The global stream is a reshuffled permutation of the dataset per epoch, a function of
    the seed only. Step s takes positions [s*B, (s+1)*B); that batch is cut into chunks of
    ``batch_gpu``; process r takes chunks r, r+W, r+2W, ... (one per accumulation round).
    A run on 1 process with 2 rounds therefore sees exactly the images of a run on 2
    processes with 1 round each, and a resumed run continues the stream where it stopped.
    """

    def __init__(self,
        num_items,       # Dataset length; must be >= 1.
        batch_size,      # Global batch per step; a multiple of batch_gpu * world_size.
        batch_gpu,       # Images per process per accumulation round.
        rank       = 0,  # This process's index in [0, world_size).
        world_size = 1,  # Number of processes.
        seed       = 0,  # Seed of the per-epoch permutations.
        start_step = 0,  # First step to yield (resume point).
    ):
        if num_items < 1:
            raise ValueError('the dataset is empty')
        if batch_size % (batch_gpu * world_size):
            raise ValueError(f'--batch {batch_size} must be a multiple of batch_gpu x processes '
                             f'({batch_gpu} x {world_size})')
        self.n, self.batch, self.batch_gpu = num_items, batch_size, batch_gpu
        self.rank, self.world, self.seed, self.start = rank, world_size, seed, start_step
        self._perms = {}

    def _position(self, g):
        epoch, offset = divmod(g, self.n)
        if epoch not in self._perms:
            self._perms = {e: p for e, p in self._perms.items() if e >= epoch - 1}   # a batch may span two
            self._perms[epoch] = np.random.RandomState(seed_for(self.seed, epoch)).permutation(self.n)
        return int(self._perms[epoch][offset])

    def indices(self, step):
        base = step * self.batch
        rounds = self.batch // (self.batch_gpu * self.world)
        out = []
        for k in range(rounds):
            chunk = k * self.world + self.rank
            out += [self._position(base + chunk * self.batch_gpu + i) for i in range(self.batch_gpu)]
        return out

    def __iter__(self):
        step = self.start
        while True:
            yield self.indices(step)
            step += 1
