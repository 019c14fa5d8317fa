"""The embedded host's ``training.networks_stylegan3``: the alias-free generator (StyleGAN3-T
and -R), written from the paper (Karras et al. 2021, "Alias-Free Generative Adversarial
Networks") and the facts of the stylegan3 pickles (``shared/fixtures/stylegan3/README.md``).

The synthesis network treats its feature maps as samples of continuous signals. It starts from
Fourier features (``SynthesisInput``) whose frequencies lie in a disc of radius ``first_cutoff``;
each of the ``num_layers`` layers is a modulated convolution followed by a *filtered* leaky ReLU
(``torch_utils_ext.ops.filtered_lrelu``): upsample to twice the output rate, apply the
nonlinearity, low-pass at the layer's cutoff and decimate. Cutoffs and minimum stopbands grow
geometrically from the first layer to the last ``num_critical`` layers, which are critically
sampled at the image's Nyquist rate (``layer_schedule``). Each layer carries ``margin_size``
pixels around the image; a final linear ToRGB layer runs at the image resolution.

Class names, constructor arguments, parameter and buffer names (including ToRGB's None
filters) and the numpy attributes (``in_size``, ``out_size``, cutoffs) are the host's, so
stylegan3 pickles rebuild here and reproduce their outputs, and our pickles use its layout.
"""
import numpy as np
import scipy.signal
import scipy.special
import torch

from plugin.persistence import persistent_class
from torch_utils_ext.ops.filtered_lrelu import filtered_lrelu

from . import layers

FAMILY = 'stylegan3.networks'


@persistent_class(FAMILY)
class FullyConnectedLayer(layers.FullyConnectedLayer):
    """The StyleGAN2 equalised-lr dense layer (same forward) with stylegan3's constructor:
    an initial weight scale, and a per-feature initial bias."""

    def __init__(self,
        in_features,                # Input width.
        out_features,               # Output width.
        activation      = 'linear', # Activation after the bias: 'linear', 'lrelu', ...
        bias            = True,     # Learn an additive bias?
        lr_multiplier   = 1,        # Learning-rate multiplier (equalised lr).
        weight_init     = 1,        # Initial weight scale (0 starts the layer at its bias).
        bias_init       = 0,        # Initial bias: a scalar or one value per output feature.
    ):
        super().__init__(in_features, out_features, bias=bias, activation=activation, lr_multiplier=lr_multiplier)
        with torch.no_grad():
            self.weight.mul_(weight_init)
            if self.bias is not None:
                init = torch.as_tensor(np.asarray(bias_init, dtype=np.float32)).broadcast_to([out_features])
                self.bias.copy_(init / lr_multiplier)


@persistent_class(FAMILY)
class MappingNetwork(layers.MappingNetwork):
    """z (and label c, embedded) -> w: the StyleGAN2 mapping with stylegan3's options. Both
    inputs are normalised to unit second moment; ``w_avg`` moves only when ``update_emas``."""

    fc_class = FullyConnectedLayer

    def __init__(self,
        z_dim,                      # Latent z width.
        c_dim,                      # Label width; 0 = unconditional.
        w_dim,                      # Intermediate latent w width.
        num_ws,                     # How many copies of w the synthesis network consumes.
        num_layers      = 2,        # Dense layers after the input normalisation.
        lr_multiplier   = 0.01,     # Learning-rate multiplier of those layers.
        w_avg_beta      = 0.998,    # Decay of the running mean of w (truncation's centre).
    ):
        super().__init__(z_dim, c_dim, w_dim, num_ws, num_layers=num_layers, lr_multiplier=lr_multiplier,
                         w_avg_beta=w_avg_beta)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        return super().forward(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                               update_emas=bool(update_emas))


def _size2(size):
    """int64 [width, height] from an int or a pair (the host keeps sizes as numpy arrays)."""
    return np.array(np.broadcast_to(np.asarray(size, dtype=np.int64), [2]))


