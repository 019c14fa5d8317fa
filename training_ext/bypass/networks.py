"""The networks of a bypass run and of its result pickle.

Latent modes (``--bypass w|wplus``):
  ``LatentGenerator`` (z -> w or W+) and ``LatentCritic`` (w or W+ -> score) are the small
  GAN trained on cached latents. The result ``BypassGenerator`` is the frozen source
  synthesis network behind a ``LatentMapping`` (the latent generator in the host mapping's
  interface: ``mapping(z, c, truncation_psi, truncation_cutoff)`` -> ws), so ``G(z, c)``,
  ``G.mapping`` / ``G.synthesis`` and ``G.mapping.w_avg`` work as in host tools. The result
  ``BypassDiscriminator`` is the frozen encoder followed by the critic.

Partial mode (``--bypass R``): the result generator is a plain host Generator (its blocks
above R never changed); the result discriminator is a ``SplitDiscriminator``: the source
D's blocks above R (frozen), the adapter, and the trained blocks from R down.
"""
import torch

from plugin.hosts import active_host
from plugin.layouts import synthesis_class_and_kwargs
from plugin.persistence import persistent_class
from training_ext.common.freezing import gradient_masks, register_gradient_masks

from .encoders import FeatureAdapter, ImageEncoder
from .split import d_high, d_low


def _mlp(dims, final_activation=False):
    layers = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(dims) - 2 or final_activation:
            layers.append(torch.nn.LeakyReLU(0.2))
    return torch.nn.Sequential(*layers)


@persistent_class(None)
class LatentGenerator(torch.nn.Module):
    """z -> latent (the paper's MLP: 128 -> 256 -> 512 -> latent). The output is produced in
    the encoder's normalised units and mapped back with the latents' mean and std, so the
    generator starts near the target latents' scale."""

    def __init__(self,
        z_dim        = 128,         # Input z width.
        latent_shape = (512,),      # Shape of one output latent: (w_dim,) or (num_ws, w_dim).
        hidden       = (256, 512),  # Hidden layer widths, input side first.
    ):
        super().__init__()
        self.z_dim, self.latent_shape = int(z_dim), [int(s) for s in latent_shape]
        numel = 1
        for s in self.latent_shape:
            numel *= s
        self.net = _mlp([self.z_dim, *hidden, numel])
        self.register_buffer('latent_mean', torch.zeros(self.latent_shape))
        self.register_buffer('latent_std', torch.ones(self.latent_shape))

    def forward(self, z):
        return self.net(z).reshape([z.shape[0]] + self.latent_shape) * self.latent_std + self.latent_mean


@persistent_class(None)
class LatentCritic(torch.nn.Module):
    """latent -> score (the paper's MLP: latent -> 512 -> 256 -> 128 -> 1), on normalised latents."""

    def __init__(self,
        latent_shape = (512,),           # Shape of one input latent: (w_dim,) or (num_ws, w_dim).
        hidden       = (512, 256, 128),  # Hidden layer widths, input side first.
    ):
        super().__init__()
        self.latent_shape = [int(s) for s in latent_shape]
        numel = 1
        for s in self.latent_shape:
            numel *= s
        self.net = _mlp([numel, *hidden, 1])
        self.register_buffer('latent_mean', torch.zeros(self.latent_shape))
        self.register_buffer('latent_std', torch.ones(self.latent_shape))

    def forward(self, latent):
        return self.net(((latent - self.latent_mean) / self.latent_std).flatten(1))


@persistent_class(None)
class LatentMapping(torch.nn.Module):
    """The latent generator with the host mapping network's interface."""

    def __init__(self,
        z_dim,                # Input z width.
        w_dim,                # Intermediate latent w width.
        num_ws,               # Number of ws returned per sample.
        mode   = 'w',         # 'w' = one w repeated num_ws times; 'wplus' = num_ws separate ws.
        hidden = (256, 512),  # Hidden layer widths of the LatentGenerator.
    ):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.mode = int(z_dim), 0, int(w_dim), int(num_ws), mode
        shape = [self.w_dim] if mode == 'w' else [self.num_ws, self.w_dim]
        self.net = LatentGenerator(z_dim=z_dim, latent_shape=shape, hidden=hidden)
        self.register_buffer('w_avg', torch.zeros([self.w_dim]))

    def forward(self, z, c=None, truncation_psi=1, truncation_cutoff=None, skip_w_avg_update=False, update_emas=None):
        w = self.net(z)
        ws = w.unsqueeze(1).repeat([1, self.num_ws, 1]) if self.mode == 'w' else w
        if truncation_psi != 1:
            cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
            ws = torch.cat([self.w_avg.lerp(ws[:, :cut], truncation_psi), ws[:, cut:]], dim=1)
        return ws

    @torch.no_grad()
    def update_w_avg(self, n=10000, batch=1000, seed=0):
        g = torch.Generator(device='cpu').manual_seed(seed)
        dev = self.w_avg.device
        total = torch.zeros_like(self.w_avg)
        for i in range(0, n, batch):
            z = torch.randn([min(batch, n - i), self.z_dim], generator=g).to(dev)
            total += self.forward(z).mean(1).sum(0)
        self.w_avg.copy_(total / n)


