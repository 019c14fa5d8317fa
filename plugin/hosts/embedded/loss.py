"""StyleGAN2 loss with the host's constructor and ``accumulate_gradients`` seam.

Non-saturating logistic loss; lazy R1 on reals (phase Dreg), path-length regularisation on
half a batch (phase Greg), style mixing. The loss sees the generator only as ``G_mapping``
and ``G_synthesis`` (as the host's loop constructs it), so a wrapper that exposes those two
can stand in for G.

It trains both hosts' generators, calling each the way its own repo's loss does:

* stylegan2-ada (a mapping that takes ``skip_w_avg_update``): ``w_avg`` follows every mapping
  call in training mode, except the style-mixing one (``skip_w_avg_update=True``);
* the stylegan3 repo's families (``networks_stylegan2``, ``networks_stylegan3``: a mapping that
  takes ``update_emas`` only): the running means (the mapping's ``w_avg``, the alias-free
  layers' ``magnitude_ema``) move only in the generator pass of phase Dmain/Dboth
  (``update_emas=True``), as the stylegan3 repo's loss does; never in Gmain/Greg, never in
  the style-mixing mapping call.

From the stylegan3 repo's loss, ``blur_init_sigma``/``blur_fade_kimg`` (a Gaussian blur of
every image D sees, real and fake, fading out linearly over the first kimg; it needs the
loop's ``cur_nimg``) are implemented; ``pl_no_weight_grad`` (a speed-up that drops the conv
weights' part of the path-length gradient) is not: given True, the loss says so once and
computes the full gradient.
"""

import numpy as np
import torch
import torch.nn.functional as F

from plugin.layouts import takes_update_emas
from torch_utils_ext.ops.upfirdn2d import upfirdn2d

from .training_stats import report

PHASES = ('Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg', 'Dboth')


