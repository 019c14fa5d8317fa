"""The paper's measure of how far apart two models of one architecture are: per layer
(parameter tensor), the squared L2 distance; overall, the mean over layers."""
import itertools


def layer_distances(a, b):
    sa, sb = dict(a.named_parameters()), dict(b.named_parameters())
    return {n: float((sa[n].detach().double() - sb[n].detach().double()).square().sum())
            for n in sa if n in sb and sa[n].shape == sb[n].shape}


def pairwise(models):
    """{'i-j': {'mean': ..., 'per_layer': {...}}} for every pair of named models."""
    out = {}
    for (na, a), (nb, b) in itertools.combinations(models.items(), 2):
        per_layer = layer_distances(a, b)
        out[f'{na} - {nb}'] = dict(mean=sum(per_layer.values()) / max(len(per_layer), 1), per_layer=per_layer)
    return out


def summary(distances):
    return {pair: d['mean'] for pair, d in distances.items()}


