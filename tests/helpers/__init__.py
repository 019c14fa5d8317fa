"""What the tests share: the repository's paths, the host-written fixtures, and small
networks to build sources from. A package (``from tests.helpers import ...``): pytest puts
the repository root on ``sys.path`` (``tests`` is a package), so nothing edits ``sys.path``."""
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Pickles written by the real hosts; a plain clone has no ../shared (those tests skip).
FIXTURES = Path(os.environ.get('COCKTAIL_FIXTURES', REPO.parent / 'shared' / 'fixtures' / 'stylegan2-ada'))
FIXTURE_CONFIGS = ['uncond32', 'cond32', 'uncond64']
# Pickles written by the stylegan3 repo (see their README); COCKTAIL_SG3_FIXTURES points elsewhere.
SG3_FIXTURES = Path(os.environ.get('COCKTAIL_SG3_FIXTURES', REPO.parent / 'shared' / 'fixtures' / 'stylegan3'))
SG3_FIXTURE_CONFIGS = ['t32', 'r32cond', 'sg2cond32']
# A stylegan3 checkout (tests of --host PATH with one run only when it is named).
SG3_HOST = os.environ.get('COCKTAIL_TEST_SG3_HOST')


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
