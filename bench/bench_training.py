"""Images per second of the embedded training loop on this machine (all phases: G and D
main steps, lazy R1 and path-length regularisation, EMA), at the CPU demo configuration
and at 64 and 128 pixels.

    python bench/bench_training.py [--steps 10] [--configs tiny32,tiny64,tiny128,auto64]
"""
import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from plugin import run_options  # noqa: E402
from plugin.easydict import EasyDict  # noqa: E402
from plugin.hosts.embedded import EmbeddedHost  # noqa: E402
from plugin.hosts.embedded.training_loop import DEFAULTS, TrainingRun  # noqa: E402
from plugin.domains import write_domains_zip  # noqa: E402

CONFIGS = {                       # --cfg tiny at three resolutions, and the host's auto config at 64 px
    'tiny32': dict(cfg='tiny', res=32),
    'tiny64': dict(cfg='tiny', res=64),
    'tiny128': dict(cfg='tiny', res=128),
    'auto64': dict(cfg='auto', res=64, steps=3),
}


def measure(name, spec, steps, tmp):
    data = write_domains_zip(os.path.join(tmp, f'{name}.zip'), ['discs'], 64, spec['res'])
    _, args = run_options.build(dict(data=data, cfg=spec['cfg'], aug='ada', device='cpu'))
    args.run_dir = os.path.join(tmp, name)
    run = TrainingRun(EasyDict({**DEFAULTS, **args}), EmbeddedHost())
    run.setup()
    for _ in range(2):
        run.train_step()
    t = time.perf_counter()
    for _ in range(steps):
        run.train_step()
    dt = time.perf_counter() - t
    n_g = sum(p.numel() for p in run.G.parameters())
    return args.batch_size, n_g, steps * args.batch_size / dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--steps', type=int, default=10)
    ap.add_argument('--configs', default=','.join(CONFIGS))
    a = ap.parse_args()
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, {a.steps} steps (auto64: 3) '
          'after 2 warm-up')
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.configs.split(','):
            batch, n_g, ips = measure(name, CONFIGS[name], CONFIGS[name].get('steps', a.steps), tmp)
            print(f'{name:8s} batch {batch:3d}  G {n_g / 1e6:5.2f}M params  {ips:7.1f} img/s  '
                  f'({1000 / ips:6.1f} s/kimg)', flush=True)


if __name__ == '__main__':
    main()
