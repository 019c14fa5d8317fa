"""A small feature network for the procedural domains: the offline stand-in for Inception.

A 4-block CNN trained to classify the domains (plugin.domains) at 32 px; its
64-d penultimate activations are the feature space for FID/KID/precision/recall, and its
logits give the domain-classifier accuracy of generated samples. Training is deterministic
(fixed seeds, one thread) and takes a few minutes on a CPU; the weights ship in
``plugin/assets/feature_net.pt`` (state dict only, loaded with weights_only=True).
Images of another resolution are resized to 32 px first.
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

from plugin.domains import DOMAINS, render

DOMAIN_NAMES = sorted(DOMAINS)
WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'assets', 'feature_net.pt')
RESOLUTION = 32


class FeatureNet(torch.nn.Module):
    def __init__(self,
        num_classes = len(DOMAIN_NAMES),  # Logits of the classifier head (default: one per domain).
        width       = 32,                 # Channels of the first conv; the other three have twice this.
        features    = 64,                 # Width of the penultimate layer (the FID/KID feature space).
    ):
        super().__init__()
        chans = [3, width, width * 2, width * 2, width * 2]
        self.convs = torch.nn.ModuleList([torch.nn.Conv2d(chans[i], chans[i + 1], 3, padding=1) for i in range(4)])
        self.fc = torch.nn.Linear(chans[-1] * 2 * 2, features)
        self.head = torch.nn.Linear(features, num_classes)
        # Features are divided by their overall std on the training renders, so that FID and
        # KID (cubic kernel) are in comparable, well-conditioned units.
        self.register_buffer('feature_scale', torch.ones([]))

    def features(self, x):
        """x: images in [-1, 1], NCHW, 1 or 3 channels, any square size."""
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        if x.shape[-1] != RESOLUTION:
            x = F.interpolate(x, size=(RESOLUTION, RESOLUTION), mode='area' if x.shape[-1] > RESOLUTION else 'bilinear')
        for conv in self.convs:
            x = F.max_pool2d(F.leaky_relu(conv(x), 0.2), 2)
        return F.leaky_relu(self.fc(x.flatten(1)), 0.2) / self.feature_scale

    def forward(self, x):
        return self.head(self.features(x) * self.feature_scale)


def domain_batch(indices, seed):
    """Images (in [-1, 1]) and labels for (domain, index) pairs."""
    imgs = np.stack([render(DOMAIN_NAMES[d], i, RESOLUTION, seed) for d, i in indices])
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1
    return x, torch.tensor([d for d, _ in indices])


def train(per_domain=1000, epochs=4, batch=64, seed=0, log=print):
    torch.manual_seed(seed)
    net = FeatureNet()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    items = [(d, i) for d in range(len(DOMAIN_NAMES)) for i in range(per_domain)]
    x_all, y_all = domain_batch(items, seed=1000 + seed)     # training seed differs from test renders
    rng = np.random.RandomState(seed)
    for epoch in range(epochs):
        order = rng.permutation(len(items))
        for k in range(0, len(order), batch):
            idx = torch.from_numpy(order[k:k + batch])
            loss = F.cross_entropy(net(x_all[idx]), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        log(f'epoch {epoch + 1}/{epochs}: loss {loss.item():.4f}')
    with torch.no_grad():
        net.feature_scale.copy_(net.features(x_all).std())
    return net.eval()


def load(path=WEIGHTS):
    if not os.path.isfile(path):
        raise FileNotFoundError(f'feature network weights not found at {path}; make them with '
                                '`python -m plugin.metrics.feature_net`')
    net = FeatureNet()
    net.load_state_dict(torch.load(path, map_location='cpu', weights_only=True))
    return net.eval().requires_grad_(False)


if __name__ == '__main__':
    torch.set_num_threads(1)
    model = train()
    os.makedirs(os.path.dirname(WEIGHTS), exist_ok=True)
    torch.save(model.state_dict(), WEIGHTS)
    print(f'wrote {WEIGHTS}')
