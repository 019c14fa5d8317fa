"""Does merged class k draw source k's domain? Measured on any domain (faces, cats, cars):

* **source identification**: a small CNN, trained on the fly on the sources' own generated
  images (one label per merged class), says which class's source an image looks like; the
  share of the merged model's class-k samples it gives to class k is class k's accuracy.
  Its held-out accuracy on fresh source samples is printed beside it (chance is 1/C; near
  1 means the sources are told apart and the judgement can be trusted).
* **per-class FID** of the merged model's class-k samples against source k's samples, in the
  project's feature space (plugin/metrics/feature_net.py: resized to 32 px), or in Inception
  space when the user gives the host's detector file (``--judge-inception``: images at their
  own resolution, as the host's FID; slower on a CPU).

Trained once per pipeline and kept in ``judge/`` (a few seconds to minutes on a CPU at small
resolution, set by ``--judge N`` images per class; 0 turns it off).
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

from plugin.metrics import inception, stats
from plugin.metrics.evaluate import sample_class
from plugin.metrics.feature_net import load as load_feature_net

RESOLUTION = 32          # judged at this size: cheap on a CPU, enough to tell domains apart
STEPS = 300             # Adam steps of 64 images ...
MAX_EPOCHS = 40         # ... but no more passes over a small set than this (it would only memorise)
HELD_OUT = 0.2


class SourceClassifier(torch.nn.Module):
    def __init__(self,
        num_classes,       # Merged classes to tell apart (logits).
        width       = 16,  # Channels of the first conv; the other two have twice this.
    ):
        super().__init__()
        chans = [3, width, width * 2, width * 2]
        self.convs = torch.nn.ModuleList([torch.nn.Conv2d(chans[i], chans[i + 1], 3, padding=1) for i in range(3)])
        self.head = torch.nn.Linear(chans[-1] * 4 * 4, num_classes)

    def forward(self, x):
        for conv in self.convs:
            x = F.max_pool2d(F.leaky_relu(conv(x), 0.2), 2)
        return self.head(x.flatten(1))


def _prepare(img):
    """[-1, 1] NCHW of any size and 1 or 3 channels -> 3 x 32 x 32."""
    img = img.float().clamp(-1, 1)
    if img.shape[1] == 1:
        img = img.repeat(1, 3, 1, 1)
    if img.shape[-1] != RESOLUTION:
        img = F.interpolate(img, size=(RESOLUTION, RESOLUTION), mode='area' if img.shape[-1] > RESOLUTION
                            else 'bilinear', align_corners=None)
    return img


class FeatureSpace:
    """Where per-class FID is measured: the project's feature network (default), or Inception
    with the detector file the user gives (``inception``: its path)."""

    def __init__(self, inception_path=None):
        self.inception_path = inception_path
        self._net = None

    @property
    def name(self):
        return 'Inception' if self.inception_path else 'project feature space'

    def features(self, native):
        """[N, D] features of images in [-1, 1] at the generator's own resolution."""
        if self._net is None:
            self._net = inception.load_detector(self.inception_path) if self.inception_path else load_feature_net()
        if self.inception_path:
            return inception.features(self._net, native.clamp(-1, 1))
        return self._net.features(_prepare(native)).numpy()


@torch.inference_mode()
def sample(G, class_index, n, seed, space=None, batch=64, device='cpu'):
    """n images of ``class_index`` (None: unconditional) at the judge's size, reproducibly, and
    (with ``space``) their features for FID, computed batch by batch at the native resolution."""
    G = G.eval().to(device)
    images, feats = [], []
    for img in sample_class(G, n, class_index, batch, seed, device=device):
        images.append(_prepare(img))
        if space is not None:
            feats.append(space.features(img))
    return torch.cat(images), (np.concatenate(feats) if feats else None)


