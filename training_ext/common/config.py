"""A method's options, declared once: one dataclass per method (``<method>/config.py``), in the
way PEFT declares its adapters' configs. Each field is one option: its default, its help and,
when the method owns a train_cocktail.py flag for it, the flag. The click options, the list of
the method's flag names, the help's ``[default: ...]`` and the values the pipeline reads all
come from that one declaration.

A field is one of three kinds:
- ``flag='--hyper-rank'``: the method's own flag; its click option is generated from the field.
- ``flag=None``: a host flag (``--kimg``, ``--freezed``, ``--batch``, ...) for which this method
  has its own default, or a pipeline option that only scripts set (``r1_interval``).
- a default that depends on another value (``PerKey``): read with ``config.get(name, key)``.

``Config.from_flags(flags)`` takes every value that was given (not None) and the default for
the rest: never ``value or default``, so a 0 stays 0. Whether 0 or a negative value is allowed
is the pipeline's call, with a one-line error.
"""
import dataclasses

import click


@dataclasses.dataclass(frozen=True)
class PerKey:
    """A default that depends on a key (the bypass mode, the head init): ``values`` maps
    each key to its default."""
    values: tuple                  # ((key, default), ...): a tuple so that the dataclass is frozen

    def __init__(self, **values):
        object.__setattr__(self, 'values', tuple(values.items()))

    def __getitem__(self, key):
        return dict(self.values)[key]

    def describe(self):
        return ', '.join(f'{_show(v)} ({k})' for k, v in self.values)


def option(default, help, flag=None, type=None, metavar=None, is_flag=False, default_help=None):
    """One field of a method's config.

    default      -- the value when the flag is not given (a PerKey when it depends on a key)
    help         -- what the option does; the flag's help gets ``[default: ...]`` appended
    flag         -- the method's own flag ('--root-kimg'), None when it has none here
    type         -- click type of the flag (int, float, bool, a click.Choice, a ParamType)
    metavar      -- the flag's metavar in --help
    is_flag      -- a switch (``--hyper``) rather than an option with a value
    default_help -- how --help states the default when the value itself does not say it
    """
    meta = dict(help=help, flag=flag, type=type, metavar=metavar, is_flag=is_flag, default_help=default_help)
    return dataclasses.field(default=default, metadata=meta)


def _show(value):
    if isinstance(value, bool):
        return str(value).lower()
    return f'{value:g}' if isinstance(value, float) else str(value)


@dataclasses.dataclass(frozen=True)
class MethodConfig:
    """Base of the methods' configs (each a frozen dataclass of ``option`` fields)."""

    @classmethod
    def from_flags(cls, flags):
        """The config for train_cocktail.py's ``flags`` (click's dict, Python names): a value
        given (not None) wins, every other field keeps its default."""
        given = {f.name: flags[f.name] for f in dataclasses.fields(cls) if flags.get(f.name) is not None}
        return cls(**given)

    @classmethod
    def default(cls, name):
        return next(f.default for f in dataclasses.fields(cls) if f.name == name)

    def get(self, name, key=None):
        """The value of ``name``; for a PerKey default that was not overridden, the one for ``key``."""
        value = getattr(self, name)
        return value[key] if isinstance(value, PerKey) else value

    @classmethod
    def flag_fields(cls):
        return [f for f in dataclasses.fields(cls) if f.metadata.get('flag')]

    @classmethod
    def flag_names(cls):
        """The Python names of the method's own flags (as click passes them)."""
        return tuple(f.name for f in cls.flag_fields())

    @classmethod
    def click_options(cls):
        """One click option per flag field. No click default: a flag not given is None, so the
        config (not click) supplies the default, and 'given as 0' stays visible."""
        options = []
        for f in cls.flag_fields():
            m = f.metadata
            # click names the value after the flag: the field must carry that name
            assert m['flag'].lstrip('-').replace('-', '_') == f.name, (m['flag'], f.name)
            if m['is_flag']:
                options.append(click.option(m['flag'], is_flag=True, default=False, help=m['help']))
                continue
            shown = m['default_help'] or (f.default.describe() if isinstance(f.default, PerKey) else
                                          None if f.default is None else _show(f.default))
            help = m['help'] + (f' [default: {shown}]' if shown is not None else '')
            options.append(click.option(m['flag'], type=m['type'], metavar=m['metavar'], help=help))
        return options
