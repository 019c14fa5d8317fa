"""The plugin losses with DDP-wrapped networks, as a real host's multi-process loop hands them
over (``DistributedDataParallel(module, broadcast_buffers=False)``, no unused-parameter search):
2 gloo processes on CPU. Each loss reaches the wrapped module's own attributes (the selector,
D.features, the hyper synthesis' task network) and its extra term's gradients are averaged
across the processes (equal on both ranks although each rank saw different data)."""
import os
import tempfile

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from tests.helpers import REPO, make_source

ASSETS = REPO / 'plugin' / 'assets' / 'sources'


def _grads(module):
    return {n: (p.grad.clone() if p.grad is not None else None) for n, p in module.named_parameters()}


def _worker(rank, tmp, world):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{tmp}/init', rank=rank, world_size=world)
    from plugin import load_network_pkl
    from training_ext.hypermod.loss import HypermodLoss, SelfInitLoss
    from training_ext.hypermod.networks import discriminator_from_source, hyper_from_source
    from training_ext.mining.loss import MiningLoss
    from training_ext.mining.miner import mined_from_sources
    out = {}
    # -- mining, two sources: the selector trains through the wrapper ------------------------------
    torch.manual_seed(0)                                   # same networks on both ranks
    Ga, Gb = load_network_pkl(f'{tmp}/a.pkl')['G_ema'], load_network_pkl(f'{tmp}/b.pkl')['G_ema']
    D = load_network_pkl(f'{tmp}/a.pkl')['D']
    M = mined_from_sources([Ga, Gb]).train().requires_grad_(True)       # as the host's loop does per phase
    D.requires_grad_(True)
    mapping, synthesis, Dw = (DDP(m, broadcast_buffers=False) for m in (M.mapping, M.synthesis, D))
    loss = MiningLoss('cpu', mapping, synthesis, Dw, style_mixing_prob=0.9)
    torch.manual_seed(100 + rank)                          # different data per rank
    for _ in range(2):                                     # a second step: DDP's reduction finished
        loss.accumulate_gradients('Gmain', None, None, torch.randn(4, M.z_dim), torch.zeros(4, 0), True, 1.0)
    out['selector'] = _grads(M.mapping.selector)
    # -- hyper-modulation: the contrastive term on D.features; self-initialisation -----------------
    discs = load_network_pkl(ASSETS / 'discs.pkl')
    torch.manual_seed(0)
    H = hyper_from_source(discs['G_ema'], 2, rank=4, init='reference').train().requires_grad_(True)  # non-zero L1
    HD = discriminator_from_source(discs['D'], 2, 1).train().requires_grad_(True)
    hloss = HypermodLoss('cpu', DDP(H.mapping, broadcast_buffers=False), DDP(H.synthesis, broadcast_buffers=False),
                         DDP(HD, broadcast_buffers=False), contrastive_weight=1.0, r1_gamma=0)
    torch.manual_seed(200 + rank)
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    c = torch.nn.functional.one_hot(torch.tensor([0, 1, 0, 1]), 2).float()
    hloss.accumulate_gradients('Dmain', real, c, torch.randn(4, H.z_dim), c, True, 1.0)
    out['hyper_D'] = _grads(HD)
    sloss = SelfInitLoss('cpu', DDP(H.mapping, broadcast_buffers=False), DDP(H.synthesis, broadcast_buffers=False),
                         None, source=str(ASSETS / 'discs.pkl'))
    for _ in range(2):
        sloss.accumulate_gradients('Gmain', None, None, torch.randn(4, H.z_dim), c, True, 1.0)
    out['selfinit'] = _grads(H.synthesis.task)
    torch.save(out, f'{tmp}/rank{rank}.pt')
    dist.destroy_process_group()


def test_plugin_losses_with_ddp_wrapped_networks_in_two_processes(tmp_path):
    make_source(tmp_path / 'a.pkl', 0)
    make_source(tmp_path / 'b.pkl', 1)
    with tempfile.TemporaryDirectory() as tmp:
        for name in ('a.pkl', 'b.pkl'):
            os.symlink(tmp_path / name, os.path.join(tmp, name))
        torch.multiprocessing.spawn(_worker, args=(tmp, 2), nprocs=2)
        r0, r1 = torch.load(f'{tmp}/rank0.pt'), torch.load(f'{tmp}/rank1.pt')
    for key in ('selector', 'hyper_D', 'selfinit'):
        got = [n for n, g in r0[key].items() if g is not None and g.abs().sum() > 0]
        assert got, f'{key}: no gradient reached the wrapped module'
        for n in got:
            torch.testing.assert_close(r0[key][n], r1[key][n], msg=f'{key}.{n}: not averaged across processes')
