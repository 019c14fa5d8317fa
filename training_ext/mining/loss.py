"""The StyleGAN2 loss plus the selector's objective for mining several generators.

In each Gmain step the selector (a head on the input noise) is trained by cross-entropy
towards, per sample, the generator whose image the discriminator scores highest: the
pseudo-label of the MineGAN prototype. Selection and pseudo-label frequencies are
reported as ``Mining/select/j`` and ``Mining/pseudo/j`` (stats.jsonl, the log).
"""
import torch
import torch.nn.functional as F

from plugin.hosts import report
from training_ext.common.loss_wrapper import WrappedLoss, backward_synced, unwrap

from .config import MiningConfig


class MiningLoss(WrappedLoss):
    def __init__(self,
        device,                  # Training device (the host's loop passes it).
        G_mapping       = None,  # The trained G's mapping network (a MinedMapping holds the selector).
        G_synthesis     = None,  # The trained G's synthesis network.
        D               = None,  # The trained discriminator.
        augment_pipe    = None,  # The loop's augment pipe; None = no augmentation.
        selector_weight = MiningConfig.default('selector_weight'),  # Selector loss weight; 0 = untrained.
        **loss_kwargs,           # For WrappedLoss (G from a stylegan3 loop) and the host's StyleGAN2Loss.
    ):
        super().__init__(device, G_mapping, G_synthesis, D, augment_pipe, **loss_kwargs)
        self.selector_weight = selector_weight

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync=True, gain=1, cur_nimg=None):
        super().accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, sync=sync, gain=gain, cur_nimg=cur_nimg)
        # The networks may come DDP-wrapped (a real host's multi-process loop): the selector is
        # an attribute of the wrapped MinedMapping, not of the wrapper.
        selector = getattr(unwrap(self.G_mapping), 'selector', None)
        if phase in ('Gmain', 'Gboth') and selector is not None and self.selector_weight > 0:
            self.train_selector(selector, gen_z, gen_c, gain)

    def train_selector(self, selector, z, c, gain):
        mapping, synthesis, D = unwrap(self.G_mapping), unwrap(self.G_synthesis), unwrap(self.D)
        n = len(mapping.mappings)
        with torch.no_grad():
            scores = torch.cat([D(synthesis(mapping(z, c, select=j)), c) for j in range(n)], 1)
            target = scores.argmax(1)
        logits = selector(z)
        loss = F.cross_entropy(logits, target)
        report('Mining/selector_loss', loss)
        probs = logits.detach().softmax(1)
        for j in range(n):
            report(f'Mining/select/{j}', probs[:, j])
            report(f'Mining/pseudo/{j}', (target == j).float())
        backward_synced(loss.mul(self.selector_weight * gain), [self.G_mapping])
