"""The bypass method's option defaults, in one place (flags' help and the pipeline read them).
Defaults that depend on the mode are given per mode: 'latent' (--bypass w|wplus) and 'partial'
(--bypass RES). A flag given as 0 is 0 (``--encoder-kimg 0``: no encoder training, ``--kimg 0``:
the bypass GAN does not train) or a one-line error (``--batch 0``, ``--tick 0``, ``--snap 0``).
"""
DEFAULTS = dict(
    encoder_kimg=20,
    latent_loss=dict(latent='wgangp', partial='ns'),
    batch=dict(latent=128, partial=32),
    kimg=dict(latent=2000, partial=100),
    tick_fraction=1 / 20,          # --tick default: this fraction of --kimg (at least 1 image)
    snap=5,                        # ticks between snapshots of the bypass GAN
    gamma=1.0,                     # R1 (partial) / gradient penalty (latent) weight
)


def option(flags, name, mode=None):
    """The flag's value, or its default (for ``mode`` when it has one per mode) when it was not
    given (None): never ``value or default``."""
    value = flags.get(name)
    if value is not None:
        return value
    default = DEFAULTS[name]
    return default[mode] if isinstance(default, dict) else default
