"""Evaluate a generator against procedural domains in the feature network's space.

For an unconditional generator: one domain. For a conditional one: one domain per class
(class k should produce ``domains[k]``). Per class: FID, KID, precision, recall against
freshly rendered real images of the domain, and domain-classifier accuracy (the share of
samples the feature network assigns to the intended domain); plus FID over the union.
"""
import numpy as np
import torch

from . import stats
from .feature_net import DOMAIN_NAMES, domain_batch, load

REAL_SEED = 4242          # renders used as "real" data here are disjoint from training renders


@torch.no_grad()
def sample_class(G, n, class_index=None, batch=64, seed=0, truncation_psi=1.0, device=None):
    """n images of ``class_index`` (None: unconditional) as a list of CPU batches, reproducibly:
    z from a generator seeded with ``seed`` and the noise inputs from the same seed, without
    touching the caller's random state."""
    device = device if device is not None else next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    out = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)              # the noise inputs too: results repeat exactly
        for k in range(0, n, batch):
            m = min(batch, n - k)
            z = torch.randn([m, G.z_dim], generator=gen).to(device)
            c = torch.zeros([m, G.c_dim], device=device)
            if class_index is not None and G.c_dim:
                c[:, class_index] = 1
            out.append(G(z, c, truncation_psi=truncation_psi, noise_mode='random').float().cpu())
    return out


@torch.no_grad()
def generator_outputs(net, G, n, class_index=None, batch=64, seed=0, truncation_psi=1.0):
    feats = [net.features(img.clamp(-1, 1))
             for img in sample_class(G, n, class_index, batch, seed, truncation_psi)]
    feats = torch.cat(feats)
    return feats.numpy(), net.head(feats)


@torch.no_grad()
def domain_features(net, domain, n, batch=256):
    d = DOMAIN_NAMES.index(domain)
    feats = [net.features(domain_batch([(d, i) for i in range(k, min(k + batch, n))], REAL_SEED)[0])
             for k in range(0, n, batch)]
    return torch.cat(feats).numpy()


def evaluate(G, domains, n=500, seed=0, truncation_psi=1.0):
    unknown = [d for d in domains if d not in DOMAIN_NAMES]
    if unknown:
        raise ValueError(f'unknown domain(s) {unknown}; choose from {", ".join(DOMAIN_NAMES)}')
    if G.c_dim and len(domains) != G.c_dim:
        raise ValueError(f'the generator has {G.c_dim} classes: give one domain per class, got {len(domains)}')
    if not G.c_dim and len(domains) != 1:
        raise ValueError('an unconditional generator is evaluated against one domain')
    net = load()
    rows, all_fake, all_real = [], [], []
    for k, domain in enumerate(domains):
        fake, logits = generator_outputs(net, G, n, k if G.c_dim else None, seed=seed + k,
                                         truncation_psi=truncation_psi)
        real = domain_features(net, domain, n)
        precision, recall = stats.precision_recall(real, fake)
        acc = float((logits.argmax(1) == DOMAIN_NAMES.index(domain)).float().mean())
        rows.append(dict(cls=k if G.c_dim else None, domain=domain, fid=stats.fid(real, fake),
                         kid=stats.kid(real, fake, num_subsets=20), precision=precision, recall=recall,
                         accuracy=acc, num=n))
        all_fake.append(fake)
        all_real.append(real)
    union = stats.fid(np.concatenate(all_real), np.concatenate(all_fake)) if len(domains) > 1 else rows[0]['fid']
    return dict(per_class=rows, fid_union=union)


def format_result(result):
    lines = ['class  domain      FID       KID      prec.  recall  accuracy']
    for r in result['per_class']:
        cls = '-' if r['cls'] is None else str(r['cls'])
        lines.append(f"{cls:<6s} {r['domain']:<10s} {r['fid']:8.3f} {r['kid']:9.4f} {r['precision']:7.3f} "
                     f"{r['recall']:7.3f} {r['accuracy']:9.3f}")
    lines.append(f"FID over the union: {result['fid_union']:.3f}")
    return '\n'.join(lines)