@persistent_class(FAMILY)
class SynthesisInput(torch.nn.Module):
    """Fourier features: ``channels`` sinusoids with fixed random frequencies (uniform over a
    disc of radius ``bandwidth``) and phases, sampled on a ``size`` grid at ``sampling_rate``.

    ``w`` sets a per-sample rotation and translation of the features (an affine initialised to
    the identity). The ``transform`` buffer is a further user transform, the inverse of the
    wanted image transform (as gen_images.py sets it); frequencies it pushes beyond the band
    are faded out rather than aliased.
    """

    def __init__(self,
        w_dim,          # Intermediate latent w width.
        channels,       # Number of Fourier features (output channels).
        size,           # Output size: int or [width, height], margin included.
        sampling_rate,  # Samples per unit length of the output grid.
        bandwidth,      # Radius of the frequency disc.
    ):
        super().__init__()
        self.w_dim = w_dim
        self.channels = channels
        self.size = _size2(size)
        self.sampling_rate = sampling_rate
        self.bandwidth = bandwidth

        # Frequencies: Gaussian directions, radii remapped so the points fill the disc evenly
        # (with the host's random draws and rounding: a seed gives the host's features).
        freqs = torch.randn([channels, 2])
        radii = torch.sqrt((freqs * freqs).sum(dim=1, keepdim=True))
        freqs = freqs / (radii * torch.exp(radii.square()) ** 0.25) * bandwidth
        phases = torch.rand([channels]) - 0.5

        self.weight = torch.nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        self.register_buffer('transform', torch.eye(3, 3))
        self.register_buffer('freqs', freqs)
        self.register_buffer('phases', phases)

    def forward(self, w):
        batch = w.shape[0]
        # (cos, sin, tx, ty) of the learned transform, the rotation part normalised to unit length.
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        cos, sin, tx, ty = t.unbind(dim=1)
        one, zero = torch.ones_like(cos), torch.zeros_like(cos)
        rotate = torch.stack([cos, -sin, zero, sin, cos, zero, zero, zero, one], dim=1).reshape(batch, 3, 3)
        translate = torch.stack([one, zero, -tx, zero, one, -ty, zero, zero, one], dim=1).reshape(batch, 3, 3)
        # Inverse transforms of the image coordinates: rotate, then translate, then the user's.
        m = rotate @ translate @ self.transform.unsqueeze(0)

        # A point p maps to m p, so sin(2 pi (f . (A p + t) + phase)) has frequency f A and
        # phase phase + f . t.
        freqs = self.freqs.unsqueeze(0) @ m[:, :2, :2]                     # [N, C, 2]
        phases = self.phases.unsqueeze(0) + (self.freqs.unsqueeze(0) @ m[:, :2, 2:]).squeeze(2)
        fade = (self.sampling_rate / 2 - self.bandwidth)
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / fade).clamp(0, 1)

        # Pixel centres, in units of the sampling period, centred on the image (y down).
        width, height = int(self.size[0]), int(self.size[1])
        xs = (torch.arange(width, device=w.device, dtype=torch.float32) + (0.5 - width / 2)) / self.sampling_rate
        ys = (torch.arange(height, device=w.device, dtype=torch.float32) + (0.5 - height / 2)) / self.sampling_rate
        arg = (xs.reshape(1, 1, -1, 1) * freqs[:, :, 0].reshape(batch, 1, 1, -1)
               + ys.reshape(1, -1, 1, 1) * freqs[:, :, 1].reshape(batch, 1, 1, -1)
               + phases.reshape(batch, 1, 1, -1))                         # [N, H, W, C]
        x = torch.sin(arg * (2 * np.pi)) * amplitudes.reshape(batch, 1, 1, -1)

        # A learned channel mix (equalised lr), then NCHW.
        x = x @ (self.weight / np.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2)

    def extra_repr(self):
        return (f'w_dim={self.w_dim}, channels={self.channels}, size={list(self.size)}, '
                f'sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}')


def lowpass_filter(numtaps, cutoff, width, fs, radial=False):
    """Kaiser-windowed low-pass FIR filter (float32), or None for one tap (the identity).

    Separable: the 1D windowed sinc that ``scipy.signal.firwin`` designs for a transition band
    of ``width`` around ``cutoff``. Radial: the 2D analogue, a jinc (the inverse Fourier
    transform of a disc of radius ``cutoff``) under the outer product of the same Kaiser
    window, normalised to unit DC gain.
    """
    if numtaps < 1:
        raise ValueError(f'a filter needs at least one tap, got {numtaps}')
    if numtaps == 1:
        return None
    if not radial:
        return torch.as_tensor(scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs),
                               dtype=torch.float32)
    t = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(t, t))
    with np.errstate(invalid='ignore', divide='ignore'):
        jinc = scipy.special.j1(2 * np.pi * cutoff * r) / (np.pi * r)
    jinc[r == 0] = cutoff                  # the limit at the centre (odd numtaps only)
    atten = scipy.signal.kaiser_atten(numtaps, width / (fs / 2))
    window = np.kaiser(numtaps, scipy.signal.kaiser_beta(atten))
    f = jinc * np.outer(window, window)
    return torch.as_tensor(f / f.sum(), dtype=torch.float32)


