"""train_cocktail.py flags of the hyper-modulation method, and its entry point.

``--hyper`` selects the method; ``--resume`` names what it starts from: the unconditional
source pickle (a new pipeline in --outdir), or a hyper-modulation pipeline directory (holding
pipeline_state.json) to continue, whose source is the one it was started with.
"""

import click

from plugin import launch
from training_ext.common.stages import resume_source_or_pipeline, source_names

from .defaults import DEFAULT_SELF_INIT_KIMG, DEFAULTS
from .networks import INITS
from .pipeline import HypermodError, HypermodPipeline

SELECTOR = 'hyper'
ERROR = HypermodError
FLAG_NAMES = ('hyper', 'hyper_rank', 'hyper_init', 'self_init_kimg', 'contrastive_weight', 'hyper_anchor')
FLAGS = [
    click.option('--hyper', is_flag=True, default=False,
                 help='Hyper-modulation: make the unconditional --resume PKL class-conditional on --data (--cond 1)'),
    click.option('--hyper-rank', type=int, metavar='INT', help=f'Rank of the gamma/beta heads; 0 = full [default: {DEFAULTS["hyper_rank"]}]'),
    click.option('--hyper-init', type=click.Choice(list(INITS)),
                 help='source: heads start reproducing the source; reference: the paper\'s '
                      f'[default: {DEFAULTS["hyper_init"]}]'),
    click.option('--self-init-kimg', type=float, metavar='KIMG',
                 help='kimg of self-initialisation (no real data) [default: '
                      + ', '.join(f'{k:g} with --hyper-init {i}' for i, k in DEFAULT_SELF_INIT_KIMG.items()) + ']'),
    click.option('--contrastive-weight', type=float, metavar='FLOAT',
                 help=f'Weight of the Barlow Twins term in D\'s loss [default: {DEFAULTS["contrastive_weight"]:g}]'),
    click.option('--hyper-anchor', type=int, metavar='CLASS',
                 help='The class that is the source\'s own domain: it stays exactly the source (no anchor by '
                      'default)'),
]


def resolve_resume(flags):
    """(source pickle, pipeline directory or None to start a new one) from --resume."""
    source, directory, _ = resume_source_or_pipeline(
        flags.get('resume'), HypermodPipeline.method, HypermodError,
        '--hyper needs --resume SOURCE.pkl (the unconditional generator to start from), or '
        '--resume PIPELINE_DIR to continue a hyper-modulation pipeline')
    return source, directory


def run(flags, log=print):
    """Run (or continue, with --resume PIPELINE_DIR) a hyper-modulation pipeline; returns the final pickle."""
    if flags.get('baseline') not in (None, 'none'):
        raise HypermodError('--baseline is not available with --hyper')
    source, directory = resolve_resume(flags)
    if directory is None:
        target = source_names([str(flags.get('data') or 'target').rstrip('/')])
        rank = flags.get('hyper_rank')
        directory = launch.next_run_dir(flags['outdir'], f'hyper-{source_names([source])}-to-{target}'
                                        + (f'-rank{rank}' if rank is not None else ''))
    log(f'Hyper-modulation pipeline: {directory}')
    return HypermodPipeline(flags, directory, source, log=log).run()
