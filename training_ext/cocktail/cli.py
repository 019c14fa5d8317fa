"""train_cocktail.py flags of the cocktail method, and its entry point."""
from plugin.cli_flags import merge_flag_names, merge_param_options
from training_ext.common.stages import pipeline_dir, source_names

from .config import MERGE_FLAG_NAMES, MERGE_SKIP, CocktailConfig
from .pipeline import CocktailPipeline
from .sources import CocktailError

SELECTOR = 'cocktail'
ERROR = CocktailError
FLAG_NAMES = CocktailConfig.flag_names() + merge_flag_names(MERGE_FLAG_NAMES, skip=MERGE_SKIP)
FLAGS = [*CocktailConfig.click_options(),
         *merge_param_options(MERGE_FLAG_NAMES, skip=MERGE_SKIP)]     # from the merge methods' declarations


def run(flags, log=print):
    """Run (or continue, with --resume PIPELINE_DIR) a cocktail pipeline; returns its report."""
    if flags.get('data'):
        raise CocktailError('--cocktail trains on generated images: do not pass --data')
    if flags.get('class_percentages') is not None:
        flags['class_percentages'] = [float(x) for x in flags['class_percentages']]
    config = CocktailConfig.from_flags(flags)
    tag = config.baseline if config.baseline != 'none' else config.merge_method
    try:
        names = source_names(flags['cocktail'], flags.get('class_names'))
    except ValueError as e:
        raise CocktailError(str(e)) from None
    directory = pipeline_dir(flags, f'cocktail-{names}-{tag}', CocktailError)
    log(f'Cocktail pipeline: {directory}')
    return CocktailPipeline(flags, directory, log=log).run()
