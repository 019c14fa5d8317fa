"""The methods, registered once: ``train_cocktail.py`` builds its flags, its dispatch and the
errors it reports in one line from this list (adding a method = adding its cli module here).

Each method's ``cli`` module has ``SELECTOR`` (the flag that picks it), ``FLAG_NAMES``,
``FLAGS`` (click options; defaults read from its ``defaults.py``), ``ERROR`` (its user-facing
error type) and ``run(flags)``; optionally ``selected(flags)`` when the selector flag alone
does not decide.
"""
from training_ext.bypass import cli as bypass_cli
from training_ext.cocktail import cli as cocktail_cli
from training_ext.hypermod import cli as hypermod_cli
from training_ext.mining import cli as mining_cli

METHODS = [cocktail_cli, mining_cli, bypass_cli, hypermod_cli]


def selected_method(flags):
    """The method the flags select, or None for a plain run (the first match, in METHODS order)."""
    return next((m for m in METHODS if getattr(m, 'selected', lambda f, m=m: f.get(m.SELECTOR))(flags)), None)


def method_flags():
    """Every method's click options, in METHODS order."""
    return [option for m in METHODS for option in m.FLAGS]


def method_errors():
    return tuple(m.ERROR for m in METHODS)
