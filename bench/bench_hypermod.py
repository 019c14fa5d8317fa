"""Hyper-modulation heads: full (out x in) vs low-rank (--hyper-rank R).

1. Trainable head weights (gamma, beta, delta-b) at StyleGAN2 sizes: the host's config-f
   synthesis network at 256 px (channel_base 32768, channel_max 512, 13 modulated convs),
   counted from the formulas (building 34M-weight heads per layer is not needed to count).
2. Self-initialisation on the shipped tiny source (discs, 32 px, 32 channels): the mean
   |hyper - source| of images (in [-1, 1], constant noise, 64 fixed z) at the start and after
   the same number of Adam steps (the host's optimiser: betas 0, 0.99) for full and low-rank
   heads, with the paper's init ('reference': head biases 0, random weights) and ours
   ('source': heads start reproducing the source).

    python bench/bench_hypermod.py [--steps 150] [--batch 8] [--lr 0.0025]
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from plugin import load_network_pkl  # noqa: E402
from plugin.hosts.embedded.generator import block_resolutions  # noqa: E402
from training_ext.hypermod.loss import self_init_distance  # noqa: E402
from training_ext.hypermod.networks import head_weights, hyper_from_source  # noqa: E402
from training_ext.hypermod.pipeline import self_init_error  # noqa: E402

SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'plugin', 'assets', 'sources',
                      'discs.pkl')


def stylegan2_convs(res=256, channel_base=32768, channel_max=512):
    """(out, in) of every 3x3 synthesis conv of the host's generator."""
    ch = {r: min(channel_base // r, channel_max) for r in block_resolutions(res)}
    convs = [(ch[4], ch[4])]
    for r in block_resolutions(res)[1:]:
        convs += [(ch[r], ch[r // 2]), (ch[r], ch[r])]
    return convs


def count(rank, dim=64):
    return sum(2 * head_weights(dim, o, i, min(rank, i)) + dim * o + o for o, i in stylegan2_convs())


def self_init(G, rank, init, steps, batch, lr, seed=0):
    torch.manual_seed(seed)
    H = hyper_from_source(G, 2, rank=rank, init=init).train()
    opt = torch.optim.Adam(H.parameters(), lr=lr, betas=(0.0, 0.99), eps=1e-8)   # frozen: gradient masks
    start = self_init_error(H, G)[0]
    H.train()
    t0 = time.time()
    c = torch.zeros([batch, 2])
    c[:, 0] = 1
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        self_init_distance(H.mapping, H.synthesis, G, torch.randn([batch, G.z_dim]), c).backward()
        opt.step()
    H.copy_class(0)
    return start, self_init_error(H, G), time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--steps', type=int, default=150)
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--lr', type=float, default=0.0025)
    ap.add_argument('--ranks', default='0,4,8,16')
    ap.add_argument('--inits', default='reference,source')
    a = ap.parse_args()
    torch.set_num_threads(1)
    ranks = [int(r) for r in a.ranks.split(',')]
    print('Head weights (gamma + beta + delta-b), StyleGAN2 256 px, channel_max 512, '
          f'{len(stylegan2_convs())} modulated convs:')
    full = count(0)
    for r in ranks:
        n = count(r)
        print(f'  {"full" if r == 0 else f"rank {r}":>8s}: {n / 1e6:8.2f} M  ({n / full:6.1%} of full)')
    G = load_network_pkl(SOURCE)['G_ema'].eval().requires_grad_(False)
    print(f'\nSelf-initialisation on {os.path.basename(SOURCE)} (32 px, 32 channels), {a.steps} Adam steps, batch '
          f'{a.batch}, lr {a.lr}: mean |hyper - source| of images in [-1, 1]')
    print(f'  {"init":>9s} {"heads":>8s} {"start":>10s} {"after":>10s} {"class 1":>10s} {"seconds":>8s}')
    for init in a.inits.split(','):
        for r in ranks:
            start, after, secs = self_init(G, r, init, a.steps, a.batch, a.lr)
            print(f'  {init:>9s} {"full" if r == 0 else f"rank {r}":>8s} {start:10.2e} {after[0]:10.2e} '
                  f'{after[1]:10.2e} {secs:8.1f}', flush=True)


if __name__ == '__main__':
    main()
