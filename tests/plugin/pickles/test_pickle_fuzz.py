"""Fuzzing the loader with mutations of a real host pickle (tests/helpers/fuzz_pickles.py, in a
subprocess so that a crash or a hang shows as one): every load returns the original's
tensors (names and shapes) or raises one of the loader's two error types; nothing else, no
command run, no hang. COCKTAIL_FUZZ_COUNT sets the number of mutants (CI: 200)."""
import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from tests.helpers import REPO

COUNT = int(os.environ.get('COCKTAIL_FUZZ_COUNT', '200'))


@pytest.mark.parametrize('seed', [0])
def test_mutated_real_pickles_load_or_fail_cleanly(fixtures_dir, seed):
    fixture = fixtures_dir / 'cond32' / 'network-snapshot.pkl'
    proc = subprocess.run([sys.executable, '-m', 'tests.helpers.fuzz_pickles', str(fixture), '--count', str(COUNT), '--seed', str(seed)],
                          capture_output=True, text=True, timeout=60 + 3 * COUNT, cwd=REPO)
    assert proc.returncode == 0, f'the fuzzing process died (crash?): rc {proc.returncode}\n{proc.stderr[-3000:]}'
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{')]
    assert len(rows) == COUNT
    bad = [r for r in rows if r['outcome'] not in ('ok', 'NetworkPickleError', 'UnsafePickleError')]
    assert not bad, bad[:5]
    assert not any(r['calls'] for r in rows), 'a mutant ran a command'
    slow = [r for r in rows if r['seconds'] > 30]
    assert not slow, f'loads that took minutes (a hang?): {slow[:3]}'
    # The mutations must reach every path: some load, some are refused as unsafe, some as broken.
    outcomes = Counter(r['outcome'] for r in rows)
    assert outcomes['ok'] and outcomes['NetworkPickleError'] and outcomes['UnsafePickleError'], outcomes
