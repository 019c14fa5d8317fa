"""train_cocktail.py flags of the mining method (MineGAN / MineGAN++), and its entry point."""
import click

from plugin.cli_flags import CommaList
from training_ext.common.stages import pipeline_dir, source_names

from .pipeline import MiningError, MiningPipeline

SELECTOR = 'mine'
FLAG_NAMES = ('mine', 'mine_kimg', 'sparse', 'mine_space', 'miner_init', 'selector_weight')
FLAGS = [
    click.option('--mine', type=CommaList(), metavar='PKLS',
                 help='Mine these source pickles (comma-separated) for the target set --data'),
    click.option('--mine-kimg', type=int, metavar='INT', help='kimg of stage 1 (miner and D only) [default: 100]'),
    click.option('--sparse', type=float, metavar='FRACTION',
                 help='MineGAN++: fine-tune only this fraction of channels per synthesis layer'),
    click.option('--mine-space', type=click.Choice(['z', 'w']), help='Where the miner acts [default: z]'),
    click.option('--miner-init', type=click.Choice(['identity', 'default']),
                 help='identity: start at the source distribution; default: the reference MLP [default: identity]'),
    click.option('--selector-weight', type=float, help='Weight of the selector loss (several sources) [default: 1]'),
]


def run(flags, log=print):
    """Run (or continue, with --resume PIPELINE_DIR) a mining pipeline; returns the final pickle."""
    target = source_names([str(flags.get('data') or 'target').rstrip('/')])
    tag = f"-{flags['baseline']}" if flags.get('baseline') not in (None, 'none') else (
        f"-sparse{flags['sparse']:g}" if flags.get('sparse') else '')
    directory = pipeline_dir(flags, f'mine-{source_names(flags["mine"])}-to-{target}{tag}', MiningError)
    log(f'Mining pipeline: {directory}')
    return MiningPipeline(flags, directory, log=log).run()
