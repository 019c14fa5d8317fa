"""The encoders that make the autoencoder constraint: they map images to the space the
frozen generator part decodes from.

* ``ImageEncoder`` (latent modes): the source discriminator's blocks (initialised from its
  weights) plus a new head, image -> w ([N, w_dim]) or W+ ([N, num_ws, w_dim]).
* ``FeatureAdapter`` (partial bypass at R): discriminator features at R (from the frozen
  blocks above R) -> generator features at R.

Both predict a *normalised* target (per-dimension mean and std of the source's latents or
features, measured on generated data and kept as buffers): regression on the raw scale of
StyleGAN features is dominated by a few large channels.
"""
import torch

from plugin.hosts import active_host
from plugin.persistence import persistent_class

from .split import d_high


def _lrelu(x):
    return torch.nn.functional.leaky_relu(x, 0.2)


class _Standardised(torch.nn.Module):
    """Buffers ``mean`` and ``std`` of the target, shaped like one sample."""

    def _register_stats(self, shape):
        self.register_buffer('target_mean', torch.zeros(shape))
        self.register_buffer('target_std', torch.ones(shape))

    @torch.no_grad()
    def set_target_stats(self, samples):
        self.target_mean.copy_(samples.mean(0))
        self.target_std.copy_(samples.std(0).clamp_min(1e-4))

    def normalise(self, t):
        return (t - self.target_mean) / self.target_std

    def denormalise(self, t):
        return t * self.target_std + self.target_mean


@persistent_class(None)
class ImageEncoder(_Standardised):
    """image -> w (``mode='w'``) or W+ (``mode='wplus'``)."""

    def __init__(self,
        D_kwargs,         # Constructor kwargs of the source discriminator (the backbone); class_name optional.
        w_dim,            # Intermediate latent w width.
        num_ws,           # Number of ws of the synthesis network (the W+ length).
        mode     = 'w',   # 'w' = predict one w [N, w_dim]; 'wplus' = [N, num_ws, w_dim].
        hidden   = None,  # Head width; None or 0 = max(2 * backbone channels at 4x4, w_dim).
    ):
        super().__init__()
        if mode not in ('w', 'wplus'):
            raise ValueError(f"encoder mode must be 'w' or 'wplus', got {mode!r}")
        self.mode, self.w_dim, self.num_ws = mode, int(w_dim), int(num_ws)
        kwargs = {k: v for k, v in D_kwargs.items() if k != 'class_name'}
        self.backbone = active_host().construct_class_by_name(D_kwargs.get('class_name', 'training.networks.Discriminator'),
                                                              **kwargs)
        self.backbone.requires_grad_(True)
        c4 = self.backbone.b4.in_channels
        hidden = hidden or max(2 * c4, self.w_dim)
        self.out_shape = [self.w_dim] if mode == 'w' else [self.num_ws, self.w_dim]
        self.conv = torch.nn.Conv2d(c4, c4, 3, padding=1)
        self.fc = torch.nn.Linear(c4 * 16, hidden)
        self.out = torch.nn.Linear(hidden, self.num_ws * self.w_dim if mode == 'wplus' else self.w_dim)
        torch.nn.init.zeros_(self.out.weight)        # start at the mean latent
        torch.nn.init.zeros_(self.out.bias)
        self._register_stats(self.out_shape)

    def trunk(self, img):
        x = d_high(self.backbone, img, 4)
        x = x[:, :self.backbone.b4.in_channels]       # a skip D also carries the 4x4 image: not needed
        x = _lrelu(self.conv(x))
        return _lrelu(self.fc(x.flatten(1)))

    def forward(self, img):
        return self.denormalise(self.out(self.trunk(img)).reshape([img.shape[0]] + self.out_shape))

    def ws(self, img, num_ws):
        """The encoding as the synthesis network's ws [N, num_ws, w_dim]."""
        w = self(img)
        return w.unsqueeze(1).repeat([1, num_ws, 1]) if self.mode == 'w' else w


@persistent_class(None)
class FeatureAdapter(_Standardised):
    """Discriminator features at R [N, in_channels, R, R] -> generator features [N, out_channels, R, R]."""

    def __init__(self,
        in_channels,          # Discriminator feature channels at R (a skip D's include its image).
        out_channels,         # Generator feature channels at R (with the partial image, if any).
        resolution,           # R, the feature map size.
        hidden       = None,  # Width of the hidden convs; None or 0 = max(in_channels, out_channels).
    ):
        super().__init__()
        hidden = hidden or max(in_channels, out_channels)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(in_channels, hidden, 3, padding=1), torch.nn.LeakyReLU(0.2),
            torch.nn.Conv2d(hidden, hidden, 3, padding=1), torch.nn.LeakyReLU(0.2),
            torch.nn.Conv2d(hidden, out_channels, 1))
        self._register_stats([out_channels, resolution, resolution])

    def forward(self, features):
        return self.denormalise(self.net(features))
