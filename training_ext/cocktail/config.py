"""The cocktail's options, declared once (see training_ext/common/config.py).

A number given as 0 is 0: ``--root-kimg 0`` skips rooting (every rooted model is the root),
``--kimg 0`` skips merge fine-tuning (the result is the widened average); both are logged.
"""
import dataclasses

import click

from plugin.cli_flags import CommaList
from training_ext.common.config import MethodConfig, option

from .merge import MERGE_METHODS

# The merge methods' parameters (plugin.merging.PARAMS, defaults in the methods themselves), as
# the cocktail names their flags; dare's --seed would clash with the host's training --seed, so
# its masks use the method's default seed.
MERGE_FLAG_NAMES = dict(weights='merge-weights', scale='merge-scale', density='ties-density', drop='dare-drop',
                        t='slerp-t')
MERGE_SKIP = ('seed',)


@dataclasses.dataclass(frozen=True)
class CocktailConfig(MethodConfig):
    cocktail: list = option(None, 'Merge these source pickles (comma-separated) into one conditional model',
                            flag='--cocktail', type=CommaList(), metavar='PKLS')
    root: int = option(0, 'Index of the root source', flag='--root', type=int, metavar='INT')
    root_kimg: float = option(None, 'kimg of each rooting run', flag='--root-kimg', type=float, metavar='KIMG',
                              default_help='--kimg')
    root_replay: bool = option(True, "Rooting also trains the root's classes on the root's images",
                               flag='--root-replay', type=bool, metavar='BOOL')
    merge_method: str = option('mean', 'How to merge', flag='--merge-method', type=click.Choice(list(MERGE_METHODS)))
    class_percentages: list = option(None, 'Merge fine-tuning class mix, one number per merged class',
                                     flag='--class-percentages', type=CommaList(), metavar='LIST',
                                     default_help='uniform')
    judge: int = option(1000, 'Report: source-identification images per class (0: off)', flag='--judge',
                        type=click.IntRange(min=0), metavar='INT')
    judge_inception: str = option(None, "Report: per-class FID in Inception space with this detector (the host's "
                                  'inception-2015-12-05.pt)', flag='--judge-inception',
                                  type=click.Path(dir_okay=False), metavar='FILE',
                                  default_help="the project's feature space")
    class_names: list = option(None, 'A label per source (stage dirs, report, logs)', flag='--class-names',
                               type=CommaList(), metavar='LIST', default_help='file stem, else run dir')
    # Host flags with the cocktail's own default, and the shared --baseline.
    kimg: int = option(25000, 'merge fine-tuning (or the baseline), the host train.py\'s default')
    baseline: str = option('none', 'train this baseline instead of merging')
    baseline_freezed: int = option(4, '--baseline freezed without --freezed: Freeze-D of 4 layers')
