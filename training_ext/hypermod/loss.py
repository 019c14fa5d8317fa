"""Losses of the hyper-modulation method, as class_name seams of the host's training loop.

``SelfInitLoss``: self-initialisation without real data. In the G phase the hyper generator
(class label from the stage's LabelDataset) and the frozen source generator (from its pickle)
run on the same z with constant noise; the loss is the sum over synthesis blocks (StyleGAN2)
or layers (alias-free) of the mean L1 distance between their outputs (features and RGB). D
phases and regularisers do nothing.

``HypermodLoss``: the host's StyleGAN2 loss plus, in D's main phase only, a Barlow Twins term
on D's penultimate features of two augmented views of the real images (BatchNorm without
affine, off-diagonal weight 5e-3), weighted by ``contrastive_weight`` (config.py), and the
matching-aware term (``mismatch_loss``: real images under another class's label scored as
fakes), weighted by ``mismatch_weight``.
"""
import math
import warnings

import torch
import torch.nn.functional as F

from plugin.hosts import active_host, report
from plugin.pickles import load_network_pkl
from training_ext.common.loss_wrapper import WrappedLoss, backward_synced, generator_halves, unwrap

from .config import HypermodConfig


def stage_modules(synthesis_net):
    """The parts of a synthesis network whose outputs self-initialisation compares: the blocks
    of a StyleGAN2 ((features, image) each), the layers of an alias-free network (features)."""
    if hasattr(synthesis_net, 'block_resolutions'):
        return [getattr(synthesis_net, f'b{res}') for res in synthesis_net.block_resolutions]
    return [getattr(synthesis_net, name) for name in synthesis_net.layer_names]


def block_outputs(modules, run):
    """Call ``run()``; the output of every module of ``modules``, in call order. The hooks live
    only for this call (a hook left on a network would end up in its pickle)."""
    outputs = []
    handles = [m.register_forward_hook(lambda m, i, o: outputs.append(o)) for m in modules]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return outputs


def block_l1(a, b):
    """Sum over blocks of the mean absolute difference of their outputs (features and images)."""
    def tensors(output):                 # a StyleGAN2 block returns (features, image), a layer one tensor
        return (output,) if isinstance(output, torch.Tensor) else tuple(output)
    total = 0
    for oa, ob in zip(a, b):
        for ta, tb in zip(tensors(oa), tensors(ob)):
            total = total + (ta.float() - tb.float()).abs().mean()
    return total


def self_init_distance(mapping, synthesis, source, z, c):
    """The self-initialisation loss of a hyper generator (``mapping``, ``synthesis``) towards
    the frozen ``source`` generator for latents z and labels c: differentiable in the former."""
    mapping, synthesis = unwrap(mapping), unwrap(synthesis)     # DDP-wrapped in a multi-process host loop
    with torch.no_grad():
        target = block_outputs(stage_modules(source.synthesis),
                               lambda: source.synthesis(source.mapping(z, c[:, :0]), noise_mode='const'))
    hyper = block_outputs(stage_modules(synthesis.net), lambda: synthesis(mapping(z, c), noise_mode='const'))
    return block_l1(hyper, target)


class SelfInitLoss:
    def __init__(self,
        device,                 # Training device; the source generator is moved there.
        G_mapping      = None,  # The hyper generator's mapping (HyperMapping): trained.
        G_synthesis    = None,  # The hyper generator's synthesis (HyperSynthesis): trained.
        D              = None,  # The loop's discriminator; unused (D phases do nothing).
        augment_pipe   = None,  # The loop's augment pipe; unused.
        source         = None,  # Path of the source pickle (its frozen G_ema is the target); None raises.
        G              = None,  # The hyper generator whole, as the stylegan3 repo's loop passes it.
        **_host_loss_kwargs,    # The host loss's options (r1_gamma, ...); ignored.
    ):
        if not source:
            raise ValueError('SelfInitLoss needs the source pickle: source=PATH')
        self.G_mapping, self.G_synthesis = generator_halves(G_mapping, G_synthesis, G, type(self).__name__)
        self.pl_mean = torch.zeros([], device=device)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            self.source = load_network_pkl(source, host=active_host())['G_ema']
        self.source = self.source.eval().requires_grad_(False).to(device)

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync=True, gain=1, cur_nimg=None):
        if phase not in ('Gmain', 'Gboth'):
            return
        loss = self_init_distance(self.G_mapping, self.G_synthesis, self.source, gen_z, gen_c)
        report('Loss/G/loss', loss)
        report('Hypermod/self_init_l1', loss)
        backward_synced(loss.mul(gain), [self.G_mapping, self.G_synthesis])


# -- the contrastive term ---------------------------------------------------------------------------

