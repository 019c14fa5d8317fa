"""What the hyper-modulation tests share (StyleGAN2 and alias-free sources): one-hot labels,
a few G steps through the method's loss on chosen classes, a class's images."""
import torch


def one_hot(classes, num_classes):
    return torch.nn.functional.one_hot(torch.as_tensor(classes), num_classes).float()


def g_steps(G, D, classes, steps=3, seed=0):
    """``steps`` Adam steps of G through HypermodLoss (Gmain) on samples of ``classes`` only."""
    from training_ext.hypermod.loss import HypermodLoss
    G, D = G.train().requires_grad_(True), D.train().requires_grad_(True)      # as the host loop does
    opt = torch.optim.Adam(G.parameters(), lr=0.0025, betas=(0.0, 0.99), eps=1e-8)
    loss = HypermodLoss('cpu', G.mapping, G.synthesis, D, contrastive_weight=0.0)
    torch.manual_seed(seed)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss.accumulate_gradients('Gmain', None, None, torch.randn(8, G.z_dim),
                                  one_hot([classes[i % len(classes)] for i in range(8)], G.num_classes), True, 1.0)
        opt.step()
    return G.eval()


def class_images(G, z, k):
    """G's images of class ``k`` for latents z (constant noise), without gradients."""
    with torch.no_grad():
        return G(z, one_hot([k] * z.shape[0], G.num_classes), noise_mode='const')


def frozen_state(G):
    """Copies of the hyper generator G's tensors that training must leave as they are: all but
    the task network's and the heads' (and the mapping's running mean w_avg)."""
    trainable = {n for n, _ in G.named_parameters() if '.task.' in n or any(f'.{h}.' in n for h in
                                                                             ('gamma', 'beta', 'dbias'))}
    return {n: t.clone() for n, t in G.state_dict().items() if n not in trainable and not n.endswith('w_avg')}


def steps_on_new_classes(G, D, source):
    """Three G steps (g_steps) on classes 1 and 2 only, from G, measured on 4 fixed latents:
    (G after, the latents z, the source's images ref of z, ``kept`` = max |class 0 after -
    before|, ``moved`` = [mean |class k after - ref| for k = 1, 2])."""
    z = torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = source.eval()(z, None, noise_mode='const')
    before = class_images(G.eval(), z, 0)
    G = g_steps(G, D, classes=[1, 2])
    kept = float((class_images(G, z, 0) - before).abs().max())
    moved = [float((class_images(G, z, k) - ref).abs().mean()) for k in (1, 2)]
    return G, z, ref, kept, moved
