"""What the loader's safety checks cost: load the host fixtures with every check on, and with
the checks that are not needed to read a well-formed file switched off (opcode scan, structure
walk, stored-kwargs check, allocation guard), side by side in one run.

    python bench/bench_safe_loading.py [--repeats 5] [--fixtures ../shared/fixtures/stylegan2-ada]
"""
import argparse
import contextlib
import os
import statistics
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch  # noqa: E402

from plugin import pickles  # noqa: E402


@contextlib.contextmanager
def checks_off():
    saved = (pickles.read._scan_opcodes, pickles.read.check_structure, pickles.rebuild.check_stored_kwargs,
             pickles.rebuild._AllocationGuard)

    class NoGuard:
        def __init__(self, *a, **k):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False
    pickles.read._scan_opcodes = lambda *a, **k: None
    pickles.read.check_structure = lambda *a, **k: None
    pickles.rebuild.check_stored_kwargs = lambda *a, **k: None
    pickles.rebuild._AllocationGuard = NoGuard
    try:
        yield
    finally:
        (pickles.read._scan_opcodes, pickles.read.check_structure, pickles.rebuild.check_stored_kwargs,
         pickles.rebuild._AllocationGuard) = saved


def timed(path, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pickles.load_network_pkl(path)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--fixtures', default=os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'fixtures',
                                                           'stylegan2-ada'))
    args = parser.parse_args()
    warnings.simplefilter('ignore')
    torch.set_num_threads(1)
    print(f'{"fixture":<10} {"MB":>5} {"checked s":>10} {"unchecked s":>12} {"ratio":>6}')
    for name in ('uncond32', 'cond32', 'uncond64'):
        path = os.path.join(args.fixtures, name, 'network-snapshot.pkl')
        pickles.load_network_pkl(path)                       # warm-up (imports, caches)
        rows = []
        for _ in range(2):                                   # interleaved, so load drifts hit both
            checked = timed(path, args.repeats)
            with checks_off():
                unchecked = timed(path, args.repeats)
            rows.append((checked, unchecked))
        checked, unchecked = (min(r[i] for r in rows) for i in (0, 1))
        print(f'{name:<10} {os.path.getsize(path) / 1e6:5.1f} {checked:10.3f} {unchecked:12.3f} {checked / unchecked:6.2f}')


if __name__ == '__main__':
    main()
