"""One StyleGAN3 G+D training step (forward + backward): the embedded host vs a real stylegan3
checkout, side by side in one run.

    python bench/bench_stylegan3_step.py --host /path/to/stylegan3 [--cfg stylegan3-t,stylegan3-r]

Both hosts get the same constructor kwargs (train.py's way: G's flattened synthesis kwargs, the
stylegan3 repo's StyleGAN2 D), the same weights (copied by name), the same inputs and the same
number of threads; the timings alternate between them so drift on a shared machine hits both
alike. Prints milliseconds per step (median) and the ratio embedded / host (< 1.10 is within
issue 20's 10%). Without --host only the embedded host is timed.
"""
import argparse
import os
import statistics
import sys
import time
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from plugin.hosts.embedded import networks_stylegan2 as embedded2  # noqa: E402
from plugin.hosts.embedded import networks_stylegan3 as embedded3  # noqa: E402

SIZES = {
    '32px': dict(res=32, cbase=8192, cmax=128, batch=8),
    '64px': dict(res=64, cbase=8192, cmax=128, batch=4),
}


def build(net3, net2, cfg_name, size):
    r = cfg_name == 'stylegan3-r'
    # As the stylegan3 train.py builds them: -r doubles G's channels and uses 1x1 convs and
    # radial filters; D is the StyleGAN2 one; fp32 throughout (a CPU).
    G = net3.Generator(z_dim=64, c_dim=0, w_dim=64, img_resolution=size['res'], img_channels=3,
                       mapping_kwargs=dict(num_layers=2), channel_base=size['cbase'] * (2 if r else 1),
                       channel_max=size['cmax'] * (2 if r else 1), magnitude_ema_beta=0.5 ** (size['batch'] / 20000),
                       num_fp16_res=0, conv_clamp=None, **(dict(conv_kernel=1, use_radial_filters=True) if r else {}))
    D = net2.Discriminator(c_dim=0, img_resolution=size['res'], img_channels=3, channel_base=size['cbase'],
                           channel_max=size['cmax'], num_fp16_res=0, conv_clamp=None,
                           block_kwargs=dict(freeze_layers=0), mapping_kwargs={},
                           epilogue_kwargs=dict(mbstd_group_size=4))
    return G.train(), D.train()


def step(G, D, z):
    # Gmain's shape: G(z) with EMA updates, D's logits, the non-saturating loss, backward.
    img = G(z, None, update_emas=True)
    torch.nn.functional.softplus(-D(img, None)).mean().backward()


def import_host(path):
    sys.path.insert(0, path)
    try:
        import pkg_resources  # noqa: F401 -- (the host's ops import it; setuptools >= 81 no longer ships it)
    except ImportError:
        import packaging.version
        sys.modules['pkg_resources'] = types.SimpleNamespace(parse_version=packaging.version.parse)
    import training.networks_stylegan2 as host2  # from the user's checkout, never copied here
    import training.networks_stylegan3 as host3
    return host3, host2


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--host', help='path to a stylegan3 checkout to compare with')
    ap.add_argument('--cfg', default='stylegan3-t,stylegan3-r')
    ap.add_argument('--sizes', default='32px')
    ap.add_argument('--repeats', type=int, default=7)
    ap.add_argument('--threads', type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    host = import_host(args.host) if args.host else None
    print(f'torch {torch.__version__}, {args.threads} threads, {args.repeats} repeats, CPU')
    for cfg_name in args.cfg.split(','):
        for size_name in args.sizes.split(','):
            size = SIZES[size_name]
            torch.manual_seed(0)
            oG, oD = build(embedded3, embedded2, cfg_name, size)
            z = torch.randn(size['batch'], 64)
            runs = {'embedded': (oG, oD)}
            if host is not None:
                hG, hD = build(*host, cfg_name, size)
                hG.load_state_dict(oG.state_dict())
                hD.load_state_dict(oD.state_dict())
                runs['host'] = (hG, hD)
            for G, D in runs.values():                   # warm-up (filters, caches)
                step(G, D, z)
            times = {k: [] for k in runs}
            for _ in range(args.repeats):                # alternate: both see the same machine
                for k, (G, D) in runs.items():
                    G.zero_grad(set_to_none=True)
                    D.zero_grad(set_to_none=True)
                    t = time.perf_counter()
                    step(G, D, z)
                    times[k].append(time.perf_counter() - t)
            med = {k: statistics.median(v) for k, v in times.items()}
            line = f"{cfg_name} {size_name} batch {size['batch']}: embedded {med['embedded'] * 1e3:8.1f} ms/step"
            if 'host' in med:
                line += (f"   host {med['host'] * 1e3:8.1f} ms/step   embedded/host "
                         f"{med['embedded'] / med['host']:.2f}")
            print(line, flush=True)


if __name__ == '__main__':
    main()
