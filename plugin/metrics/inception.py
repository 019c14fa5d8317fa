"""The standard Inception FID/KID, with the Inception weights file the user already has.

The host computes FID with NVIDIA's TorchScript Inception detector
(``inception-2015-12-05.pt``, called as ``detector(uint8 NCHW, return_features=True)`` ->
[N, 2048] pool features). Nothing is downloaded here: pass the file's path (``--inception``).
The file is TorchScript, loaded with ``torch.jit.load``: its code is TorchScript IR run by
torch's interpreter, not Python, so loading it cannot run arbitrary Python the way a pickle
can. Results are comparable with the papers' FIDs when the same number of samples is used.
"""
import os
import warnings

import numpy as np
import torch

from . import stats
from plugin.errors import DetectorError


def load_detector(path, device='cpu'):
    if not path or not os.path.isfile(path):
        raise DetectorError(f'--inception {path}: no such file (give the host\'s inception-2015-12-05.pt)')
    try:
        with warnings.catch_warnings():               # torch.jit.load's deprecation notice: the host's format
            warnings.simplefilter('ignore', DeprecationWarning)
            det = torch.jit.load(path, map_location=device).eval()
    except (RuntimeError, ValueError) as e:
        raise DetectorError(f'--inception {path}: not a TorchScript detector ({str(e).splitlines()[0]})') from None
    return det


@torch.no_grad()
def features(detector, images):
    """[N, D] features of images in [-1, 1] (NCHW; 1 channel is repeated to 3), as the host
    feeds them: uint8 in [0, 255]."""
    x = (images.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    if x.shape[1] == 1:
        x = x.repeat([1, 3, 1, 1])
    out = detector(x.to(next(iter(detector.parameters()), torch.empty(0)).device), return_features=True)
    return out.detach().double().cpu().numpy()


@torch.no_grad()
def dataset_features(detector, path, max_items=None, batch=64):
    from plugin.hosts import active_host
    ds = active_host().construct_class_by_name('training.dataset.ImageFolderDataset', path=path, max_size=max_items)
    try:
        feats = []
        for i in range(0, len(ds), batch):
            imgs = np.stack([ds[j][0] for j in range(i, min(i + batch, len(ds)))])
            feats.append(features(detector, torch.from_numpy(imgs).float() / 127.5 - 1))
    finally:
        ds.close()
    return np.concatenate(feats)


@torch.no_grad()
def generator_features(detector, G, n, class_index=None, batch=64, seed=0, truncation_psi=1.0):
    gen = torch.Generator().manual_seed(seed)
    device = next(G.parameters()).device
    feats = []
    for k in range(0, n, batch):
        m = min(batch, n - k)
        z = torch.randn([m, G.z_dim], generator=gen).to(device)
        c = torch.zeros([m, G.c_dim], device=device)
        if G.c_dim:
            idx = torch.full([m], class_index, dtype=torch.long) if class_index is not None else \
                torch.randint(G.c_dim, [m], generator=gen)
            c[torch.arange(m), idx.to(device)] = 1
        feats.append(features(detector, G(z, c, truncation_psi=truncation_psi, noise_mode='const').clamp(-1, 1)))
    return np.concatenate(feats)


def inception_metrics(G, data_path, detector_path, n=10000, seed=0, truncation_psi=1.0):
    """FID and KID between ``n`` samples of G and (up to ``n``) images of ``data_path``."""
    det = load_detector(detector_path)
    real = dataset_features(det, data_path, max_items=n)
    fake = generator_features(det, G, n, seed=seed, truncation_psi=truncation_psi)
    return dict(inception_fid=stats.fid(real, fake), inception_kid=stats.kid(real, fake), num_fake=n,
                num_real=len(real))