def random_views(img):
    """An augmented view of images in [-1, 1] (new randomness per call): random resized crop
    and horizontal flip, colour jitter, greyscale, blur, solarize (the reference's set)."""
    n, dev = img.shape[0], img.device
    scale = torch.empty(n, device=dev).uniform_(0.6, 1.0).sqrt()
    shift = (1 - scale).unsqueeze(1) * torch.empty(n, 2, device=dev).uniform_(-1, 1)
    flip = torch.where(torch.rand(n, device=dev) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, :, 2] = scale * flip, scale, shift
    x = F.grid_sample(img, F.affine_grid(theta, list(img.shape), align_corners=False), mode='bilinear',
                      padding_mode='reflection', align_corners=False)

    def chance(p):
        return (torch.rand(n, 1, 1, 1, device=dev) < p).to(x.dtype)

    def factor(lo, hi):
        return torch.empty(n, 1, 1, 1, device=dev).uniform_(lo, hi)

    jitter = chance(0.8)
    jittered = (x + factor(-0.4, 0.4)) * factor(0.6, 1.4)                                  # brightness, contrast
    grey = jittered.mean(dim=1, keepdim=True)
    jittered = grey + (jittered - grey) * factor(0.6, 1.4)                                 # saturation
    x = torch.lerp(x, jittered, jitter)
    x = torch.lerp(x, x.mean(dim=1, keepdim=True).expand_as(x), chance(0.2))
    k = torch.tensor([1.0, 2.0, 1.0], device=dev)
    k = (k[:, None] * k[None, :] / 16).expand(x.shape[1], 1, 3, 3)
    x = torch.lerp(x, F.conv2d(F.pad(x, [1, 1, 1, 1], mode='reflect'), k, groups=x.shape[1]), chance(0.5))
    x = torch.lerp(x, torch.where(x > 0, -x, x), chance(0.2))
    return x.clamp(-1, 1)


def barlow_twins(f1, f2, offdiag_weight=5e-3):
    """Barlow Twins loss of two [N, F] feature batches (batch-normalised without affine)."""
    n = f1.shape[0]
    z1 = F.batch_norm(f1.float(), None, None, training=True)
    z2 = F.batch_norm(f2.float(), None, None, training=True)
    cc = z1.t() @ z2 / n
    on = (torch.diagonal(cc) - 1).square().sum()
    off = cc.square().sum() - torch.diagonal(cc).square().sum()
    return on + offdiag_weight * off


class HypermodLoss(WrappedLoss):
    def __init__(self,
        device,                     # Training device (for the inner StyleGAN2 loss).
        G_mapping          = None,  # G's mapping network (or G, from a stylegan3 loop: loss_kwargs).
        G_synthesis        = None,  # G's synthesis network.
        D                  = None,  # The discriminator; with contrastive_weight > 0 it needs features(img).
        augment_pipe       = None,  # Augments D's inputs, the mismatch term's reals too; None = no augmentation.
        contrastive_weight = HypermodConfig.default('contrastive_weight'),  # Barlow Twins weight (D main); 0 = off.
        mismatch_weight    = HypermodConfig.default('mismatch_weight'),     # Mismatch weight (D main); 0 = off.
        offdiag_weight     = 5e-3,  # Barlow Twins weight of the off-diagonal correlations; 0 = diagonal only.
        **loss_kwargs,              # For WrappedLoss: inner_class_name and the inner loss's options (r1_gamma, ...).
    ):
        super().__init__(device, G_mapping, G_synthesis, D, augment_pipe, **loss_kwargs)
        if contrastive_weight and not hasattr(unwrap(self.D), 'features'):
            raise ValueError('the contrastive term needs a discriminator with features(img) (HyperDiscriminator)')
        if not (contrastive_weight >= 0 and math.isfinite(contrastive_weight)):
            raise ValueError(f'contrastive weight must be >= 0, got {contrastive_weight}')
        if not (mismatch_weight >= 0 and math.isfinite(mismatch_weight)):
            raise ValueError(f'mismatch weight must be >= 0, got {mismatch_weight}')
        self.contrastive_weight, self.offdiag_weight = contrastive_weight, offdiag_weight
        self.mismatch_weight = mismatch_weight

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync=True, gain=1, cur_nimg=None):
        super().accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, sync=sync, gain=gain, cur_nimg=cur_nimg)
        if phase in ('Dmain', 'Dboth') and self.contrastive_weight > 0 and real_img.shape[0] > 1:
            real = real_img.detach()
            D = unwrap(self.D)                  # DDP-wrapped in a multi-process host loop
            loss = barlow_twins(D.features(random_views(real)), D.features(random_views(real)), self.offdiag_weight)
            report('Hypermod/contrastive', loss)
            backward_synced(loss.mul(self.contrastive_weight * gain), [self.D])
        if phase in ('Dmain', 'Dboth') and self.mismatch_weight > 0 and real_c is not None and real_c.shape[1] > 1:
            loss = mismatch_loss(unwrap(self.D), real_img.detach(), real_c, self.augment_pipe)
            report('Hypermod/mismatch', loss)
            backward_synced(loss.mul(self.mismatch_weight * gain), [self.D])


def wrong_labels(c):
    """One-hot labels of another class than c's (argmax), drawn uniformly among the others."""
    k = c.shape[1]
    shift = torch.randint(1, k, [c.shape[0]], device=c.device)
    return F.one_hot((c.argmax(dim=1) + shift) % k, k).to(c.dtype)


def mismatch_loss(D, real_img, real_c, augment_pipe=None):
    """The matching-aware term (a real image under another class's label is a fake): D's
    per-class scores must tell the classes' domains apart, not only real from generated.
    Without it D's class rows learn only "real vs this class's fakes", and a class whose
    generator draws another target domain passes (measured: class 'stripes' drawing rings)."""
    img = real_img if augment_pipe is None else augment_pipe(real_img)
    return F.softplus(D(img, wrong_labels(real_c))).mean()
