"""Fuzzing driver for tests/plugin/pickles/test_pickle_fuzz.py (run in a subprocess, so that a crash or a hang
is seen as one rather than killing the test session).

    python -m tests.helpers.fuzz_pickles FIXTURE.pkl --count 300 --seed 0

Mutates a real host pickle (flipped bytes, truncations, swapped opcodes, swapped global names,
random values in stored constructor kwargs), loads each mutant and prints one JSON line per
mutant: its kind and the outcome (ok / the exception's class). A load that returns must hold
the original's tensor names and shapes. os.system and subprocess are replaced by canaries
that record any call.
"""
import argparse
import io
import json
import os
import pickletools
import random
import subprocess
import time
import warnings

import torch

CALLS = []


def canary(*args, **kwargs):
    CALLS.append(repr(args)[:200])
    raise RuntimeError('canary: a command was run')


os.system = canary
subprocess.Popen.__init__ = canary

from plugin.pickles import (NetworkPickleError, PersistentRecord, SafeUnpickler,  # noqa: E402
                            dumps_network_pkl, load_network_pkl)

OPCODES = [op.code.encode('latin1') for op in pickletools.opcodes]
HOSTILE_STRINGS = ['os', 'system', 'posix', 'subprocess', 'Popen', 'builtins', 'eval', 'exec', 'getattr', 'torch',
                   'load', 'numpy', 'dtype', '_reconstruct', 'ndarray', 'OrderedDict', 'collections', 'Linear',
                   'torch.nn.modules.linear', '_rebuild_tensor_v2', 'torch._utils', 'importlib', 'import_module']
KWARG_VALUES = [0, -1, 1, 3, 2 ** 31, 2 ** 40, 10 ** 30, 0.5, -1e30, float('nan'), 'x', '', None, True, [], {},
                [1, 2, 3], {'class_name': 'os.system'}, {'class_name': 'training.networks.Generator'},
                'training.networks.Generator', 'subprocess.run']


def signature(data):
    """{key: sorted (name, shape)} of every module or record."""
    out = {}
    for key, value in data.items():
        if isinstance(value, torch.nn.Module):
            out[key] = sorted((n, tuple(t.shape)) for n, t in value.state_dict().items())
        elif isinstance(value, PersistentRecord):
            out[key] = sorted((n, tuple(t.shape)) for n, t, _ in value.named_tensors())
    return out


def kwarg_paths(value, path=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield path + (k,)
            yield from kwarg_paths(v, path + (k,))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield path + (i,)
            yield from kwarg_paths(v, path + (i,))


def mutate_kwargs(blob, rng):
    data = SafeUnpickler(io.BytesIO(blob)).load()
    key = rng.choice([k for k, v in data.items() if isinstance(v, PersistentRecord)])
    kwargs = data[key].state['_init_kwargs']
    path = rng.choice(list(kwarg_paths(kwargs)))
    owner = kwargs
    for part in path[:-1]:
        owner = owner[part]
    if isinstance(owner, tuple):
        return None
    owner[path[-1]] = rng.choice(KWARG_VALUES)
    return dumps_network_pkl(data)


def mutants(blob, count, rng):
    ops = list(pickletools.genops(io.BytesIO(blob)))
    strings = [(pos, arg) for op, arg, pos in ops if op.name == 'SHORT_BINUNICODE']
    kinds = ['flip', 'flip', 'truncate', 'opcode', 'opcode', 'global', 'global', 'kwargs', 'kwargs']
    made = 0
    while made < count:
        kind = kinds[made % len(kinds)]
        if kind == 'flip':
            pos = rng.randrange(len(blob))
            out = blob[:pos] + bytes([blob[pos] ^ rng.randrange(1, 256)]) + blob[pos + 1:]
        elif kind == 'truncate':
            out = blob[:rng.randrange(len(blob))]
        elif kind == 'opcode':
            _, _, pos = rng.choice(ops)
            out = blob[:pos] + rng.choice(OPCODES) + blob[pos + 1:]
        elif kind == 'global':
            pos, old = rng.choice(strings)
            new = rng.choice(HOSTILE_STRINGS).encode()
            out = blob[:pos] + b'\x8c' + bytes([len(new)]) + new + blob[pos + 2 + len(old.encode()):]
        else:
            out = mutate_kwargs(blob, rng)
            if out is None:
                continue
        made += 1
        yield kind, out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('fixture')
    parser.add_argument('--count', type=int, default=300)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--only', type=int, default=None, help='load only mutant number ONLY (to debug it)')
    parser.add_argument('--save', default=None, help='with --only: write that mutant to this file')
    args = parser.parse_args()
    warnings.simplefilter('ignore')
    torch.set_num_threads(1)
    blob = open(args.fixture, 'rb').read()
    reference = signature(load_network_pkl(io.BytesIO(blob)))
    rng = random.Random(args.seed)
    for i, (kind, mutant) in enumerate(mutants(blob, args.count, rng)):
        if args.only is not None and i != args.only:
            continue
        if args.save:
            open(args.save, 'wb').write(mutant)
        t0 = time.time()
        try:
            loaded = load_network_pkl(io.BytesIO(mutant))
            sig = signature(loaded)
            outcome = 'ok' if all(sig.get(k) == v for k, v in reference.items() if k in sig) else 'ok-but-different'
        except NetworkPickleError as e:       # UnsafePickleError is a subclass
            outcome = type(e).__name__
        except BaseException as e:            # noqa: B902 - exactly what the test must catch
            outcome = f'OTHER {type(e).__name__}: {str(e)[:200]}'
        print(json.dumps(dict(i=i, kind=kind, outcome=outcome, seconds=round(time.time() - t0, 3),
                              calls=list(CALLS))), flush=True)


if __name__ == '__main__':
    main()
