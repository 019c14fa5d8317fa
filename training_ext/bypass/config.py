"""The bypass method's options, declared once (see training_ext/common/config.py). Defaults that
depend on the mode are given per mode (``PerKey``): 'latent' (--bypass w|wplus) and 'partial'
(--bypass RES). A flag given as 0 is 0 (``--encoder-kimg 0``: no encoder training, ``--kimg 0``:
the bypass GAN does not train) or a one-line error (``--batch 0``, ``--tick 0``, ``--snap 0``).
"""
import dataclasses

import click

from training_ext.common.config import MethodConfig, PerKey, option

from .latent_gan import LOSSES


@dataclasses.dataclass(frozen=True)
class BypassConfig(MethodConfig):
    bypass: str = option(None, 'Mind2Mind transfer of the --resume pickle to --data: train a latent GAN in W (w) '
                         'or W+ (wplus) behind the frozen synthesis, or (a resolution) G and D up to RES behind '
                         'their frozen upper blocks', flag='--bypass', metavar='w|wplus|RES')
    bypass_res: int = option(None, 'Same as --bypass RES', flag='--bypass-res', type=int, metavar='RES')
    encoder_kimg: float = option(20, 'Generated kimg to train the encoder (or adapter) on', flag='--encoder-kimg',
                                 type=float, metavar='KIMG')
    latent_loss: str = option(PerKey(latent='wgangp', partial='ns'), 'Loss of the bypass GAN (partial: +R1, --gamma)',
                              flag='--latent-loss', type=click.Choice(LOSSES))
    # Host flags with the bypass GAN's own defaults.
    batch: int = option(PerKey(latent=128, partial=32), 'batch of the bypass GAN')
    kimg: float = option(PerKey(latent=2000, partial=100), 'kimg of the bypass GAN')
    tick_fraction: float = option(1 / 20, '--tick default: this fraction of --kimg (at least 1 image)')
    snap: int = option(5, 'ticks between snapshots of the bypass GAN')
    gamma: float = option(1.0, 'R1 (partial) / gradient penalty (latent) weight')
