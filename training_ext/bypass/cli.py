"""train_cocktail.py flags of the bypass method (Mind2Mind), and its entry point."""
import os

from training_ext.common.stages import pipeline_dir, read_pipeline_state, resume_source_or_pipeline, source_names

from .config import BypassConfig
from .pipeline import BypassError, BypassPipeline, parse_mode

SELECTOR = 'bypass'
ERROR = BypassError
FLAG_NAMES = BypassConfig.flag_names()
FLAGS = BypassConfig.click_options()


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
