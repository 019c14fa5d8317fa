"""train_cocktail.py flags of the bypass method (Mind2Mind), and its entry point."""
import os

import click

from training_ext.common.stages import pipeline_dir, read_pipeline_state, resume_source_or_pipeline, source_names

from .defaults import DEFAULTS
from .latent_gan import LOSSES
from .pipeline import BypassError, BypassPipeline, parse_mode

SELECTOR = 'bypass'
ERROR = BypassError
FLAG_NAMES = ('bypass', 'bypass_res', 'encoder_kimg', 'latent_loss')
FLAGS = [
    click.option('--bypass', metavar='w|wplus|RES',
                 help='Mind2Mind transfer of the --resume pickle to --data: train a latent GAN in W (w) or W+ '
                      '(wplus) behind the frozen synthesis, or (a resolution) G and D up to RES behind their '
                      'frozen upper blocks'),
    click.option('--bypass-res', type=int, metavar='RES', help='Same as --bypass RES'),
    click.option('--encoder-kimg', type=float, metavar='KIMG',
                 help=f'Generated kimg to train the encoder (or adapter) on [default: {DEFAULTS["encoder_kimg"]}]'),
    click.option('--latent-loss', type=click.Choice(LOSSES),
                 help='Loss of the bypass GAN [default: {latent} for w/wplus, {partial} (+R1, --gamma) for RES]'
                      .format(**DEFAULTS['latent_loss'])),
]


def selected(flags):
    """--bypass/--bypass-res, or --resume naming a bypass pipeline's directory."""
    if flags.get('bypass') or flags.get('bypass_res') is not None:
        return True
    state = read_pipeline_state(flags.get('resume'))
    return state is not None and state.get('method') == BypassPipeline.method


def run(flags, log=print):
    """Run a bypass pipeline. ``--resume`` is the source pickle, or an interrupted pipeline's
    directory to continue (its source and mode are read from it)."""
    if flags.get('bypass_res') is not None:
        if flags.get('bypass') not in (None, str(flags['bypass_res'])):
            raise BypassError('give either --bypass or --bypass-res')
        flags['bypass'] = str(flags['bypass_res'])
    source, directory, state = resume_source_or_pipeline(flags.get('resume'), BypassPipeline.method, BypassError,
                                                         '--bypass needs the source network: --resume PKL')
    if state is not None:
        identity = state.get('identity') or {}
        flags['bypass'] = flags.get('bypass') or identity.get('bypass')
        flags['data'] = flags.get('data') or identity.get('data')
    else:
        source = os.path.abspath(source)
        mode = parse_mode(flags.get('bypass'))
        target = source_names([str(flags.get('data') or 'target').rstrip('/')])
        directory = pipeline_dir(dict(flags, resume=None), f'bypass-{mode}-{source_names([source])}-to-{target}', BypassError)
    log(f'Bypass pipeline: {directory}')
    return BypassPipeline(flags, directory, source, log=log).run()
