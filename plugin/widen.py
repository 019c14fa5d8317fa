"""Widen networks to more classes while keeping what they compute.

Used where a network gains classes: the cocktail's root before conditional rooting (one class
per source; conditional sources keep theirs, offset), and a run resumed from an unconditional
pickle with --cond 1 (the host's copy fails there on the widened mapping layer). The widened
networks compute exactly what the original computed, whatever the label.

From unconditional, the new label path starts **at the host's own scale**, not at zero: the
mapping layers' learning-rate multiplier (0.01) means raw weights live at ~1/0.01 and Adam
moves them ~lr per step, so zero-initialised label columns stayed ~0.04% of the input after
1500 steps (measured, issue 16): the label was never learnt. Instead:

Generator: every class gets **its own** freshly initialised embedding (symmetry broken: with
one shared embedding, classes came apart more slowly in the cocktail: 0.67 / 0.85 per-class
accuracy against 0.80 / 0.93 after the same 4 + 8 kimg, BENCHMARKS.md issue 16),
``mapping.fc0``'s new label columns keep their fresh full-scale init except along the
differences between the (normalised) class embeddings, which are projected out of them, and
the first class's constant contribution is subtracted from fc0's bias; the latent columns are
rescaled for the layer's new fan-in (equalised learning rate divides by sqrt(fan_in)). So
fc0's output is unchanged for every label, yet the classes already enter the network through
different inputs: the first step that shows two classes different images moves them apart.
(More classes than embedding features - 1: one shared embedding, as there is no such null space.)
From conditional: the embedding's columns move to the source's class offset, new classes
start from the mean class embedding.

Discriminator: the label mapping keeps its fresh full-scale init, one distinct embedding per
class, so class k's cmap is m_k; row i of the projection output ``b4.out`` is the old single
row times u_i, with u the least-norm solution of u . m_k = sqrt(cmap_dim) for every k, so that
sum_i out_i m_k,i / sqrt(cmap_dim) is the old logit for any label (more classes than cmap_dim:
one shared embedding). From conditional: its embedding widens as the generator's.

Both generator layouts of the stylegan3 repo widen the same way: its StyleGAN2
(``networks_stylegan2``) has stylegan2-ada's mapping, and the alias-free generator's mapping
embeds the label with an FC c_dim -> w_dim and normalises it exactly as stylegan2-ada does, so
the label path above is the same; the rebuilt network's fresh Fourier features, filters and
``magnitude_ema`` are replaced by the original's (every tensor of matching shape is copied), so
the widened generator keeps the root's features and statistics. The stylegan3 repo's D is its
StyleGAN2 D.

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


def _widen_embedding(old_fc, new_fc, offset, perturb=False):
    """Old columns at ``offset``; other columns the mean old column (``perturb``: plus half of
    their fresh init, so that the new classes differ from the start); gain change compensated."""
    c_old, c_new = old_fc.weight.shape[1], new_fc.weight.shape[1]
    with torch.no_grad():
        w = old_fc.weight * math.sqrt(c_new / c_old)
        fresh = new_fc.weight.clone()
        new_fc.weight.copy_(w.mean(1, keepdim=True).expand_as(new_fc.weight))
        if perturb:
            new_fc.weight.add_(0.5 * fresh)
        new_fc.weight[:, offset:offset + c_old] = w
        new_fc.bias.copy_(old_fc.bias)


def _one_embedding(embed):
    """Every class's embedding column made equal to the first: the label changes nothing yet."""
    with torch.no_grad():
        embed.weight.copy_(embed.weight[:, :1].expand_as(embed.weight).clone())


def _without(weight, directions):
    """``weight`` [out, E] with the span of ``directions`` [K, E] removed from its input space:
    weight @ d = 0 for every direction d, so inputs that differ only along them give one output."""
    q, _ = torch.linalg.qr(directions.t().double())                          # [E, K] orthonormal
    return (weight.double() - (weight.double() @ q) @ q.t()).to(weight.dtype)


def widen_generator(G, c_dim, offset=0, exact=True):
    """G with ``c_dim`` classes, its own at ``offset``. ``exact``: every class computes G's output
    (distinct embeddings, differences projected out of fc0's label columns); else only G's own
    class does, and the others start as perturbations of it (the cocktail's choice: measured
    to separate classes faster, BENCHMARKS.md issue 16)."""
    if G.c_dim == c_dim:
        return G
    new = _rebuild(G, c_dim)
    _copy_matching(G, new)
    if G.c_dim == 0:
        z = G.z_dim
        fc0 = new.mapping.fc0
        with torch.no_grad():
            fc0.weight[:, :z] = G.mapping.fc0.weight * math.sqrt(fc0.weight.shape[1] / G.mapping.fc0.weight.shape[1])
            y = new.mapping.embed(torch.eye(c_dim, device=fc0.weight.device))
            y = y * (y.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()       # the mapping's normalisation
            if exact and c_dim - 1 <= y.shape[1]:
                # Distinct class embeddings, their differences in the null space of the label columns.
                others = [k for k in range(c_dim) if k != offset]
                fc0.weight[:, z:] = _without(fc0.weight[:, z:], y[others] - y[offset:offset + 1])
            elif exact:
                _one_embedding(new.mapping.embed)
                y = y[:1].expand_as(y)
                offset = 0
            label_part = y[offset:offset + 1] @ (fc0.weight[:, z:] * fc0.weight_gain).t()
            fc0.bias.sub_(label_part[0] / fc0.bias_gain)
    else:
        _widen_embedding(G.mapping.embed, new.mapping.embed, offset, perturb=not exact)
    return new


def widen_discriminator(D, c_dim, offset=0, exact=True):
    """D with ``c_dim`` classes, its own at ``offset``; ``exact`` as for widen_generator: every
    class's logit is D's (else only its own class's)."""
    if D.c_dim == c_dim:
        return D
    new = _rebuild(D, c_dim)
    _copy_matching(D, new)
    if D.c_dim == 0:
        cmap_dim = new.b4.cmap_dim                # (the host keeps it on the epilogue only)
        with torch.no_grad():
            m = new.mapping(None, torch.eye(c_dim, device=new.b4.out.weight.device)).double()    # [C, cmap_dim]
            if exact and c_dim > cmap_dim:
                _one_embedding(new.mapping.embed)
                m = m[:1]
            elif not exact:
                m = m[offset:offset + 1]
            # u with u . m_k = sqrt(cmap_dim) for every class k kept (least norm): their logit is D's.
            u = torch.linalg.pinv(m) @ torch.full([len(m)], math.sqrt(cmap_dim), dtype=m.dtype, device=m.device)
            new.b4.out.weight.copy_(D.b4.out.weight * u.float()[:, None])
            new.b4.out.bias.copy_(D.b4.out.bias * u.float())
    else:
        _widen_embedding(D.mapping.embed, new.mapping.embed, offset, perturb=not exact)
    return new
