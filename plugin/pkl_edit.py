"""Editing the weights of network pickles without training: read several pickles, check that
they share an architecture, and write a result that keeps the first input's records (class,
constructor kwargs, embedded module source) with new tensors.

Keeping the records is what makes a result an ordinary host pickle: blending two snapshots
written by the real host gives a file the host's own ``legacy.load_network_pkl`` reads
without the plugin, exactly as it reads its inputs.
"""
import warnings

import numpy as np
import torch

from .layouts import design_differences
from .pickles import NetworkPickleError, PersistentRecord, load_network_pkl, save_network_pkl

NETWORK_KEYS = ('G', 'G_ema', 'D')


class Inputs:
    """The networks of each input pickle (rebuilt, for computing) and the records of the
    first one (for writing)."""

    def __init__(self, paths):
        if not paths:
            raise NetworkPickleError('no input pickles')
        self.paths = [str(p) for p in paths]
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            self.modules = [load_network_pkl(p) for p in self.paths]
            self.records = load_network_pkl(self.paths[0], rebuild=False)
        self._states = {}
        self.keys = [k for k in NETWORK_KEYS if all(isinstance(m.get(k), torch.nn.Module) for m in self.modules)]
        if 'G_ema' not in self.keys:
            raise NetworkPickleError(f'{", ".join(self.paths)}: every input needs a generator under G_ema')
        check_same_architecture(self.paths, [m['G_ema'] for m in self.modules])

    def state_dicts(self, key):
        """Each input's tensors of network ``key`` (read once; callers build new dicts, never
        write into these)."""
        if key not in self._states:
            self._states[key] = [{n: t.detach() for n, t in m[key].state_dict().items()} for m in self.modules]
        return self._states[key]

    def write(self, path, states):
        """The first input's pickle with ``states[key]`` (name -> tensor) in place of its
        networks' tensors; networks not in ``states`` (and everything else) unchanged."""
        data = dict(self.records)
        for key, state in states.items():
            record = data[key]
            if not isinstance(record, PersistentRecord):
                raise NetworkPickleError(f'{self.paths[0]}[{key}] is not a network record')
            data[key] = replace_tensors(record, state)
        return save_network_pkl(data, path)


def check_same_architecture(paths, generators):
    """One line naming the tensors that differ when the generators do not share an architecture."""
    ref = generators[0]
    for path, G in zip(paths[1:], generators[1:]):
        if G.img_resolution != ref.img_resolution:
            raise NetworkPickleError(f'{path}: {G.img_resolution}px, but {paths[0]} is {ref.img_resolution}px; '
                                     'only networks of one architecture can be blended or merged')
        a, b = ref.state_dict(), G.state_dict()
        missing = sorted(set(a) ^ set(b))
        shapes = [f'{n} {tuple(a[n].shape)} vs {tuple(b[n].shape)}' for n in a if n in b and a[n].shape != b[n].shape]
        if missing or shapes:
            listed = (missing + shapes)[:6]
            raise NetworkPickleError(f'{path} and {paths[0]} have different architectures: {"; ".join(listed)}'
                                     f'{" ..." if len(missing) + len(shapes) > 6 else ""}')
        design = design_differences(ref, G)         # alias-free: what the tensor shapes need not show
        if design:
            raise NetworkPickleError(f'{path} and {paths[0]} have different alias-free designs: {"; ".join(design[:6])}'
                                     f'{" ..." if len(design) > 6 else ""}')


def replace_tensors(record, tensors):
    """A copy of ``record`` whose parameters and buffers are ``tensors[name]`` (names as in the
    module's state_dict); every other part of the record is shared, unchanged."""
    return PersistentRecord(dict(record.meta, state=_replaced_state(record.state, tensors, '')))


def _replaced_state(state, tensors, prefix):
    state = dict(state)
    for kind in ('_parameters', '_buffers'):
        table = dict(state.get(kind) or {})
        for name, old in table.items():
            if old is None or prefix + name not in tensors:
                continue
            new = tensors[prefix + name].detach().to(old.dtype).cpu().clone()
            table[name] = torch.nn.Parameter(new, requires_grad=False) if kind == '_parameters' else new
        state[kind] = table
    children = dict(state.get('_modules') or {})
    for name, child in children.items():
        if isinstance(child, PersistentRecord):
            children[name] = PersistentRecord(dict(child.meta, state=_replaced_state(child.state, tensors,
                                                                                     prefix + name + '.')))
        elif isinstance(child, torch.nn.Module):       # a plain torch layer inside a record
            clone = type(child).__new__(type(child))
            clone.__dict__.update(_replaced_state(child.__dict__, tensors, prefix + name + '.'))
            children[name] = clone
    state['_modules'] = children
    return state


@torch.no_grad()
def mean_w(G, state, num=10000, seed=0):
    """The average w of generator ``G`` with tensors ``state``, sampled (the host's w_avg is a
    running mean of sampled ws; averaging the inputs' w_avg would be wrong for a new mapping)."""
    G = _with_state(G, state).eval()
    rng = np.random.RandomState(seed)
    z = torch.from_numpy(rng.randn(num, G.z_dim)).float()
    c = torch.zeros([num, G.c_dim])
    if G.c_dim:
        c[torch.arange(num), torch.from_numpy(rng.randint(G.c_dim, size=num))] = 1
    ws = G.mapping(z, c, truncation_psi=1)
    return ws[:, 0].mean(0)


def _with_state(module, state):
    import copy
    clone = copy.deepcopy(module)
    clone.load_state_dict(state)
    return clone


@torch.no_grad()
def sample(G, state, seeds, noise_mode='const'):
    """Images of generator ``G`` with tensors ``state`` for ``seeds`` (class 0 when conditional),
    with the latents the host's generate.py uses."""
    G = _with_state(G, state).eval()
    z = torch.from_numpy(np.concatenate([np.random.RandomState(s).randn(1, G.z_dim) for s in seeds])).float()
    c = torch.zeros([len(seeds), G.c_dim])
    if G.c_dim:
        c[:, 0] = 1
    return G(z, c, noise_mode=noise_mode)
