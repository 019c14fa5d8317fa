"""Every error a user can meet, in one place: each is reported by the command line as one line
(``error: ...``) with exit code 1, never as a traceback. The modules that raise them import
them from here (their old homes re-export them).

Bad input (a flag, a file, a dataset) is a ``ValueError``/``IOError`` subclass; a host or
pipeline that does not fit what the plugin expects is a ``RuntimeError`` subclass. Loading a
pickle raises only ``plugin.pickles.NetworkPickleError`` (and its ``UnsafePickleError``),
which live with the reader so that it stays a leaf.
"""


class UserError(ValueError):
    """A bad flag value."""


class DatasetError(IOError):
    """The dataset cannot be used as given."""


class DetectorError(ValueError):
    """The Inception detector file cannot be used."""


class TrainingError(RuntimeError):
    """The run cannot start or continue as configured."""


class HostError(RuntimeError):
    """A host cannot be used, or lacks something the plugin needs."""


class PatchError(RuntimeError):
    """The pipeline's layout is not what a patch expects."""


class StageError(ValueError):
    """A method's stage cannot be configured as asked."""


class MergeError(ValueError):
    """Networks cannot be merged (averaged) as given."""


class CocktailError(ValueError):
    """The sources cannot be merged as given."""


class MiningError(ValueError):
    """Mining cannot run as asked."""


class BypassError(ValueError):
    """The bypass cannot run as asked."""


class HypermodError(ValueError):
    """Hyper-modulation cannot run as asked."""
