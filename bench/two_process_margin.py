"""How close test_two_processes_equal_one_with_the_same_total_batch is to its tolerance.

    python bench/two_process_margin.py

Trains the test's two runs (2 processes x 1 round of 4, and 1 process x 2 rounds of 4, the
latter with 2 and with 1 torch thread) and prints, for the worst parameter of G and D,
|x - y| / (atol + rtol |y|) with the test's atol 1e-4 and rtol 1e-3 (1 = the test fails).
"""
import os
import sys
import tempfile

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(REPO, 'tests'), REPO]

from plugin import load_network_pkl  # noqa: E402
from test_training import train  # noqa: E402
from plugin.domains import write_domains_zip  # noqa: E402


def ratio(a, b):
    """(worst |x - y| / (atol + rtol |y|), parameter name) over G and D."""
    worst = (0, None)
    for key in ('G', 'D'):
        for (n, x), (_, y) in zip(a[key].named_parameters(), b[key].named_parameters()):
            r = ((x - y).abs() / (1e-4 + 1e-3 * y.abs())).max().item()
            if r > worst[0]:
                worst = (r, f'{key}.{n}')
    return worst


if __name__ == '__main__':
    tmp = tempfile.mkdtemp()
    data = write_domains_zip(os.path.join(tmp, 'discs16.zip'), ['discs'], count=32, resolution=16)
    common = dict(batch=8, loss_kwargs=dict(pl_weight=0))
    _, two = train(os.path.join(tmp, 'two'), data, kimg=0.08, gpus=2, **common)
    res = {}
    for th in (2, 1):
        torch.set_num_threads(th)
        _, one = train(os.path.join(tmp, f'one{th}'), data, kimg=0.08, batch_gpu=4, **common)
        res[th] = load_network_pkl(one)
    b = load_network_pkl(two)
    print('threads 2 vs two procs', ratio(res[2], b))
    print('threads 1 vs two procs', ratio(res[1], b))
    print('threads 1 vs threads 2', ratio(res[1], res[2]))
