"""StyleGAN2 loss with the host's constructor and ``accumulate_gradients`` seam.

Non-saturating logistic loss; lazy R1 on reals (phase Dreg), path-length regularisation on
half a batch (phase Greg), style mixing. The loss sees the generator only as ``G_mapping``
and ``G_synthesis`` (as the host's loop constructs it), so a wrapper that exposes those two
can stand in for G.
"""
import numpy as np
import torch
import torch.nn.functional as F

from .training_stats import report

PHASES = ('Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg', 'Dboth')


class StyleGAN2Loss:
    def __init__(self, device, G_mapping, G_synthesis, D, augment_pipe=None, style_mixing_prob=0.9, r1_gamma=10,
                 pl_batch_shrink=2, pl_decay=0.01, pl_weight=2):
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

    def run_G(self, z, c, sync=True):
        ws = self.G_mapping(z, c)
        if self.style_mixing_prob > 0:
            # Past a random cutoff layer, use the ws of a second latent (regularises layer-wise styles).
            cutoff = torch.empty([], dtype=torch.int64, device=ws.device).random_(1, ws.shape[1])
            cutoff = torch.where(torch.rand([], device=ws.device) < self.style_mixing_prob, cutoff,
                                 torch.full_like(cutoff, ws.shape[1]))
            mixed = self.G_mapping(torch.randn_like(z), c, skip_w_avg_update=True)
            layer = torch.arange(ws.shape[1], device=ws.device).reshape(1, -1, 1)
            ws = torch.where(layer >= cutoff, mixed, ws)
        return self.G_synthesis(ws), ws

    def run_D(self, img, c, sync=True):
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        return self.D(img, c)

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        if phase not in PHASES:
            raise ValueError(f'unknown phase {phase!r}')
        do_Gmain = phase in ('Gmain', 'Gboth')
        do_Dmain = phase in ('Dmain', 'Dboth')
        do_Gpl = phase in ('Greg', 'Gboth') and self.pl_weight != 0
        do_Dr1 = phase in ('Dreg', 'Dboth') and self.r1_gamma != 0

        if do_Gmain:
            gen_img, _ = self.run_G(gen_z, gen_c, sync=sync and not do_Gpl)
            gen_logits = self.run_D(gen_img, gen_c, sync=False)
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
            gen_img, _ = self.run_G(gen_z, gen_c, sync=False)
            gen_logits = self.run_D(gen_img, gen_c, sync=False)
            report('Loss/scores/fake', gen_logits)
            report('Loss/signs/fake', gen_logits.sign())
            loss_Dgen = F.softplus(gen_logits)
            loss_Dgen.mean().mul(gain).backward()

        if do_Dmain or do_Dr1:
            real = real_img.detach().requires_grad_(do_Dr1)
            real_logits = self.run_D(real, real_c, sync=sync)
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