def source_samples(sources, n, seed, space=None):
    """{merged class k: (images of source k's domain, their features)} (a conditional source's
    own class)."""
    out = {}
    for s in sources:
        for k in range(s.num_classes):
            out[s.offset + k] = sample(s.G_ema, k if s.G_ema.c_dim else None, n, seed + 1000 * (s.offset + k), space)
    return out


class Judge:
    def __init__(self,
        classifier,               # Trained SourceClassifier (put in eval mode).
        heldout_accuracy,         # Its accuracy on held-out source images, in [0, 1].
        source_features,          # {merged class k: features [N, D] of source k's samples}.
        class_names,              # Names of the merged classes, in class order.
        inception_path   = None,  # Host's Inception detector file for FID; None = project feature space.
    ):
        self.classifier, self.heldout_accuracy = classifier.eval(), heldout_accuracy
        self.source_features, self.class_names = source_features, class_names
        self.space = FeatureSpace(inception_path)

    @classmethod
    def train(cls, sources, class_names, n=1000, seed=0, steps=STEPS, inception_path=None, log=print):
        """Classifier on n images per merged class (HELD_OUT of them kept back)."""
        space = FeatureSpace(inception_path)
        samples = source_samples(sources, n, seed, space)
        images = {k: v[0] for k, v in samples.items()}
        C = len(images)
        x = torch.cat([images[k] for k in range(C)])
        y = torch.cat([torch.full([len(images[k])], k) for k in range(C)])
        rng = np.random.RandomState(seed)
        order = torch.from_numpy(rng.permutation(len(x)))
        cut = int(len(x) * (1 - HELD_OUT))
        train, test = order[:cut], order[cut:]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = SourceClassifier(C)
            opt = torch.optim.Adam(net.parameters(), lr=2e-3)
            for _ in range(min(steps, -(-MAX_EPOCHS * len(train) // 64))):
                idx = train[torch.from_numpy(rng.choice(len(train), min(64, len(train)), replace=False))]
                loss = F.cross_entropy(net(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            acc = float((net.eval()(x[test]).argmax(1) == y[test]).float().mean())
        feats = {k: samples[k][1] for k in range(C)}
        log(f'Source-identification classifier: held-out accuracy {acc:.3f} on {len(test)} source images '
            f'({C} classes, chance {1 / C:.3f}); FID in {space.name}')
        return cls(net, acc, feats, class_names, inception_path)

    def save(self, directory):
        os.makedirs(directory, exist_ok=True)
        torch.save(self.classifier.state_dict(), os.path.join(directory, 'classifier.pt'))
        np.savez(os.path.join(directory, 'source_features.npz'), **{str(k): v for k, v in self.source_features.items()})
        with open(os.path.join(directory, 'judge.json'), 'w') as f:
            json.dump(dict(heldout_accuracy=self.heldout_accuracy, class_names=self.class_names,
                           inception=self.space.inception_path), f)

    @classmethod
    def load(cls, directory):
        with open(os.path.join(directory, 'judge.json')) as f:
            info = json.load(f)
        feats = dict(np.load(os.path.join(directory, 'source_features.npz')))
        feats = {int(k): v for k, v in feats.items()}
        net = SourceClassifier(len(feats))
        net.load_state_dict(torch.load(os.path.join(directory, 'classifier.pt'), weights_only=True))
        return cls(net, info['heldout_accuracy'], feats, info['class_names'], info.get('inception'))

    @torch.no_grad()
    def evaluate(self, G, n, seed=1234):
        """Per merged class k: accuracy (share of G's class-k samples identified as class k)
        and FID against source k's samples."""
        acc, fid = [], []
        for k in range(len(self.source_features)):
            img, feats = sample(G, k, n, seed + k, self.space)
            acc.append(float((self.classifier(img).argmax(1) == k).float().mean()))
            fid.append(stats.fid(self.source_features[k], feats))
        return dict(accuracy=acc, fid=fid, mean_accuracy=float(np.mean(acc)))
