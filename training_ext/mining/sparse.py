"""MineGAN++ sparse subnetwork selection: which channels of the synthesis layers may train.

Scoring (ours; the paper has no public code): after mining, each output channel of every
synthesis convolution (conv0/conv1 of every block) is scored by the diagonal Fisher
information of the adversarial loss, i.e. the squared gradient of the generator's loss
``softplus(-D(G(z)))`` with respect to that channel's weights and bias, summed over the
channel's elements and averaged over ``batches`` batches of generated images. The
discriminator has by then learnt the target, so large scores mark the channels whose change
moves the samples towards it. In every layer the top ``fraction`` of channels (at least one)
stays trainable; the rest, and every other generator parameter, are frozen for the whole
fine-tuning by gradient masks.
"""
import torch
import torch.nn.functional as F

from .miner import channel_params


def channel_scores(G, D, batches=8, batch_size=16, seed=0):
    device = next(G.parameters()).device
    params = channel_params(G)
    flags = {n: p.requires_grad for n, p in params.items()}
    scores = {n: torch.zeros(p.shape[0], dtype=torch.float64, device=device) for n, p in params.items()}
    gen = torch.Generator(device='cpu').manual_seed(seed)
    try:
        for p in params.values():
            p.requires_grad_(True)
        # With several sources, every generator is scored on its own samples.
        n_gen = len(G.mapping.mappings) if getattr(G.mapping, 'packed', False) else 1
        selects = list(range(n_gen)) if n_gen > 1 else [None]
        with torch.enable_grad():
            for _ in range(batches):
                for select in selects:
                    z = torch.randn([batch_size, G.z_dim], generator=gen).to(device)
                    c = torch.zeros([batch_size, G.c_dim], device=device)
                    img = G(z, c) if select is None else G(z, c, select=select)
                    loss = F.softplus(-D(img, c)).mean()
                    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
                    for (name, _), g in zip(params.items(), grads):
                        if g is not None:
                            scores[name] += g.detach().double().square().flatten(1).sum(1) if g.ndim > 1 else \
                                g.detach().double().square()
    finally:
        for n, p in params.items():
            p.requires_grad_(flags[n])
    return {n: s / batches for n, s in scores.items()}


def layer_of(name):
    return name.rsplit('.', 1)[0]


def select_channels(scores, fraction):
    """Masks (1 = trainable) per channel parameter: the top ``fraction`` channels per layer."""
    if not 0 < fraction <= 1:
        raise ValueError(f'--sparse must be in (0, 1], got {fraction}')
    per_layer = {}
    for name, s in scores.items():
        per_layer[layer_of(name)] = per_layer.get(layer_of(name), 0) + s
    keep = {}
    for layer, s in per_layer.items():
        k = max(1, int(round(fraction * s.numel())))
        mask = torch.zeros_like(s, dtype=torch.float32)
        mask[s.topk(k).indices] = 1
        keep[layer] = mask
    return {name: keep[layer_of(name)] for name in scores}