def magnitude_input_gain(layer, x, update_emas):
    """The gain that normalises an alias-free ``layer``'s input ``x`` by its running RMS: after
    checking x's shape against the layer's ``in_channels``/``in_size``, its ``magnitude_ema`` (the
    running mean square of the input, tracked in float32 outside the graph, decay
    ``magnitude_ema_beta``) moves toward x's when ``update_emas``; returns ``magnitude_ema ** -0.5``.
    (Also the hyper-modulated twin's, training_ext.hypermod.networks.)"""
    want = (layer.in_channels, int(layer.in_size[1]), int(layer.in_size[0]))
    if x.ndim != 4 or tuple(x.shape[1:]) != want:
        raise ValueError(f'{type(layer).__name__}: input of shape [N, {", ".join(map(str, want))}] expected, '
                         f'got {list(x.shape)}')
    if update_emas:
        with torch.no_grad():
            sq = x.detach().to(torch.float32).square().mean()
            layer.magnitude_ema.copy_(sq.lerp(layer.magnitude_ema, layer.magnitude_ema_beta))
    return layer.magnitude_ema.rsqrt()


@persistent_class(FAMILY)
class SynthesisLayer(torch.nn.Module):
    """Modulated convolution + filtered leaky ReLU between two sampling grids.

    The input, sampled at ``in_sampling_rate`` and band-limited to ``in_cutoff``, is convolved
    (no padding: the margin shrinks), upsampled to ``tmp_sampling_rate`` through a low-pass at
    ``in_cutoff``, passed through the leaky ReLU there, low-passed at ``out_cutoff`` and
    decimated to ``out_sampling_rate``. The padding aligns the output grid's samples with the
    input's (pixel centres in the middle of each pixel) and yields exactly ``out_size``. The
    final ToRGB layer is a plain 1x1 modulated conv with bias (no filters, no nonlinearity).
    """

    def __init__(self,
        w_dim,                          # Intermediate latent w width.
        is_torgb,                       # The final ToRGB layer (linear, no filters)?
        is_critically_sampled,          # Cutoff at the Nyquist rate (the last layers)?
        use_fp16,                       # Compute in float16 (on CUDA only)?
        in_channels,                    # Input channels.
        out_channels,                   # Output channels.
        in_size,                        # Input size: int or [width, height].
        out_size,                       # Output size: int or [width, height].
        in_sampling_rate,               # Input samples per unit length.
        out_sampling_rate,              # Output samples per unit length.
        in_cutoff,                      # Cutoff of the input's band.
        out_cutoff,                     # Cutoff of the output's band.
        in_half_width,                  # Half-width of the input filter's transition band.
        out_half_width,                 # Half-width of the output filter's transition band.
        conv_kernel         = 3,        # Conv kernel size (ToRGB: always 1).
        filter_size         = 6,        # Filter taps per sample of the lower of the two rates.
        lrelu_upsampling    = 2,        # How much faster than the output the nonlinearity is sampled.
        use_radial_filters  = False,    # Radial (jinc) downsampling filter, unless critically sampled (-R).
        conv_clamp          = 256,      # Clamp the output to [-conv_clamp, conv_clamp]; None = no clamp.
        magnitude_ema_beta  = 0.999,    # Decay of the running mean square of the input.
    ):
        super().__init__()
        self.w_dim = w_dim
        self.is_torgb = is_torgb
        self.is_critically_sampled = is_critically_sampled
        self.use_fp16 = use_fp16
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.in_size = _size2(in_size)
        self.out_size = _size2(out_size)
        self.in_sampling_rate = in_sampling_rate
        self.out_sampling_rate = out_sampling_rate
        oversampling = 1 if is_torgb else lrelu_upsampling         # ToRGB is linear: nothing to oversample
        self.tmp_sampling_rate = max(in_sampling_rate, out_sampling_rate) * oversampling
        self.in_cutoff = in_cutoff
        self.out_cutoff = out_cutoff
        self.in_half_width = in_half_width
        self.out_half_width = out_half_width
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp = conv_clamp
        self.magnitude_ema_beta = magnitude_ema_beta

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer('magnitude_ema', torch.ones([]))

        # Upsampling filter: interpolates the input band (in_cutoff) at the temporary rate.
        self.up_factor = self._rate_ratio(self.tmp_sampling_rate, in_sampling_rate, 'input')
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        self.register_buffer('up_filter', lowpass_filter(self.up_taps, in_cutoff, in_half_width * 2,
                                                         self.tmp_sampling_rate))
        # Downsampling filter: removes what the nonlinearity put above out_cutoff.
        self.down_factor = self._rate_ratio(self.tmp_sampling_rate, out_sampling_rate, 'output')
        self.down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.down_radial = use_radial_filters and not is_critically_sampled
        self.register_buffer('down_filter', lowpass_filter(self.down_taps, out_cutoff, out_half_width * 2,
                                                           self.tmp_sampling_rate, radial=self.down_radial))

        # Padding (negative: cropping) after zero insertion: the samples needed before the
        # final decimation, minus what the conv and the upsampling give, plus what the two
        # 'valid' filters consume; split so that sample centres stay aligned (paper App. C.3).
        need = (self.out_size - 1) * self.down_factor + 1
        have = (self.in_size + self.conv_kernel - 1) * self.up_factor
        total = need - have + self.up_taps + self.down_taps - 2
        lo = (total + self.up_factor) // 2
        hi = total - lo
        self.padding = [int(lo[0]), int(hi[0]), int(lo[1]), int(hi[1])]

    @staticmethod
    def _rate_ratio(high, low, what):
        factor = int(np.rint(high / low))
        if low * factor != high:
            raise ValueError(f'the {what} sampling rate {low} does not divide the nonlinearity\'s rate {high}')
        return factor

    design_lowpass_filter = staticmethod(lowpass_filter)     # the host's name for the filter design

    def forward(self, x, w, noise_mode='random', force_fp32=False, update_emas=False):
        if noise_mode not in ('random', 'const', 'none'):     # accepted for the host's interface; no noise here
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
        input_gain = magnitude_input_gain(self, x, update_emas)

        styles = self.affine(w)
        if self.is_torgb:
            styles = styles * (1 / np.sqrt(self.in_channels * self.conv_kernel ** 2))
        dtype = torch.float16 if self.use_fp16 and not force_fp32 and x.device.type == 'cuda' else torch.float32
        x = layers.modulated_conv2d(x.to(dtype), self.weight, styles, padding=self.conv_kernel - 1,
                                    demodulate=not self.is_torgb, input_gain=input_gain)

        x = filtered_lrelu(x, fu=self.up_filter, fd=self.down_filter, b=self.bias.to(x.dtype), up=self.up_factor,
                           down=self.down_factor, padding=self.padding, gain=1 if self.is_torgb else np.sqrt(2),
                           slope=1 if self.is_torgb else 0.2, clamp=self.conv_clamp)
        return x

    def extra_repr(self):
        return (f'w_dim={self.w_dim}, is_torgb={self.is_torgb}, is_critically_sampled={self.is_critically_sampled}, '
                f'in_size={list(self.in_size)}, out_size={list(self.out_size)}, '
                f'in_sampling_rate={self.in_sampling_rate:g}, out_sampling_rate={self.out_sampling_rate:g}, '
                f'in_cutoff={self.in_cutoff:g}, out_cutoff={self.out_cutoff:g}, '
                f'in_channels={self.in_channels}, out_channels={self.out_channels}')