class StyleGAN2Loss:
    def __init__(self,
        device,                     # Torch device of the path-length running mean (the loop's device).
        G_mapping,                  # G's mapping network: G_mapping(z, c) -> ws.
        G_synthesis,                # G's synthesis network: G_synthesis(ws) -> images.
        D,                          # The discriminator: D(img, c) -> logits.
        augment_pipe      = None,   # Applied to every image D sees, after the blur; None = no augmentation.
        style_mixing_prob = 0.9,    # Per G call (whole batch): chance of a 2nd z's ws from a random layer on; 0 = none.
        r1_gamma          = 10,     # R1 weight: gamma/2 * |dD(real)/dreal|^2 in Dreg/Dboth; 0 = no R1.
        pl_batch_shrink   = 2,      # The path-length pass uses batch // this samples (at least 1).
        pl_decay          = 0.01,   # Lerp rate of the path-length running mean per pass; 0 = it stays put.
        pl_weight         = 2,      # Weight of the path-length penalty in Greg/Gboth; 0 = no penalty.
        blur_init_sigma   = 0,      # Sigma (px) of the Gaussian blur of D's inputs at kimg 0; 0 = no blur.
        blur_fade_kimg    = 0,      # Kimg over which that blur fades linearly to none; 0 = no blur.
        pl_no_weight_grad = False,  # Accepted (stylegan3 repo's kwargs), not implemented: True prints a note.
    ):
        self.device = device
        self.G_mapping = G_mapping
        self.G_synthesis = G_synthesis
        self.D = D
        self.augment_pipe = augment_pipe
        self.style_mixing_prob = style_mixing_prob
        self.r1_gamma = r1_gamma
        self.pl_batch_shrink = pl_batch_shrink
        self.pl_decay = pl_decay
        self.pl_weight = pl_weight
        self.pl_mean = torch.zeros([], device=device)   # running mean of path lengths (restored on resume)
        self.blur_init_sigma = blur_init_sigma          # sigma (px) of the blur of D's inputs at kimg 0; 0 = none
        self.blur_fade_kimg = blur_fade_kimg            # kimg over which that blur fades to none; 0 = no blur
        self.pl_no_weight_grad = pl_no_weight_grad      # accepted, not implemented (note below)
        if pl_no_weight_grad:
            print('note: pl_no_weight_grad=True is not implemented by the embedded loss; the path-length '
                  'gradient includes the conv weights\' part (as in stylegan2-ada)', flush=True)
        # The stylegan3 repo's families: running means move only on update_emas=True (see above).
        self.update_emas = takes_update_emas(G_mapping)

    def run_G(self, z, c, sync=True, update_emas=False):
        """update_emas: the stylegan3 families' running means move in this call (Dmain only);
        stylegan2-ada's mapping updates w_avg by itself in training mode."""
        emas = dict(update_emas=True) if update_emas and self.update_emas else {}
        ws = self.G_mapping(z, c, **emas)
        if self.style_mixing_prob > 0:
            # Past a random cutoff layer, use the ws of a second latent (regularises layer-wise styles).
            cutoff = torch.empty([], dtype=torch.int64, device=ws.device).random_(1, ws.shape[1])
            cutoff = torch.where(torch.rand([], device=ws.device) < self.style_mixing_prob, cutoff,
                                 torch.full_like(cutoff, ws.shape[1]))
            no_update = dict(update_emas=False) if self.update_emas else dict(skip_w_avg_update=True)
            mixed = self.G_mapping(torch.randn_like(z), c, **no_update)
            layer = torch.arange(ws.shape[1], device=ws.device).reshape(1, -1, 1)
            ws = torch.where(layer >= cutoff, mixed, ws)
        return self.G_synthesis(ws, **emas), ws

    def run_D(self, img, c, sync=True, blur_sigma=0):
        img = blur(img, blur_sigma)
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        return self.D(img, c)

    def blur_sigma(self, cur_nimg):
        """The stylegan3 repo's schedule: blur_init_sigma at kimg 0, linearly down to 0 at blur_fade_kimg."""
        if not (self.blur_fade_kimg > 0 and self.blur_init_sigma > 0):
            return 0
        if cur_nimg is None:
            raise ValueError('blur_fade_kimg needs the training progress: call accumulate_gradients(..., cur_nimg=N)')
        return max(1 - cur_nimg / (self.blur_fade_kimg * 1e3), 0) * self.blur_init_sigma

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain, cur_nimg=None):
        if phase not in PHASES:
            raise ValueError(f'unknown phase {phase!r}')
        blur_sigma = self.blur_sigma(cur_nimg)
        do_Gmain = phase in ('Gmain', 'Gboth')
        do_Dmain = phase in ('Dmain', 'Dboth')
        do_Gpl = phase in ('Greg', 'Gboth') and self.pl_weight != 0
        do_Dr1 = phase in ('Dreg', 'Dboth') and self.r1_gamma != 0

        if do_Gmain:
            gen_img, _ = self.run_G(gen_z, gen_c, sync=sync and not do_Gpl)
            gen_logits = self.run_D(gen_img, gen_c, sync=False, blur_sigma=blur_sigma)
            report('Loss/scores/fake', gen_logits)
            report('Loss/signs/fake', gen_logits.sign())
            loss = report('Loss/G/loss', F.softplus(-gen_logits))
            loss.mean().mul(gain).backward()

        if do_Gpl:
            n = max(gen_z.shape[0] // self.pl_batch_shrink, 1)
            gen_img, gen_ws = self.run_G(gen_z[:n], gen_c[:n], sync=sync)
            # Path length: |J^T y| for random image-space y, scaled to be resolution independent.
            pl_noise = torch.randn_like(gen_img) / np.sqrt(gen_img.shape[2] * gen_img.shape[3])
            pl_grads, = torch.autograd.grad(outputs=[(gen_img * pl_noise).sum()], inputs=[gen_ws], create_graph=True,
                                            only_inputs=True)
            pl_lengths = pl_grads.square().sum(2).mean(1).sqrt()
            pl_mean = self.pl_mean.lerp(pl_lengths.mean(), self.pl_decay)
            self.pl_mean.copy_(pl_mean.detach())
            penalty = report('Loss/pl_penalty', (pl_lengths - pl_mean).square())
            loss = report('Loss/G/reg', penalty * self.pl_weight)
            # "gen_img * 0" keeps every synthesis parameter in the graph (no unused parameters).
            (gen_img[:, 0, 0, 0] * 0 + loss).mean().mul(gain).backward()

        loss_Dgen = 0
        if do_Dmain:
            gen_img, _ = self.run_G(gen_z, gen_c, sync=False, update_emas=True)
            gen_logits = self.run_D(gen_img, gen_c, sync=False, blur_sigma=blur_sigma)
            report('Loss/scores/fake', gen_logits)
            report('Loss/signs/fake', gen_logits.sign())
            loss_Dgen = F.softplus(gen_logits)
            loss_Dgen.mean().mul(gain).backward()

        if do_Dmain or do_Dr1:
            real = real_img.detach().requires_grad_(do_Dr1)
            real_logits = self.run_D(real, real_c, sync=sync, blur_sigma=blur_sigma)
            report('Loss/scores/real', real_logits)
            report('Loss/signs/real', real_logits.sign())
            loss_Dreal = 0
            if do_Dmain:
                loss_Dreal = F.softplus(-real_logits)
                report('Loss/D/loss', loss_Dgen + loss_Dreal)
            loss_Dr1 = 0
            if do_Dr1:
                r1_grads, = torch.autograd.grad(outputs=[real_logits.sum()], inputs=[real], create_graph=True,
                                                only_inputs=True)
                penalty = report('Loss/r1_penalty', r1_grads.square().sum([1, 2, 3]))
                loss_Dr1 = report('Loss/D/reg', penalty * (self.r1_gamma / 2))
            (real_logits * 0 + loss_Dreal + loss_Dr1).mean().mul(gain).backward()



def blur(img, sigma):
    """The stylegan3 repo's blur of D's inputs: a separable Gaussian, 2**(-(x/sigma)**2) over
    |x| <= floor(3 sigma), normalised, same-size output. sigma 0 (or under 1/3): unchanged."""
    size = int(np.floor(sigma * 3))
    if size <= 0:
        return img
    f = torch.arange(-size, size + 1, device=img.device, dtype=torch.float32).div(sigma).square().neg().exp2()
    return upfirdn2d(img, f / f.sum(), padding=size)
