"""Widen networks to more classes while keeping what they compute.

Used where a network gains classes: the cocktail's root before conditional rooting (one class
per source; conditional sources keep theirs, offset), and a run resumed from an unconditional
pickle with --cond 1 (the host's copy fails there on the widened mapping layer). The widened
networks compute exactly what the original computed, whatever the label.

From unconditional, the new label path starts **at the host's own scale**, not at zero: the
mapping layers' learning-rate multiplier (0.01) means raw weights live at ~1/0.01 and Adam
moves them ~lr per step, so zero-initialised label columns stayed ~0.04% of the input after
1500 steps (measured, issue 16): the label was never learnt. Instead:

Generator: every class gets the same embedding (the new embedding layer's first column,
freshly initialised), ``mapping.fc0``'s new label columns keep their fresh full-scale init,
and that embedding's constant contribution to fc0 is subtracted from fc0's bias; the latent
columns are rescaled for the layer's new fan-in (equalised learning rate divides by
sqrt(fan_in)). So fc0's output is unchanged for every label, and the first step that shows
two classes different images moves their embeddings apart through full-scale weights.
From conditional: the embedding's columns move to the source's class offset, new classes
start from the mean class embedding.

Discriminator: the label mapping keeps its fresh full-scale init with one embedding for all
classes, so cmap is one constant vector m; row i of the projection output ``b4.out`` is the
old single row times m_i * sqrt(cmap_dim) / |m|^2, so that sum_i out_i m_i / sqrt(cmap_dim)
is the old logit for any label. From conditional: its embedding widens as the generator's.

The fresh weights are drawn from a fixed seed (the caller's RNG untouched): widening G and
G_ema separately gives them the same label path.
"""
import math

import torch

WIDEN_SEED = 0


def _rebuild(module, c_dim):
    kwargs = dict(module._init_kwargs, c_dim=c_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(WIDEN_SEED)
        return type(module)(*module._init_args, **kwargs).to(next(module.parameters()).device)


def _copy_matching(src, dst, skip=()):
    dst_state = dst.state_dict()
    with torch.no_grad():
        for name, value in src.state_dict().items():
            if name in dst_state and name not in skip and dst_state[name].shape == value.shape:
                dst_state[name].copy_(value)


def _widen_embedding(old_fc, new_fc, offset):
    """Old columns at ``offset``; other columns the mean old column; gain change compensated."""
    c_old, c_new = old_fc.weight.shape[1], new_fc.weight.shape[1]
    with torch.no_grad():
        w = old_fc.weight * math.sqrt(c_new / c_old)
        new_fc.weight.copy_(w.mean(1, keepdim=True).expand_as(new_fc.weight))
        new_fc.weight[:, offset:offset + c_old] = w
        new_fc.bias.copy_(old_fc.bias)


def _one_embedding(embed):
    """Every class's embedding column made equal to the first: the label changes nothing yet."""
    with torch.no_grad():
        embed.weight.copy_(embed.weight[:, :1].expand_as(embed.weight).clone())


def _first_class(module, c_dim):
    c = torch.zeros([1, c_dim], device=next(module.parameters()).device)
    c[0, 0] = 1
    return c


def widen_generator(G, c_dim, offset=0):
    if G.c_dim == c_dim:
        return G
    new = _rebuild(G, c_dim)
    _copy_matching(G, new)
    if G.c_dim == 0:
        z = G.z_dim
        fc0 = new.mapping.fc0
        _one_embedding(new.mapping.embed)
        with torch.no_grad():
            fc0.weight[:, :z] = G.mapping.fc0.weight * math.sqrt(fc0.weight.shape[1] / G.mapping.fc0.weight.shape[1])
            y = new.mapping.embed(_first_class(new, c_dim))
            y = y * (y.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()       # the mapping's normalisation
            label_part = y @ (fc0.weight[:, z:] * fc0.weight_gain).t()
            fc0.bias.sub_(label_part[0] / fc0.bias_gain)
    else:
        _widen_embedding(G.mapping.embed, new.mapping.embed, offset)
    return new


def widen_discriminator(D, c_dim, offset=0):
    if D.c_dim == c_dim:
        return D
    new = _rebuild(D, c_dim)
    _copy_matching(D, new)
    if D.c_dim == 0:
        cmap_dim = new.b4.cmap_dim                # (the host keeps it on the epilogue only)
        _one_embedding(new.mapping.embed)
        with torch.no_grad():
            m = new.mapping(None, _first_class(new, c_dim))[0]
            scale = m * math.sqrt(cmap_dim) / m.square().sum()
            new.b4.out.weight.copy_(D.b4.out.weight * scale[:, None])
            new.b4.out.bias.copy_(D.b4.out.bias * scale)
    else:
        _widen_embedding(D.mapping.embed, new.mapping.embed, offset)
    return new