def layer_schedule(img_resolution, img_channels, channel_base, channel_max, num_layers, num_critical, first_cutoff,
                   first_stopband, last_stopband_rel, margin_size):
    """The per-layer design of the synthesis network (paper sec. 3.2 and App. F), as numpy
    arrays over the ``num_layers + 1`` layer outputs (index 0 is also the Fourier input):
    cutoffs, stopbands, sampling rates, transition half-widths, sizes and channels.

    Cutoffs f_c and minimum stopbands f_t grow geometrically from the first layer to the
    image's Nyquist frequency (``img_resolution / 2``, stopband ``last_stopband_rel`` times
    that), which the last ``num_critical`` layers keep. A layer samples at the smallest power
    of two >= 2 f_t (at most the image resolution) and carries ``margin_size`` extra pixels on
    each side, except the last two, which are the image.
    """
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    progress = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** progress
    stopbands = first_stopband * (last_stopband / first_stopband) ** progress
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum(channel_base / 2 / cutoffs, channel_max))
    channels[-1] = img_channels
    return dict(cutoffs=cutoffs, stopbands=stopbands, sampling_rates=sampling_rates, half_widths=half_widths,
                sizes=sizes, channels=channels)


@persistent_class(FAMILY)
class SynthesisNetwork(torch.nn.Module):
    """Fourier features, ``num_layers`` alias-free layers and ToRGB; ``ws[:, 0]`` drives the
    input's transform and ``ws[:, 1 + i]`` layer i (``num_ws = num_layers + 2``)."""

    def __init__(self,
        w_dim,                          # Intermediate latent w width.
        img_resolution,                 # Output image size.
        img_channels,                   # Output image channels.
        channel_base        = 32768,    # Channels are channel_base / 2 / cutoff ...
        channel_max         = 512,      # ... at most channel_max.
        num_layers          = 14,       # Alias-free layers (Fourier input and ToRGB not counted).
        num_critical        = 2,        # Critically sampled layers at the end.
        first_cutoff        = 2,        # Cutoff of the first layer (and the input's bandwidth).
        first_stopband      = 2**2.1,   # Minimum stopband of the first layer.
        last_stopband_rel   = 2**0.3,   # Minimum stopband of the last layer, relative to its cutoff.
        margin_size         = 10,       # Extra pixels on each side of the image in the early layers.
        output_scale        = 0.25,     # Scale of ToRGB's output.
        num_fp16_res        = 4,        # Layers sampled above img_resolution / 2**num_fp16_res use fp16 (CUDA).
        **layer_kwargs,                 # For SynthesisLayer: conv_kernel, use_radial_filters, conv_clamp, ...
    ):
        super().__init__()
        self.w_dim = w_dim
        self.num_ws = num_layers + 2
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.num_layers = num_layers
        self.num_critical = num_critical
        self.margin_size = margin_size
        self.output_scale = output_scale
        self.num_fp16_res = num_fp16_res

        d = layer_schedule(img_resolution, img_channels, channel_base, channel_max, num_layers, num_critical,
                           first_cutoff, first_stopband, last_stopband_rel, margin_size)
        rates, sizes, channels = d['sampling_rates'], d['sizes'], d['channels']
        cutoffs, half_widths = d['cutoffs'], d['half_widths']
        self.input = SynthesisInput(w_dim=w_dim, channels=int(channels[0]), size=int(sizes[0]),
                                    sampling_rate=rates[0], bandwidth=cutoffs[0])
        self.layer_names = []
        for idx in range(num_layers + 1):
            prev = max(idx - 1, 0)
            layer = SynthesisLayer(
                w_dim=w_dim, is_torgb=(idx == num_layers), is_critically_sampled=(idx >= num_layers - num_critical),
                use_fp16=(rates[idx] * 2 ** num_fp16_res > img_resolution),
                in_channels=int(channels[prev]), out_channels=int(channels[idx]),
                in_size=int(sizes[prev]), out_size=int(sizes[idx]),
                in_sampling_rate=int(rates[prev]), out_sampling_rate=int(rates[idx]),
                in_cutoff=cutoffs[prev], out_cutoff=cutoffs[idx],
                in_half_width=half_widths[prev], out_half_width=half_widths[idx], **layer_kwargs)
            self.layer_names.append(f'L{idx}_{int(layer.out_size[0])}_{layer.out_channels}')
            setattr(self, self.layer_names[-1], layer)

    def forward(self, ws, **layer_kwargs):
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f'synthesis expects ws of shape [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}')
        w_input, *w_layers = ws.to(torch.float32).unbind(dim=1)
        x = self.input(w_input)
        for name, w in zip(self.layer_names, w_layers):
            x = getattr(self, name)(x, w, **layer_kwargs)
        return (x * self.output_scale if self.output_scale != 1 else x).to(torch.float32)

    def extra_repr(self):
        return (f'w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, '
                f'img_channels={self.img_channels}, num_layers={self.num_layers}, num_critical={self.num_critical}, '
                f'margin_size={self.margin_size}, num_fp16_res={self.num_fp16_res}')


@persistent_class(FAMILY)
class Generator(torch.nn.Module):
    """Mapping + alias-free synthesis. The synthesis options are flattened into the
    generator's kwargs (``channel_base=...``), as the host stores them."""

    def __init__(self,
        z_dim,                      # Latent z width.
        c_dim,                      # Label width; 0 = unconditional.
        w_dim,                      # Intermediate latent w width.
        img_resolution,             # Output image size.
        img_channels,               # Output image channels.
        mapping_kwargs      = {},   # For MappingNetwork.
        **synthesis_kwargs,         # For SynthesisNetwork (and its layers).
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)


__all__ = ['FullyConnectedLayer', 'Generator', 'MappingNetwork', 'SynthesisInput', 'SynthesisLayer',
           'SynthesisNetwork', 'layer_schedule', 'lowpass_filter', 'magnitude_input_gain']
