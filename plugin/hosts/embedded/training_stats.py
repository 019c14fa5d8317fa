"""Named scalar statistics reported from anywhere (the loss, the loop) and collected by
interested readers: a tick's log line, ADA's overfitting heuristic. Across processes the
sums are all-reduced, so every rank sees the same means."""
import re
from collections import defaultdict

import torch
import torch.distributed as dist

_collectors = []


def report(name, value):
    """Record the elements of ``value`` under ``name``; returns ``value`` unchanged."""
    if _collectors:
        t = torch.as_tensor(value).detach().flatten().to(torch.float64)
        if t.numel() == 0:
            return value
        # Sums stay tensors (on the value's device) until update(): no device sync per report.
        stats = (t.numel(), t.sum(), t.square().sum())
        for c in _collectors:
            if c.regex.fullmatch(name):
                acc = c._acc[name]
                for i in range(3):
                    acc[i] = acc[i] + stats[i]
    return value


def _floats(acc):
    return [float(v) for v in acc]


class Collector:
    """Accumulates reports whose name matches ``regex`` until ``update()``."""

    def __init__(self, regex='.*'):
        self.regex = re.compile(regex)
        self._acc = defaultdict(lambda: [0, 0.0, 0.0])
        self._means = {}
        _collectors.append(self)

    def update(self):
        """Freeze the current means (all-reduced across processes) and start afresh."""
        names = sorted(self._acc)
        if dist.is_available() and dist.is_initialized():
            all_names = [None] * dist.get_world_size()
            dist.all_gather_object(all_names, names)
            names = sorted(set().union(*all_names))
            t = torch.tensor([_floats(self._acc[n]) if n in self._acc else [0, 0.0, 0.0] for n in names],
                             dtype=torch.float64)
            if names:
                dist.all_reduce(t)
            rows = t.tolist()
        else:
            rows = [_floats(self._acc[n]) for n in names]
        self._means = {n: r[1] / r[0] for n, r in zip(names, rows) if r[0] > 0}
        self._acc.clear()
        return self._means

    def __getitem__(self, name):
        return self._means.get(name, float('nan'))

    def as_dict(self):
        return dict(self._means)

    def close(self):
        if self in _collectors:
            _collectors.remove(self)
