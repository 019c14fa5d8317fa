"""train_cocktail.py flags of the mining method (MineGAN / MineGAN++), and its entry point."""
import os

import click

from plugin.cli_flags import CommaList
from plugin.launch import next_run_dir
from training_ext.common.stages import STATE_FILE

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
    resume = flags.get('resume')
    if resume:
        if not os.path.isfile(os.path.join(resume, STATE_FILE)):
            raise MiningError(f'--resume {resume}: not a pipeline directory (no {STATE_FILE})')
        pipeline_dir = resume
    else:
        names = '-'.join(os.path.splitext(os.path.basename(p))[0] for p in flags['mine'])
        target = os.path.splitext(os.path.basename(str(flags.get('data') or 'target').rstrip('/')))[0]
        tag = f"-{flags['baseline']}" if flags.get('baseline') not in (None, 'none') else (
            f"-sparse{flags['sparse']:g}" if flags.get('sparse') else '')
        pipeline_dir = next_run_dir(flags['outdir'], f'mine-{names}-to-{target}{tag}')
    log(f'Mining pipeline: {pipeline_dir}')
    return MiningPipeline(flags, pipeline_dir, log=log).run()
