"""ADA pipeline: identity at p=0, differentiable, and every transform group does something."""
import pytest
import torch

from plugin.hosts.embedded.augment import AugmentPipe
from plugin.run_options import augpipe_preset


def images(n=8):
    torch.manual_seed(0)
    return torch.rand(n, 3, 16, 16) * 2 - 1


@pytest.mark.parametrize('preset', ['blit', 'geom', 'color', 'bgc', 'noise', 'cutout'])
def test_presets(preset):
    pipe = AugmentPipe(**augpipe_preset(preset))
    x = images()
    assert torch.equal(pipe(x), x)                  # p = 0: the pipe is the identity
    pipe.p.fill_(1.0)
    x.requires_grad_(True)
    y = pipe(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert not torch.allclose(y, x)
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_probability_controls_the_fraction_augmented():
    pipe = AugmentPipe(xflip=1)
    pipe.p.fill_(0.3)
    torch.manual_seed(1)
    x = images(2000)
    changed = (pipe(x) - x).flatten(1).abs().amax(1) > 1e-6
    # A flip applies with p * 1/2 (a random flip bit, gated by p).
    assert 0.1 < changed.float().mean().item() < 0.2


def test_imgfilter_is_rejected_clearly():
    with pytest.raises(ValueError, match='imgfilter'):
        AugmentPipe(**augpipe_preset('bgcf'))
    with pytest.raises(ValueError, match='unknown --augpipe'):
        augpipe_preset('xyz')


def test_integer_translation_moves_by_whole_pixels():
    """xint shifts each image by a whole number of pixels (the host's integer translation):
    away from the borders every output pixel is an input pixel, not a bilinear mix."""
    torch.manual_seed(0)
    pipe = AugmentPipe(xint=1)
    pipe.p.fill_(1)
    x = torch.randn([8, 3, 32, 32])
    out = pipe(x)
    inner = out[:, :, 6:-6, 6:-6]
    moved = 0
    for i in range(len(x)):
        shifts = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)
                  if torch.allclose(inner[i], x[i, :, 6 - dy:26 - dy, 6 - dx:26 - dx], atol=1e-5)]
        assert shifts, f'image {i} was not moved by whole pixels'
        moved += shifts[0] != (0, 0)
    assert moved >= 4, 'the translation did not happen'
