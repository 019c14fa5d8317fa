"""Where a cocktail training step's time goes on this machine: generating the "real" images
with the sources' G_ema (GeneratedDataLoss) vs the G/D update itself, for the merge stage
(every source samples its classes) at the shipped sources' size (32 px, --cfg tiny, batch 16)
and at the host's 256 px auto configuration (random-weight sources of that architecture;
batch 4 to keep a CPU step short).

    python bench/bench_cocktail_step.py [--steps 8] [--configs shipped32,auto256]
"""
import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from plugin import save_network_pkl  # noqa: E402
from plugin.easydict import EasyDict  # noqa: E402
from plugin.hosts.embedded.networks import Discriminator, Generator  # noqa: E402
from plugin.hosts.embedded import EmbeddedHost  # noqa: E402
from plugin.hosts.embedded.training_loop import DEFAULTS, TrainingRun  # noqa: E402
from plugin.persistence import constructor_kwargs  # noqa: E402
from training_ext.cocktail.pipeline import CocktailPipeline, _label_dataset  # noqa: E402
from training_ext.cocktail.sources import load_sources, total_classes  # noqa: E402
from training_ext.common.generated import GeneratedImages  # noqa: E402

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'plugin', 'assets', 'sources')
CONFIGS = {
    'shipped32': dict(cfg='tiny', batch=16, sources=[os.path.join(ASSETS, f) for f in
                                                      ('discs.pkl', 'rings.pkl', 'squares.pkl')]),
    'auto256': dict(cfg='auto', batch=4, res=256, steps=2),
}


def random_sources(tmp, res, n=3):
    """n random-weight unconditional sources of the host's auto architecture at ``res``."""
    from plugin import run_options
    from training_ext.common.generated import LabelDataset  # noqa: F401  (the class the stage builds)
    flags = dict(cfg='auto', device='cpu', metrics=[],
                 training_set_kwargs=dict(class_name='training_ext.common.generated.LabelDataset', resolution=res,
                                          num_channels=3, num_classes=0, name='bench'))
    _, args = run_options.build(flags)
    paths = []
    G_kwargs = {k: v for k, v in args.G_kwargs.items() if k != 'class_name'}
    D_kwargs = {k: v for k, v in args.D_kwargs.items() if k != 'class_name'}
    for i in range(n):
        torch.manual_seed(i)
        G = Generator(**G_kwargs, c_dim=0, img_resolution=res, img_channels=3)
        D = Discriminator(**D_kwargs, c_dim=0, img_resolution=res, img_channels=3)
        paths.append(os.path.join(tmp, f'src{i}.pkl'))
        save_network_pkl(dict(training_set_kwargs=None, G=G, D=D, G_ema=G), paths[-1])
    return paths


def measure(name, spec, steps, tmp):
    paths = spec.get('sources') or random_sources(tmp, spec['res'])
    flags = dict(cocktail=paths, outdir=tmp, cfg=spec['cfg'], batch=spec['batch'], seed=0, device='cpu', judge=0)
    pipe = CocktailPipeline(flags, os.path.join(tmp, f'pipe-{name}'), log=lambda *a: None)
    pipe.sources = load_sources(paths)
    pipe.root = pipe.sources[0]
    C = total_classes(pipe.sources)
    ds = _label_dataset(pipe.root.G, C, name='generated-union')
    args = pipe._stage('bench', ds, [s.spec() for s in pipe.sources], constructor_kwargs(pipe.root.G),
                       constructor_kwargs(pipe.root.D), 1, resume=None)
    run = TrainingRun(EasyDict({**DEFAULTS, **args, 'image_snapshot_ticks': None}), EmbeddedHost())
    run.setup()
    sampling = [0.0, 0.0]             # wall, CPU (all threads): CPU time is less disturbed by other jobs
    call = GeneratedImages.__call__

    def timed(self, *a, **k):
        t, c = time.perf_counter(), time.process_time()
        out = call(self, *a, **k)
        sampling[0] += time.perf_counter() - t
        sampling[1] += time.process_time() - c
        return out
    GeneratedImages.__call__ = timed
    try:
        run.train_step()                      # warm-up
        sampling[:] = [0.0, 0.0]
        t, c = time.perf_counter(), time.process_time()
        for _ in range(steps):
            run.train_step()
        total, cpu = time.perf_counter() - t, time.process_time() - c
    finally:
        GeneratedImages.__call__ = call
    return args.batch_size, total / steps, sampling[0] / steps, cpu / steps, sampling[1] / steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--steps', type=int, default=8)
    ap.add_argument('--configs', default=','.join(CONFIGS))
    a = ap.parse_args()
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; merge stage of 3 sources, '
          f'{a.steps} steps after 1 warm-up (auto256: {CONFIGS["auto256"]["steps"]})')
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.configs.split(','):
            spec = CONFIGS[name]
            batch, step_s, sample_s, step_cpu, sample_cpu = measure(name, spec, spec.get('steps', a.steps), tmp)
            print(f'{name:10s} batch {batch:3d}  step {step_s:7.3f} s  sampling {sample_s:7.3f} s '
                  f'({100 * sample_s / step_s:4.1f}%)  G/D update {step_s - sample_s:7.3f} s  |  CPU s: step '
                  f'{step_cpu:7.3f}  sampling {sample_cpu:7.3f} ({100 * sample_cpu / step_cpu:4.1f}%)', flush=True)


if __name__ == '__main__':
    main()
