"""Widen networks to more classes while keeping what they compute.

Used where a network gains classes: the cocktail's merged model (one class per source;
conditional sources keep theirs, offset), and a run resumed from an unconditional pickle with
--cond 1 (the host's copy fails there on the widened mapping layer). The widened networks
compute exactly what the original computed, whatever the label:

Generator, from unconditional: the new label columns of ``mapping.fc0`` are zero and the
latent columns are rescaled for the layer's new fan-in (equalised learning rate divides by
sqrt(fan_in)), so fc0's output is unchanged. From conditional: the embedding's columns move
to the source's class offset, new classes start from the mean class embedding.

Discriminator, from unconditional: every row of the new projection output ``b4.out`` is the
old single row, and the label mapping's last layer starts with zero weights and a bias that
makes every cmap entry 1/sqrt(cmap_dim): the projection then returns the old logit for any
label. From conditional: its embedding widens as the generator's does.
All new weights receive gradients from the first step.
"""
import math

import torch


def _rebuild(module, c_dim):
    kwargs = dict(module._init_kwargs, c_dim=c_dim)
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


def widen_generator(G, c_dim, offset=0):
    if G.c_dim == c_dim:
        return G
    new = _rebuild(G, c_dim)
    _copy_matching(G, new)
    if G.c_dim == 0:
        z = G.z_dim
        with torch.no_grad():
            fc0_old, fc0_new = G.mapping.fc0.weight, new.mapping.fc0.weight
            fc0_new.zero_()
            fc0_new[:, :z] = fc0_old * math.sqrt(fc0_new.shape[1] / fc0_old.shape[1])
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
        last = getattr(new.mapping, f'fc{new.mapping.num_layers - 1}')
        with torch.no_grad():
            new.b4.out.weight.copy_(D.b4.out.weight.expand_as(new.b4.out.weight))
            new.b4.out.bias.copy_(D.b4.out.bias.expand_as(new.b4.out.bias))
            last.weight.zero_()
            # lrelu(bias * bias_gain) * sqrt(2) = 1 / sqrt(cmap_dim) for every entry
            last.bias.fill_(1 / (last.bias_gain * math.sqrt(2) * math.sqrt(cmap_dim)))
    else:
        _widen_embedding(D.mapping.embed, new.mapping.embed, offset)
    return new