@persistent_class(None)
class BypassGenerator(torch.nn.Module):
    """frozen source synthesis o trained latent generator, sampled as ``G(z, c)``."""

    def __init__(self,
        source_kwargs,  # Source generator's constructor kwargs with class_name (its synthesis is rebuilt).
        latent_kwargs,  # For LatentMapping (z_dim, mode, hidden).
    ):
        super().__init__()
        src = dict(source_kwargs)
        self.c_dim = 0
        self.w_dim, self.img_resolution, self.img_channels = src['w_dim'], src['img_resolution'], src['img_channels']
        # The source's own synthesis class: a StyleGAN2 one, or the stylegan3 repo's (both families).
        synthesis_class, synthesis_kwargs = synthesis_class_and_kwargs(src)
        self.synthesis = active_host().construct_class_by_name(
            synthesis_class, w_dim=self.w_dim, img_resolution=self.img_resolution,
            img_channels=self.img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = LatentMapping(w_dim=self.w_dim, num_ws=self.num_ws, **latent_kwargs)
        self.z_dim = self.mapping.z_dim
        # Frozen even if a host training loop resumes from this pickle and trains it.
        register_gradient_masks(self, dict(self.synthesis.named_parameters(prefix='synthesis')))

    def forward(self, z, c=None, truncation_psi=1, truncation_cutoff=None, update_emas=None, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, **synthesis_kwargs)


@persistent_class(None)
class BypassDiscriminator(torch.nn.Module):
    """frozen encoder -> critic: the latent critic as an image discriminator ``D(img, c)``."""

    def __init__(self,
        encoder_kwargs,  # For ImageEncoder (frozen).
        critic_kwargs,   # For LatentCritic.
    ):
        super().__init__()
        self.encoder = ImageEncoder(**encoder_kwargs)
        self.critic = LatentCritic(**critic_kwargs)
        self.c_dim = 0
        self.img_resolution = self.encoder.backbone.img_resolution
        self.img_channels = self.encoder.backbone.img_channels
        register_gradient_masks(self, dict(self.encoder.named_parameters(prefix='encoder')))

    def forward(self, img, c=None, **kwargs):
        return self.critic(self.encoder(img))


@persistent_class(None)
class SplitDiscriminator(torch.nn.Module):
    """The partial-bypass discriminator: D's blocks above ``res`` (frozen) -> adapter
    (frozen) -> [trainable] D's blocks from ``res`` down, on generator-space features.

    ``critic(h, c)`` is what trains: it sees generator features at ``res`` (the cached
    target features, or the trained generator's low blocks' output) and never runs the
    frozen blocks. A zero-initialised 1x1 conv brings the partial RGB image of a skip
    generator in (a resnet D has no fromRGB inside), so the critic starts as D's own blocks.
    """

    def __init__(self,
        D_kwargs,          # Constructor kwargs of the source discriminator; class_name optional.
        res,               # Split resolution R (a power of two below the image size).
        g_channels,        # Generator feature channels at R, without the partial image.
        has_img,           # Generator features carry a partial image as their last channels.
        img_channels = 3,  # Channels of that partial image (used only with has_img).
    ):
        super().__init__()
        kwargs = {k: v for k, v in D_kwargs.items() if k != 'class_name'}
        self.D = active_host().construct_class_by_name(D_kwargs.get('class_name', 'training.networks.Discriminator'),
                                                       **kwargs)
        self.res, self.has_img, self.g_channels, self.feat_img_channels = int(res), bool(has_img), int(g_channels), \
            int(img_channels)
        self.c_dim, self.img_resolution, self.img_channels = self.D.c_dim, self.D.img_resolution, self.D.img_channels
        d_in = self._d_feature_channels()
        h_channels = self.g_channels + (img_channels if has_img else 0)
        self.adapter = FeatureAdapter(in_channels=d_in, out_channels=h_channels, resolution=self.res)
        d_channels = getattr(self.D, f'b{self.res}').in_channels if self.res > 4 else self.D.b4.in_channels
        self.g_to_d = torch.nn.Conv2d(h_channels, d_channels, 1)
        with torch.no_grad():                       # identity on the features, zero on the image
            self.g_to_d.weight.zero_()
            self.g_to_d.bias.zero_()
            eye = torch.eye(d_channels, self.g_channels)
            self.g_to_d.weight[:, :self.g_channels, 0, 0] = eye
        # D's blocks above res are frozen for good; the adapter trains in stage 1 and is frozen
        # after it (freeze_adapter): its masks are buffers, so the state travels in pickles.
        frozen = {n: p for n, p in self.D.named_parameters(prefix='D') if self._is_high(n)}
        adapter = dict(self.adapter.named_parameters(prefix='adapter'))
        register_gradient_masks(self, {**frozen, **adapter}, masks={n: torch.ones([]) for n in adapter})

    @torch.no_grad()
    def freeze_adapter(self):
        for name, buf in gradient_masks(self).items():
            if name.startswith('adapter.'):
                buf.zero_()

    def _d_feature_channels(self):
        with torch.no_grad():
            probe = torch.zeros([1, self.img_channels, self.img_resolution, self.img_resolution])
            return int(d_high(self.D, probe, self.res).shape[1])

    def trainable_parameters(self):
        return [p for n, p in self.named_parameters() if not n.startswith('adapter.') and not self._is_high(n)]

    def _is_high(self, name):
        """Whether parameter ``name`` belongs to one of D's blocks above ``res`` (the frozen encoder)."""
        parts = name.split('.')
        return parts[0] == 'D' and parts[1][:1] == 'b' and parts[1][1:].isdigit() and int(parts[1][1:]) > self.res

    def encode(self, img):
        """Image -> generator-space features at ``res`` (the frozen path; run once per target image)."""
        return self.adapter(d_high(self.D, img, self.res))

    def critic(self, h, c=None):
        x = self.g_to_d(h)
        img = None
        if getattr(self.D, f'b{self.res}', None) is not None and self.res > 4:
            if getattr(self.D, f'b{self.res}').architecture == 'skip' and self.has_img:
                img = h[:, -self.feat_img_channels:]
        if c is None:
            c = torch.zeros([h.shape[0], self.c_dim], device=h.device)
        return d_low(self.D, x, img, c, self.res)

    def forward(self, img, c=None, **kwargs):
        return self.critic(self.encode(img), c)
