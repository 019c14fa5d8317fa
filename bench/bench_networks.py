"""Forward+backward time of G and D: the embedded host vs a real checkout, side by side.

    python bench/bench_networks.py                       # embedded host only
    python bench/bench_networks.py --host /path/to/stylegan2-ada-pytorch

Both hosts get the same constructor kwargs, the same weights (copied by name) and the same
inputs; timings alternate between them so drift on the machine hits both alike. Prints
seconds per iteration (median of the repeats) and the ratio host / embedded (> 1: ours faster).
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from plugin.hosts.embedded import networks as embedded  # noqa: E402

CONFIGS = {
    '64px': dict(res=64, channel_base=4096, channel_max=128, batch=8),
    '128px': dict(res=128, channel_base=8192, channel_max=128, batch=4),
    'gpu256': dict(res=256, channel_base=32768, channel_max=512, batch=32),     # StyleGAN2 sizes, for a GPU
}


def build(module, cfg):
    G = module.Generator(z_dim=128, c_dim=0, w_dim=128, img_resolution=cfg['res'], img_channels=3,
                         mapping_kwargs=dict(num_layers=2),
                         synthesis_kwargs=dict(channel_base=cfg['channel_base'], channel_max=cfg['channel_max'],
                                               conv_clamp=256, architecture='skip'))
    D = module.Discriminator(c_dim=0, img_resolution=cfg['res'], img_channels=3, architecture='resnet',
                             channel_base=cfg['channel_base'], channel_max=cfg['channel_max'], conv_clamp=256)
    return G.train(), D.train()


def step(G, D, z):
    # One generator + discriminator pass in training mode (non-fused modconv), as in Gmain.
    logits = D(G(z, None), None)
    torch.nn.functional.softplus(-logits).mean().backward()


def time_it(fn, repeats):
    out = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t)
    return out


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--host', help='path to a stylegan2-ada-pytorch checkout to compare with')
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--threads', type=int, default=torch.get_num_threads())
    ap.add_argument('--configs', default='64px,128px')
    ap.add_argument('--device', default='cpu', help='cpu or cuda (on CUDA: timings synchronised; add 256px/512ch '
                    'with --configs gpu256)')
    args = ap.parse_args()
    dev = torch.device(args.device)
    torch.set_num_threads(args.threads)
    host = None
    if args.host:
        sys.path.insert(0, args.host)
        import training.networks as host  # noqa: F811  (from the user's checkout, never copied here)
    print(f'torch {torch.__version__}, {args.threads} threads, {args.repeats} repeats, '
          f'{torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"}')
    for name in args.configs.split(','):
        cfg = CONFIGS[name]
        torch.manual_seed(0)
        oG, oD = (m.to(dev) for m in build(embedded, cfg))
        z = torch.randn(cfg['batch'], 128, device=dev)
        runs = {'embedded': lambda: step(oG, oD, z)}
        if host is not None:
            hG, hD = (m.to(dev) for m in build(host, cfg))
            hG.load_state_dict(oG.state_dict())
            hD.load_state_dict(oD.state_dict())
            runs['host'] = lambda: step(hG, hD, z)
        for fn in runs.values():                      # warm-up
            fn()
        times = {k: [] for k in runs}
        for _ in range(args.repeats):                 # alternate so both see the same machine state
            for k, fn in runs.items():
                times[k] += time_it(fn, 1)
        med = {k: statistics.median(v) for k, v in times.items()}
        line = f"{name:6s} batch {cfg['batch']}: embedded {med['embedded'] * 1e3:8.1f} ms/iter"
        if 'host' in med:
            line += f"   host {med['host'] * 1e3:8.1f} ms/iter   ratio host/embedded {med['host'] / med['embedded']:.2f}x"
        print(line, flush=True)


if __name__ == '__main__':
    main()
