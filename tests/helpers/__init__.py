"""What the tests share: the repository's paths, the host-written fixtures, the command line,
and small networks to build sources from (checks against the fixtures' goldens:
``tests.helpers.goldens``). A package (``from tests.helpers import ...``): pytest puts the
repository root on ``sys.path`` (``tests`` is a package), so nothing edits ``sys.path``."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Pickles written by the real hosts; a plain clone has no ../shared (those tests skip).
FIXTURES = Path(os.environ.get('COCKTAIL_FIXTURES', REPO.parent / 'shared' / 'fixtures' / 'stylegan2-ada'))
FIXTURE_CONFIGS = ['uncond32', 'cond32', 'uncond64']
# Pickles written by the real stylegan3 repo (its README lists the facts): two alias-free, one StyleGAN2.
SG3_FIXTURES = Path(os.environ.get('COCKTAIL_SG3_FIXTURES', REPO.parent / 'shared' / 'fixtures' / 'stylegan3'))
SG3_FIXTURE_CONFIGS = ['t32', 'r32cond', 'sg2cond32']
# Our own goldens of further stylegan3 configurations (numbers only, committed; written by
# tools/make_sg3_goldens.py from a real stylegan3 checkout: README there).
SG3_OWN_GOLDENS = REPO / 'tests' / 'goldens' / 'stylegan3'
SG3_OWN_GOLDEN_CONFIGS = ['t16c5', 'r64', 't64z32w48', 't32c3x', 'sg2c3']
# A stylegan3 checkout (tests of --host PATH with one run only when it is named).
SG3_HOST = os.environ.get('COCKTAIL_TEST_SG3_HOST')


def run_plugin_cli(*args):
    """``python -m plugin ARGS`` from the repository root: the CompletedProcess, text output captured."""
    return subprocess.run([sys.executable, '-m', 'plugin', *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


# Prelude of a script that imports a stylegan3 checkout in a subprocess: the host's ops import
# pkg_resources, which setuptools >= 81 no longer ships (a stand-in where it is missing).
PKG_RESOURCES_STAND_IN = """
import sys, types
try:
    import pkg_resources  # noqa: F401
except ImportError:
    import packaging.version
    sys.modules['pkg_resources'] = types.SimpleNamespace(parse_version=packaging.version.parse)
"""


def sample_images(G, n=4):
    """``n`` images of G for seed 123 (zero labels, constant noise), without gradients."""
    import torch
    torch.manual_seed(123)
    z = torch.randn(n, G.z_dim)
    with torch.no_grad():
        return G(z, torch.zeros(n, G.c_dim), noise_mode='const')


def small_G_kwargs(**over):
    kw = dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
              mapping_kwargs=dict(num_layers=2),
              synthesis_kwargs=dict(channel_base=128, channel_max=16, conv_clamp=256, architecture='skip'))
    kw.update(over)
    return kw


def small_D_kwargs(**over):
    kw = dict(c_dim=0, img_resolution=16, img_channels=3, architecture='resnet', channel_base=128, channel_max=16,
              conv_clamp=256, epilogue_kwargs=dict(mbstd_group_size=2))
    kw.update(over)
    return kw


def run_dir(parent, name):
    """``parent/name``, created: a host run directory, where sources live as a user has them
    (``<run dir>/network-snapshot-NNNNNN.pkl``)."""
    path = Path(parent) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def make_source(path, seed=0, **gkw):
    """A small random source pickle (G, D, G_ema) built from small_G_kwargs / small_D_kwargs."""
    import torch

    from plugin import save_network_pkl
    from plugin.hosts.embedded.networks import Discriminator, Generator
    torch.manual_seed(seed)
    G = Generator(**small_G_kwargs(**gkw))
    D = Discriminator(**small_D_kwargs(img_resolution=G.img_resolution, c_dim=G.c_dim))
    save_network_pkl(dict(training_set_kwargs=None, G=G, D=D, G_ema=G), path)
    return str(path)


def small_sg3_G(seed=0, c_dim=0, **over):
    """A tiny alias-free (StyleGAN3-T) generator at 16 px: six layers, 16 channels."""
    import torch

    from plugin.hosts.embedded import networks_stylegan3 as sg3
    torch.manual_seed(seed)
    kw = dict(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=16, img_channels=3, mapping_kwargs=dict(num_layers=2),
              channel_base=256, channel_max=16, num_layers=6)
    kw.update(over)
    return sg3.Generator(**kw)


def small_sg3_D(seed=0, c_dim=0, img_resolution=16):
    """The stylegan3 repo's StyleGAN2 discriminator (what its train.py pairs with every G), 16 px."""
    import torch

    from plugin.hosts.embedded import networks_stylegan2 as sg2
    torch.manual_seed(seed + 100)
    return sg2.Discriminator(c_dim=c_dim, img_resolution=img_resolution, img_channels=3, channel_base=128,
                             channel_max=16, epilogue_kwargs=dict(mbstd_group_size=2))


def make_sg3_source(path, seed=0, c_dim=0, **over):
    """A tiny stylegan3-t source pickle (G, D, G_ema) in the stylegan3 repo's layout; ``over``
    replaces small_sg3_G's kwargs (img_resolution=32, use_radial_filters=True, ...)."""
    from plugin import save_network_pkl
    G = small_sg3_G(seed, c_dim, **over)
    D = small_sg3_D(seed, c_dim, img_resolution=G.img_resolution)
    save_network_pkl(dict(training_set_kwargs=None, G=G, D=D, G_ema=G), path)
    return str(path)


def run_mining(world, name, **over):
    """A tiny MiningPipeline run in ``world['tmp'] / name`` (``world``: a module fixture's dict with
    tmp, target and a source ``a``), ``over`` replacing flags: (pipeline, final pickle, log lines)."""
    from training_ext.mining.pipeline import MiningPipeline
    flags = dict(mine=[world['a']], data=world['target'], outdir=str(world['tmp']), cfg='tiny', batch=8,
                 mine_kimg=0.016, kimg=0.016, tick=0.016, snap=1, seed=0, device='cpu')
    flags.update(over)
    logs = []
    pipe = MiningPipeline(flags, str(world['tmp'] / name), log=logs.append)
    return pipe, pipe.run(), logs
