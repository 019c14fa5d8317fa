"""Fused CUDA ops vs their references (and torch.compile of the reference), on a GPU.

    python bench/bench_ops_cuda.py [--batch 32] [--channels 512] [--repeats 20]

hypermod_weight at StyleGAN2 sizes (512 channels, 3x3, batch 32): forward + backward of the
per-sample hyper-modulated, modulated, demodulated weight; bias_act (lrelu, bias, clamp 256) on
a [32, 512, 64, 64] activation, forward + backward; upfirdn2d 2x upsampling with the [1,3,3,1] filter. Prints milliseconds per call (median of
CUDA-event timings) and speed-ups over the reference. Needs a CUDA device.
"""
import argparse
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from torch_utils_ext.ops.bias_act import _bias_act_ref, bias_act  # noqa: E402
from torch_utils_ext.ops.hypermod_weight import _hypermod_weight_ref, hypermod_weight  # noqa: E402
from torch_utils_ext.ops.upfirdn2d import _upfirdn2d_ref, setup_filter, upfirdn2d  # noqa: E402


def timed(fn, repeats):
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--channels', type=int, default=512)
    ap.add_argument('--rank', type=int, default=8)
    ap.add_argument('--repeats', type=int, default=20)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit('bench_ops_cuda: needs a CUDA device')
    n, c = a.batch, a.channels
    base = torch.randn([c, c, 3, 3], device='cuda')
    styles = torch.randn([n, c], device='cuda', requires_grad=True)
    offset = torch.randn([c, c], device='cuda')
    left = torch.randn([n, c, a.rank], device='cuda', requires_grad=True)
    right = torch.randn([c, a.rank], device='cuda', requires_grad=True)
    beta = torch.randn([n, c, c], device='cuda', requires_grad=True)
    compiled = torch.compile(_hypermod_weight_ref)

    def run(kind):
        def step():
            gamma = offset + left @ right.t()
            if kind == 'compile':
                w = compiled(base, styles, gamma, beta, 1.0, True)
            else:
                w = hypermod_weight(base, styles, gamma, beta, impl=kind)
            w.square().sum().backward()
        return step
    print(f'{torch.cuda.get_device_name()}, torch {torch.__version__}; hypermod_weight fwd+bwd, batch {n}, '
          f'{c} channels, 3x3, rank {a.rank}')
    report(run, a.repeats)

    x = torch.randn([n, c, 64, 64], device='cuda', requires_grad=True)
    b = torch.randn([c], device='cuda', requires_grad=True)
    compiled_ba = torch.compile(_bias_act_ref)

    def run_ba(kind):
        def step():
            if kind == 'compile':
                y = compiled_ba(x, b, 1, 'lrelu', None, None, 256.0)
            else:
                y = bias_act(x, b, act='lrelu', clamp=256.0, impl=kind)
            y.sum().backward()
        return step
    print(f'bias_act fwd+bwd, lrelu + bias + clamp, [{n}, {c}, 64, 64]')
    report(run_ba, a.repeats)

    f = setup_filter([1, 3, 3, 1], device='cuda')
    xs = torch.randn([n, c, 32, 32], device='cuda', requires_grad=True)
    compiled_up = torch.compile(_upfirdn2d_ref)

    def run_up(kind):
        def step():
            if kind == 'compile':
                y = compiled_up(xs, f, 2, 1, [2, 1, 2, 1], False, 4)
            else:
                y = upfirdn2d(xs, f, up=2, padding=[2, 1, 2, 1], gain=4, impl=kind)
            y.sum().backward()
        return step
    print(f'upfirdn2d fwd+bwd, 2x upsampling with [1,3,3,1], [{n}, {c}, 32, 32] -> 64x64')
    report(run_up, a.repeats)


def report(make, repeats):
    ref = timed(make('ref'), repeats)
    for kind in ('ref', 'compile', 'cuda'):
        t = ref if kind == 'ref' else timed(make(kind), repeats)
        print(f'  {kind:8s} {t:8.3f} ms   {ref / t:5.2f}x vs ref', flush=True)


if __name__ == '__main__':
    main()
