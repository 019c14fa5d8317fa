"""train_cocktail.py flags of the mining method (MineGAN / MineGAN++), and its entry point."""
import click

from plugin.cli_flags import CommaList
from training_ext.common.stages import pipeline_dir, source_names

from .defaults import DEFAULTS
from .pipeline import MiningError, MiningPipeline

SELECTOR = 'mine'
ERROR = MiningError
FLAG_NAMES = ('mine', 'mine_kimg', 'sparse', 'mine_space', 'miner_init', 'selector_weight')
FLAGS = [
    click.option('--mine', type=CommaList(), metavar='PKLS',
                 help='Mine these source pickles (comma-separated) for the target set --data'),
    click.option('--mine-kimg', type=float, metavar='KIMG', help=f'kimg of stage 1 (miner and D only); 0: none [default: {DEFAULTS["mine_kimg"]}]'),
    click.option('--sparse', type=float, metavar='FRACTION',
                 help='MineGAN++: fine-tune only this fraction of channels per synthesis layer'),
    click.option('--mine-space', type=click.Choice(['z', 'w']), help=f'Where the miner acts [default: {DEFAULTS["mine_space"]}]'),
    click.option('--miner-init', type=click.Choice(['identity', 'default']),
                 help='identity: start at the source distribution; default: the reference MLP '
                      f'[default: {DEFAULTS["miner_init"]}]'),
    click.option('--selector-weight', type=float, help=f'Weight of the selector loss (several sources); 0: untrained '
                      f'[default: {DEFAULTS["selector_weight"]:g}]'),
]


def run(flags, log=print):
    """Run (or continue, with --resume PIPELINE_DIR) a mining pipeline; returns the final pickle."""
    target = source_names([str(flags.get('data') or 'target').rstrip('/')])
    tag = f"-{flags['baseline']}" if flags.get('baseline') not in (None, 'none') else (
        f"-sparse{flags['sparse']:g}" if flags.get('sparse') is not None else '')
    directory = pipeline_dir(flags, f'mine-{source_names(flags["mine"])}-to-{target}{tag}', MiningError)
    log(f'Mining pipeline: {directory}')
    return MiningPipeline(flags, directory, log=log).run()
