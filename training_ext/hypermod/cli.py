"""train_cocktail.py flags of the hyper-modulation method, and its entry point.

``--hyper`` selects the method; ``--resume`` names what it starts from: the unconditional
source pickle (a new pipeline in --outdir), or a hyper-modulation pipeline directory (holding
pipeline_state.json) to continue, whose source is the one it was started with.
"""

from plugin import launch
from training_ext.common.stages import resume_source_or_pipeline, source_names

from .config import HypermodConfig
from .pipeline import HypermodError, HypermodPipeline

SELECTOR = 'hyper'
ERROR = HypermodError
FLAG_NAMES = HypermodConfig.flag_names()
FLAGS = HypermodConfig.click_options()


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
