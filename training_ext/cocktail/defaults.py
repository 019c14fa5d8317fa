"""The cocktail's option defaults, in one place (flags' help and the pipeline read them).

A number given as 0 is 0: ``--root-kimg 0`` skips rooting (every rooted model is the
root), ``--kimg 0`` skips merge fine-tuning (the result is the widened average); both are
logged. ``root_kimg`` None means "as --kimg".
"""
DEFAULTS = dict(
    root=0,                  # index of the root source
    root_kimg=None,          # each rooting run; None: --kimg
    root_replay=True,        # rooting towards j also trains the root's classes on the root's images
    kimg=25000,              # merge fine-tuning (or the baseline), the host train.py's default
    merge_method='mean',
    judge=1000,              # source-identification images per class (0: no judging in the report)
    baseline='none',
    baseline_freezed=4,      # --baseline freezed without --freezed: Freeze-D of 4 layers
)

# The merge methods' parameters (plugin.merging.PARAMS, defaults in the methods themselves), as
# the cocktail names their flags; dare's --seed would clash with the host's training --seed, so
# its masks use the method's default seed.
MERGE_FLAG_NAMES = dict(weights='merge-weights', scale='merge-scale', density='ties-density', drop='dare-drop',
                        t='slerp-t')
MERGE_SKIP = ('seed',)


def option(flags, name):
    """The flag's value, or its default when it was not given (None): never ``value or default``."""
    value = flags.get(name)
    return DEFAULTS[name] if value is None else value
