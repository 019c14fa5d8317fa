"""The mining method's options, declared once (see training_ext/common/config.py).

A flag given as 0 is 0: ``--mine-kimg 0`` skips the mining stage, ``--kimg 0`` the
fine-tuning stage, ``--selector-weight 0`` leaves the selector untrained (uniform choice).
"""
import dataclasses

import click

from plugin.cli_flags import CommaList
from training_ext.common.config import MethodConfig, option


@dataclasses.dataclass(frozen=True)
class MiningConfig(MethodConfig):
    mine: list = option(None, 'Mine these source pickles (comma-separated) for the target set --data',
                        flag='--mine', type=CommaList(), metavar='PKLS')
    mine_kimg: float = option(100, 'kimg of stage 1 (miner and D only); 0: none', flag='--mine-kimg', type=float,
                              metavar='KIMG')
    sparse: float = option(None, 'MineGAN++: fine-tune only this fraction of channels per synthesis layer',
                           flag='--sparse', type=float, metavar='FRACTION', default_help='every channel')
    mine_space: str = option('z', 'Where the miner acts', flag='--mine-space', type=click.Choice(['z', 'w']))
    miner_init: str = option('identity', 'identity: start at the source distribution; default: the reference MLP',
                             flag='--miner-init', type=click.Choice(['identity', 'default']))
    selector_weight: float = option(1.0, 'Weight of the selector loss (several sources); 0: untrained',
                                    flag='--selector-weight', type=float)
    # Host flags with mining's own default, and the shared --baseline.
    kimg: int = option(1000, 'stage 2 (or the baseline)')
    baseline: str = option('none', 'train this baseline instead of mining')
    baseline_freezed: int = option(4, '--baseline freezed without --freezed: Freeze-D of 4 layers')
