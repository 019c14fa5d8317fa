"""Procedural image domains: the project's own measurable world.

Each domain is a family of simple images (discs, squares, stripes, rings, triangles) whose
position, size, orientation, colours and background vary. Image ``i`` of a domain at a seed
is a pure function of (domain, i, resolution, seed): datasets are reproducible bit for bit
and need no download. Shapes are drawn at 4x resolution and box-filtered down (anti-aliased).
"""
import colorsys
import io
import json
import zipfile

import numpy as np
from PIL import Image

from .files import atomic_write_bytes

SUPERSAMPLE = 4


def _grid(res):
    n = res * SUPERSAMPLE
    t = (np.arange(n) + 0.5) / n
    return np.meshgrid(t, t, indexing='xy')          # x, y in (0, 1)


def _colours(rng):
    """A dark muted background and a bright foreground of a clearly different hue."""
    h_bg = rng.uniform()
    h_fg = (h_bg + rng.uniform(0.25, 0.75)) % 1.0
    bg = colorsys.hsv_to_rgb(h_bg, rng.uniform(0.2, 0.6), rng.uniform(0.1, 0.4))
    fg = colorsys.hsv_to_rgb(h_fg, rng.uniform(0.5, 1.0), rng.uniform(0.7, 1.0))
    return np.array(bg), np.array(fg)


def _rotate(x, y, cx, cy, angle):
    c, s = np.cos(angle), np.sin(angle)
    dx, dy = x - cx, y - cy
    return c * dx + s * dy, -s * dx + c * dy


def _disc(x, y, rng):
    cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.12, 0.28)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def _square(x, y, rng):
    cx, cy, h = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.22)
    u, v = _rotate(x, y, cx, cy, rng.uniform(0, np.pi / 2))
    return (np.abs(u) <= h) & (np.abs(v) <= h)


def _stripes(x, y, rng):
    period, phase = rng.uniform(0.15, 0.35), rng.uniform(0, 1)
    u, _ = _rotate(x, y, 0.5, 0.5, rng.uniform(0, np.pi))
    return ((u / period + phase) % 1.0) < 0.5


def _ring(x, y, rng):
    cx, cy = rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65)
    r, w = rng.uniform(0.16, 0.3), rng.uniform(0.04, 0.08)
    d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
    return np.abs(d - r) <= w


def _triangle(x, y, rng):
    cx, cy, r = rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65), rng.uniform(0.15, 0.3)
    u, v = _rotate(x, y, cx, cy, rng.uniform(0, 2 * np.pi / 3))
    inside = np.ones_like(u, dtype=bool)
    for k in range(3):                               # intersection of three half-planes
        a = 2 * np.pi * k / 3
        inside &= (np.cos(a) * u + np.sin(a) * v) <= r / 2
    return inside


DOMAINS = {'discs': _disc, 'squares': _square, 'stripes': _stripes, 'rings': _ring, 'triangles': _triangle}


def render(domain, index, resolution=32, seed=0):
    """Image ``index`` of ``domain`` as an HxWx3 uint8 array."""
    if domain not in DOMAINS:
        raise ValueError(f'unknown domain {domain!r}; choose from {", ".join(DOMAINS)}')
    if resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f'resolution must be a power of two >= 4, got {resolution}')
    key = [seed, index, sorted(DOMAINS).index(domain)]
    rng = np.random.RandomState(np.random.SeedSequence(key).generate_state(1)[0])
    bg, fg = _colours(rng)
    x, y = _grid(resolution)
    mask = DOMAINS[domain](x, y, rng).astype(np.float64)
    img = bg * (1 - mask[..., None]) + fg * mask[..., None]
    img = img.reshape(resolution, SUPERSAMPLE, resolution, SUPERSAMPLE, 3).mean(axis=(1, 3))
    return np.rint(img * 255).clip(0, 255).astype(np.uint8)


def write_domains_zip(path, domains, count, resolution=32, seed=0, labels=None):
    """Write ``count`` images per domain to a zip in the host's dataset layout.

    ``labels`` (default: True when there are several domains) writes ``dataset.json`` with
    the domain's position in ``domains`` as class label. Written atomically.
    """
    domains = list(domains)
    if not domains:
        raise ValueError('no domains given')
    if count < 1:
        raise ValueError('count must be at least 1')
    labels = len(domains) > 1 if labels is None else labels
    entries = []
    blob = io.BytesIO()
    with zipfile.ZipFile(blob, 'w', compression=zipfile.ZIP_STORED) as zf:
        for cls, domain in enumerate(domains):
            for i in range(count):
                name = f'{domain}/img{i:08d}.png'
                buf = io.BytesIO()
                Image.fromarray(render(domain, i, resolution, seed)).save(buf, format='png', compress_level=1)
                zf.writestr(name, buf.getvalue())
                entries.append([name, cls])
        zf.writestr('dataset.json', json.dumps({'labels': entries if labels else None,
                                                'domains': domains, 'seed': seed}))
    atomic_write_bytes(blob.getvalue(), path)
    return path
