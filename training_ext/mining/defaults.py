"""The mining method's option defaults, in one place (flags' help, pipeline and loss read them).

A flag given as 0 is 0: ``--mine-kimg 0`` skips the mining stage, ``--kimg 0`` the
fine-tuning stage, ``--selector-weight 0`` leaves the selector untrained (uniform choice).
"""
DEFAULTS = dict(
    mine_kimg=100,           # stage 1: miners (and selector) and D only
    kimg=1000,               # stage 2 (or the baseline)
    selector_weight=1.0,     # weight of the selector's cross-entropy (several sources)
    mine_space='z',
    miner_init='identity',
    baseline='none',
    baseline_freezed=4,      # --baseline freezed without --freezed: Freeze-D of 4 layers
)


def option(flags, name):
    """The flag's value, or its default when it was not given (None): never ``value or default``."""
    value = flags.get(name)
    return DEFAULTS[name] if value is None else value
