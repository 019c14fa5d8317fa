"""train_cocktail.py flags of the cocktail method, and its entry point."""
import click

from plugin.cli_flags import CommaList, merge_param_options
from training_ext.common.stages import pipeline_dir, source_names

from .merge import MERGE_METHODS
from .defaults import MERGE_FLAG_NAMES, MERGE_SKIP, option
from .pipeline import CocktailPipeline
from .sources import CocktailError

SELECTOR = 'cocktail'
ERROR = CocktailError
FLAG_NAMES = ('cocktail', 'root', 'root_kimg', 'merge_method', 'merge_weights', 'merge_scale', 'ties_density',
              'dare_drop', 'slerp_t', 'class_percentages', 'class_names', 'root_replay', 'judge', 'judge_inception')
FLAGS = [
    click.option('--cocktail', type=CommaList(), metavar='PKLS',
                 help='Merge these source pickles (comma-separated) into one conditional model'),
    click.option('--root', type=int, metavar='INT', help='Index of the root source [default: 0]'),
    click.option('--root-kimg', type=float, metavar='KIMG', help='kimg of each rooting run [default: --kimg]'),
    click.option('--root-replay', type=bool, metavar='BOOL',
                 help="Rooting also trains the root's classes on the root's images [default: true]"),
    click.option('--merge-method', type=click.Choice(list(MERGE_METHODS)), help='How to merge [default: mean]'),
    *merge_param_options(MERGE_FLAG_NAMES, skip=MERGE_SKIP),     # from the merge methods' declarations
    click.option('--class-percentages', type=CommaList(), metavar='LIST',
                 help='Merge fine-tuning class mix, one number per merged class [default: uniform]'),
    click.option('--judge', type=click.IntRange(min=0), metavar='INT',
                 help='Report: source-identification images per class (0: off) [default: 1000]'),
    click.option('--judge-inception', type=click.Path(dir_okay=False), metavar='FILE',
                 help="Report: per-class FID in Inception space with this detector (the host's "
                      "inception-2015-12-05.pt) [default: the project's feature space]"),
    click.option('--class-names', type=CommaList(), metavar='LIST',
                 help='A label per source (stage dirs, report, logs) [default: file stem, else run dir]'),
]


def run(flags, log=print):
    """Run (or continue, with --resume PIPELINE_DIR) a cocktail pipeline; returns its report."""
    if flags.get('data'):
        raise CocktailError('--cocktail trains on generated images: do not pass --data')
    if flags.get('class_percentages') is not None:
        flags['class_percentages'] = [float(x) for x in flags['class_percentages']]
    tag = option(flags, 'baseline') if option(flags, 'baseline') != 'none' else option(flags, 'merge_method')
    try:
        names = source_names(flags['cocktail'], flags.get('class_names'))
    except ValueError as e:
        raise CocktailError(str(e)) from None
    directory = pipeline_dir(flags, f'cocktail-{names}-{tag}', CocktailError)
    log(f'Cocktail pipeline: {directory}')
    return CocktailPipeline(flags, directory, log=log).run()
