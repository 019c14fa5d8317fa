"""Training the autoencoder constraint on generated data only (no target image is used).

Latent modes: E(G.synthesis(w)) ~ w and G.synthesis(E(x)) ~ x for x = G.synthesis(w).
Partial mode at R: A(D_high(G_high(h))) ~ h and G_high(A(D_high(x))) ~ x for the features
h = G_low(w) and the image x = G_high(h).

The latent term is measured in the target's normalised units (the encoder's own stats), the
image term as MSE in [-1, 1]; both are reported, on held-out samples, together with the
reconstruction error of the target images (the paper's bound grows with that distance).
"""
import time

import torch

from .split import d_high, synthesis_high, synthesis_low


class LatentTask:
    """What to encode and how to decode it, for --bypass w|wplus."""

    def __init__(self,
        G,        # Frozen generator; its synthesis decodes the latents.
        encoder,  # ImageEncoder being trained (its mode picks w or W+).
    ):
        self.G, self.encoder, self.num_ws = G, encoder, G.synthesis.num_ws
        self.trainable = list(encoder.parameters())

    def sample(self, z):
        ws = self.G.mapping(z, torch.zeros([z.shape[0], self.G.c_dim], device=z.device))
        img = self.G.synthesis(ws, noise_mode='const', force_fp32=True)
        return (ws[:, 0] if self.encoder.mode == 'w' else ws), img, ws

    def encode(self, img):
        return self.encoder(img)

    def decode(self, latent, ws):
        full = latent.unsqueeze(1).repeat([1, self.num_ws, 1]) if self.encoder.mode == 'w' else latent
        return self.G.synthesis(full, noise_mode='const', force_fp32=True)


class FeatureTask:
    """What to encode and how to decode it, for --bypass R (the adapter of a SplitDiscriminator)."""

    def __init__(self,
        G,        # Frozen generator, run in two parts at split_D.res.
        split_D,  # SplitDiscriminator: its adapter is trained, its blocks above R stay frozen.
        has_img,  # Features at R carry the skip generator's partial image as extra channels.
    ):
        self.G, self.D, self.res, self.has_img = G, split_D, split_D.res, has_img
        self.encoder = split_D.adapter
        self.trainable = list(split_D.adapter.parameters())

    def sample(self, z):
        ws = self.G.mapping(z, torch.zeros([z.shape[0], self.G.c_dim], device=z.device))
        h = synthesis_low(self.G.synthesis, ws, self.res, noise_mode='const', force_fp32=True)
        img = synthesis_high(self.G.synthesis, h, ws, self.res, self.G.img_channels, self.has_img,
                             noise_mode='const', force_fp32=True)
        return h, img, ws

    def encode(self, img):
        with torch.no_grad():                       # D's blocks above R are frozen
            feats = d_high(self.D.D, img, self.res)
        return self.encoder(feats)

    def decode(self, h, ws):
        return synthesis_high(self.G.synthesis, h, ws, self.res, self.G.img_channels, self.has_img,
                              noise_mode='const', force_fp32=True)


def _losses(task, z, image_weight):
    with torch.no_grad():
        target, img, ws = task.sample(z)
    pred = task.encode(img)
    latent_loss = (task.encoder.normalise(pred) - task.encoder.normalise(target)).square().mean()
    image_loss = (task.decode(pred, ws) - img).square().mean() if image_weight else torch.zeros([], device=z.device)
    return latent_loss, image_loss, pred, img, ws


@torch.no_grad()
def set_stats(task, z_dim, device, n=256, batch=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    samples = [task.sample(torch.randn([batch, z_dim], generator=g).to(device))[0] for _ in range(0, n, batch)]
    task.encoder.set_target_stats(torch.cat(samples))


@torch.no_grad()
def evaluate(task, z_dim, device, n=64, batch=32, seed=12345, targets=None):
    """Held-out reconstruction errors on generated data (and on ``targets`` images if given)."""
    g = torch.Generator().manual_seed(seed)
    lat, img_err = [], []
    for _ in range(0, n, batch):
        l, i, *_ = _losses(task, torch.randn([batch, z_dim], generator=g).to(device), 1)
        lat.append(float(l))
        img_err.append(float(i))
    out = dict(latent_mse=sum(lat) / len(lat), image_mse=sum(img_err) / len(img_err))
    if targets is not None:
        x = targets.to(device)
        z = torch.randn([x.shape[0], z_dim], generator=g).to(device)
        _, _, ws = task.sample(z)            # the styles of the frozen part above R (partial mode)
        out['target_image_mse'] = float((task.decode(task.encode(x), ws) - x).square().mean())
    return out


def train(task, z_dim, device, kimg, batch=16, lr=1e-3, image_weight=1.0, seed=0, log=print, tick_kimg=None):
    """Train ``task.trainable`` for ``kimg`` thousand generated images; returns a history."""
    params = task.trainable
    opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(seed)
    total = int(kimg * 1000)
    tick = int((max(kimg / 10, 0.001) if tick_kimg is None else tick_kimg) * 1000)
    history, seen, next_tick, t0 = [], 0, 0, time.time()
    task.encoder.train()
    while seen < total:
        z = torch.randn([batch, z_dim], generator=g).to(device)
        latent_loss, image_loss, *_ = _losses(task, z, image_weight)
        opt.zero_grad(set_to_none=True)
        (latent_loss + image_weight * image_loss).backward()
        opt.step()
        seen += batch
        if seen >= next_tick or seen >= total:
            rec = dict(kimg=seen / 1000, latent_loss=latent_loss.item(), image_loss=image_loss.item(),
                       sec=round(time.time() - t0, 1))
            history.append(rec)
            log(f'  encoder kimg {rec["kimg"]:7.2f}  latent {rec["latent_loss"]:.4f}  image {rec["image_loss"]:.4f}  '
                f'{rec["sec"]:.0f}s')
            next_tick += tick
    task.encoder.eval()
    return history
