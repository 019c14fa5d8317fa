"""train_cocktail.py flags of the mining method (MineGAN / MineGAN++), and its entry point."""
from training_ext.common.stages import pipeline_dir, source_names

from .config import MiningConfig
from .pipeline import MiningError, MiningPipeline

SELECTOR = 'mine'
ERROR = MiningError
FLAG_NAMES = MiningConfig.flag_names()
FLAGS = MiningConfig.click_options()


def run(flags, log=print):
    """Run (or continue, with --resume PIPELINE_DIR) a mining pipeline; returns the final pickle."""
    target = source_names([str(flags.get('data') or 'target').rstrip('/')])
    tag = f"-{flags['baseline']}" if flags.get('baseline') not in (None, 'none') else (
        f"-sparse{flags['sparse']:g}" if flags.get('sparse') is not None else '')
    directory = pipeline_dir(flags, f'mine-{source_names(flags["mine"])}-to-{target}{tag}', MiningError)
    log(f'Mining pipeline: {directory}')
    return MiningPipeline(flags, directory, log=log).run()
