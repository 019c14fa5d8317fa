"""Encode the target set once: a cache of latents (or features) on disk, with a fingerprint.

The cache is valid for one (dataset contents, x-flip, encoder weights) triple; anything
else rebuilds it. The dataset's fingerprint hashes a zip/file's bytes, or a folder's file
names, sizes and modification times (hashing every image of a large folder would cost
as much as encoding it); the encoder's hashes its constructor kwargs and every tensor.
"""
import hashlib
import json
import os

import numpy as np
import torch

from plugin.hosts import active_host
from plugin.persistence import constructor_kwargs
from plugin.pickles import load_tensors_file, save_tensors


def dataset_fingerprint(path):
    h = hashlib.sha256()
    if os.path.isdir(path):
        for root, dirs, files in sorted(os.walk(path)):
            dirs.sort()
            for name in sorted(files):
                p = os.path.join(root, name)
                st = os.stat(p)
                h.update(f'{os.path.relpath(p, path)}\0{st.st_size}\0{st.st_mtime_ns}\n'.encode())
    else:
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                h.update(chunk)
    return h.hexdigest()


def module_fingerprint(module):
    h = hashlib.sha256(json.dumps(constructor_kwargs(module), sort_keys=True, default=str).encode())
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def iterate_images(path, xflip=False, batch=64, max_images=None):
    """Batches of target images as float tensors in [-1, 1] (and x-flipped copies when asked)."""
    ds = active_host().construct_class_by_name('training.dataset.ImageFolderDataset', path=path, use_labels=False,
                                               max_size=max_images, xflip=xflip)
    try:
        n = len(ds)
        for i in range(0, n, batch):
            imgs = np.stack([ds[j][0] for j in range(i, min(i + batch, n))])
            yield torch.from_numpy(imgs).to(torch.float32) / 127.5 - 1
    finally:
        ds.close()


@torch.no_grad()
def encode_dataset(encode, path, device, xflip=False, batch=64, max_images=None):
    out = [encode(x.to(device)).cpu() for x in iterate_images(path, xflip, batch, max_images)]
    if not out:
        raise ValueError(f'{path}: no images to encode')
    return torch.cat(out)


def load_or_build(cache_path, encoder, encode, data_path, device, xflip=False, max_images=None, log=print):
    """The cached encodings of ``data_path`` when the cache matches, else encode and save.

    ``encoder`` is the module whose weights the encoding depends on (fingerprinted);
    ``encode`` maps an image batch to its encoding. Returns (tensor, rebuilt: bool).
    """
    key = dict(dataset=dataset_fingerprint(data_path), encoder=module_fingerprint(encoder), xflip=bool(xflip),
               max_images=max_images)
    if os.path.isfile(cache_path):
        try:
            cached = load_tensors_file(cache_path)
            if cached.get('key') == key:
                log(f'Latent cache {cache_path}: valid, {len(cached["latents"])} encodings reused')
                return cached['latents'], False
            log(f'Latent cache {cache_path}: stale ({", ".join(k for k in key if cached.get("key", {}).get(k) != key[k])}'
                ' changed), re-encoding')
        except Exception as e:                       # unreadable: rebuild rather than fail
            log(f'Latent cache {cache_path}: unreadable ({e}), re-encoding')
    latents = encode_dataset(encode, data_path, device, xflip, max_images=max_images)
    save_tensors(dict(key=key, latents=latents), cache_path)
    log(f'Latent cache {cache_path}: {len(latents)} encodings of shape {list(latents.shape[1:])} written')
    return latents, True
