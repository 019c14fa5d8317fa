"""Building-block layers of the embedded (clean-room) StyleGAN2-ADA host.

Constructor arguments, parameter and buffer names, shapes and outputs are those of the
host's ``training/networks.py`` so that weights copy by name in both directions and host
pickles reproduce their outputs. All layers use equalised learning rate: weights are stored
as N(0, 1) and scaled at run time by ``1/sqrt(fan_in)`` (times a learning-rate multiplier).
"""
import math

import torch

from plugin.persistence import persistent_class
from torch_utils_ext.ops import default_impl
from torch_utils_ext.ops.bias_act import bias_act, default_gain
from torch_utils_ext.ops.conv2d_resample import conv2d_resample
from torch_utils_ext.ops.upfirdn2d import setup_filter

FAMILY = 'stylegan2.networks'


def normalize_2nd_moment(x, dim=1, eps=1e-8):
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def _register_filter(module, resample_filter):
    # Registered as a buffer (not a constant) because the host's pickles carry it.
    module.register_buffer('resample_filter', setup_filter(resample_filter))


@persistent_class(FAMILY)
class FullyConnectedLayer(torch.nn.Module):
    def __init__(self,
        in_features,               # Input width.
        out_features,              # Output width.
        bias          = True,      # Add a learned bias; False = none.
        activation    = 'linear',  # Activation function name; 'linear' = none.
        lr_multiplier = 1,         # Learning-rate multiplier (weights stored divided by it, scaled at run time).
        bias_init     = 0,         # Initial value of the bias.
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = float(lr_multiplier / math.sqrt(in_features))
        self.bias_gain = float(lr_multiplier)

    def forward(self, x):
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == 'linear' and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation, impl=default_impl())

    def extra_repr(self):
        return f'in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}'


@persistent_class(FAMILY)
class Conv2dLayer(torch.nn.Module):
    """Equalised-lr conv with optional FIR up/downsampling; ``trainable=False`` stores the
    weight and bias as buffers under the same names (the host's Freeze-D)."""

    def __init__(self,
        in_channels,                     # Input channels.
        out_channels,                    # Output channels.
        kernel_size,                     # Square kernel width; padding is kernel_size // 2.
        bias            = True,          # Add a learned bias; False = none.
        activation      = 'linear',      # Activation function name; 'linear' = none.
        up              = 1,             # Integer upsampling factor; 1 = none.
        down            = 1,             # Integer downsampling factor; 1 = none.
        resample_filter = [1, 3, 3, 1],  # Low-pass filter taps for up/downsampling.
        conv_clamp      = None,          # Clamp outputs to +-this value (times gain); None = no clamping.
        channels_last   = False,         # Store the weight in channels-last memory format.
        trainable       = True,          # False = weight and bias are buffers, not parameters (Freeze-D).
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        _register_filter(self, resample_filter)
        self.padding = kernel_size // 2
        self.weight_gain = float(1 / math.sqrt(in_channels * kernel_size ** 2))
        self.act_gain = default_gain(activation)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        bias = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = torch.nn.Parameter(weight)
            self.bias = torch.nn.Parameter(bias) if bias is not None else None
        else:
            self.register_buffer('weight', weight)
            if bias is not None:
                self.register_buffer('bias', bias)
            else:
                self.bias = None

    def forward(self, x, gain=1):
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample(x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down,
                            padding=self.padding, flip_weight=(self.up == 1))
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp, impl=default_impl())


@persistent_class(FAMILY)
class MappingNetwork(torch.nn.Module):
    """z (and optional label c) -> w, broadcast to ``num_ws`` copies, with truncation."""

    fc_class = FullyConnectedLayer          # the class it builds (a host variant's module substitutes its own)

    def __init__(self,
        z_dim,                     # Latent z width; 0 = no z input.
        c_dim,                     # Label width; 0 = unconditional.
        w_dim,                     # Intermediate latent w width.
        num_ws,                    # Copies of w to broadcast to; None = return [N, w_dim].
        num_layers     = 8,        # Number of fully-connected layers.
        embed_features = None,     # Label embedding width; None = w_dim (0 when c_dim == 0).
        layer_features = None,     # Hidden layer width; None = w_dim.
        activation     = 'lrelu',  # Activation function name.
        lr_multiplier  = 0.01,     # Learning-rate multiplier of the layers.
        w_avg_beta     = 0.995,    # Decay of the tracked w average; None = no w_avg (no truncation).
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = self.fc_class(c_dim, embed_features)
        for idx in range(num_layers):
            layer = self.fc_class(features[idx], features[idx + 1], activation=activation,
                                  lr_multiplier=lr_multiplier)
            setattr(self, f'fc{idx}', layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer('w_avg', torch.zeros([w_dim]))

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, skip_w_avg_update=False, update_emas=None):
        # update_emas is stylegan3's name for (not skip_w_avg_update); both are accepted.
        parts = []
        if self.z_dim > 0:
            parts.append(normalize_2nd_moment(z.to(torch.float32)))
        if self.c_dim > 0:
            parts.append(normalize_2nd_moment(self.embed(c.to(torch.float32))))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for idx in range(self.num_layers):
            x = getattr(self, f'fc{idx}')(x)

        update = self.training and not skip_w_avg_update if update_emas is None else update_emas
        if self.w_avg_beta is not None and update and hasattr(self, 'w_avg'):
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError('truncation needs w_avg, but this mapping network does not track it')
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x = x.clone()
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

    def extra_repr(self):
        return f'z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}'


def modulated_conv2d(x, weight, styles, noise=None, up=1, down=1, padding=0, resample_filter=None,
                     demodulate=True, flip_weight=True, fused_modconv=True, input_gain=None):
    """StyleGAN2's modulated convolution: scale input channels by per-sample styles, convolve,
    and (with ``demodulate``) rescale each output channel to unit expected variance.

    ``input_gain`` (a scalar tensor, [in] or [N, in]) scales the input channels after
    demodulation, so demodulation does not undo it: StyleGAN3 divides by the RMS of the layer's
    input this way (its ``magnitude_ema``).

    Fused: the per-sample weights are built explicitly and applied as one grouped conv.
    Non-fused: styles scale the activations and demodulation scales the output, so the
    weight stays shared across the batch (faster in training, less memory).
    """
    batch, in_ch = x.shape[0], weight.shape[1]
    out_ch, _, kh, kw = weight.shape

    if x.dtype == torch.float16 and demodulate:
        # Pre-normalise so the fp16 products cannot overflow; demodulation undoes the scale.
        weight = weight * (1 / math.sqrt(in_ch * kh * kw) / weight.norm(float('inf'), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float('inf'), dim=1, keepdim=True)

    w = None
    dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1)
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()

    if input_gain is not None:
        input_gain = input_gain.to(styles.dtype).expand(batch, in_ch)

    if not fused_modconv:
        in_scale = styles if input_gain is None else styles * input_gain
        x = x * in_scale.to(x.dtype).reshape(batch, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                            flip_weight=flip_weight)
        if demodulate and noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(batch, -1, 1, 1))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(batch, -1, 1, 1)
        if noise is not None:
            return x.add_(noise.to(x.dtype))      # x is the conv's fresh output: in place is safe
        return x

    if demodulate:
        w = w * dcoefs.reshape(batch, -1, 1, 1, 1)
    if input_gain is not None:
        w = w * input_gain.reshape(batch, 1, -1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_ch, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                        groups=batch, flip_weight=flip_weight)
    x = x.reshape(batch, -1, *x.shape[2:])
    if noise is not None:
        x = x.add_(noise)
    return x


@persistent_class(FAMILY)
class SynthesisLayer(torch.nn.Module):
    fc_class = FullyConnectedLayer

    def __init__(self,
        in_channels,                     # Input channels.
        out_channels,                    # Output channels.
        w_dim,                           # Intermediate latent w width.
        resolution,                      # Output resolution (the size of the noise map).
        kernel_size     = 3,             # Square kernel width.
        up              = 1,             # Integer upsampling factor; 1 = none.
        use_noise       = True,          # Add per-pixel noise with a learned strength.
        activation      = 'lrelu',       # Activation function name.
        resample_filter = [1, 3, 3, 1],  # Low-pass filter taps for upsampling.
        conv_clamp      = None,          # Clamp outputs to +-this value (times gain); None = no clamping.
        channels_last   = False,         # Store the weight in channels-last memory format.
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        _register_filter(self, resample_filter)
        self.padding = kernel_size // 2
        self.act_gain = default_gain(activation)
        self.affine = self.fc_class(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format))
        if use_noise:
            self.register_buffer('noise_const', torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x, w, noise_mode='random', fused_modconv=True, gain=1):
        if noise_mode not in ('random', 'const', 'none'):
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == 'random':
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device) * self.noise_strength
        elif self.use_noise and noise_mode == 'const':
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1),
                             fused_modconv=fused_modconv)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain, clamp=clamp,
                        impl=default_impl())


@persistent_class(FAMILY)
class ToRGBLayer(torch.nn.Module):
    fc_class = FullyConnectedLayer

    def __init__(self,
        in_channels,            # Input feature channels.
        out_channels,           # Image channels.
        w_dim,                  # Intermediate latent w width.
        kernel_size   = 1,      # Square kernel width (no padding).
        conv_clamp    = None,   # Clamp outputs to +-this value; None = no clamping.
        channels_last = False,  # Store the weight in channels-last memory format.
    ):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = self.fc_class(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = float(1 / math.sqrt(in_channels * kernel_size ** 2))

    def forward(self, x, w, fused_modconv=True):
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp, impl=default_impl())


@persistent_class(FAMILY)
class MinibatchStdLayer(torch.nn.Module):
    """Appends the across-group standard deviation of features as extra channels.

    Groups are strided: with n = N / G groups, sample i belongs to group i mod n.
    """

    def __init__(self,
        group_size,        # Samples per group, capped at the batch (must divide it); None = whole batch.
        num_channels = 1,  # Statistic channels appended; must divide the input channels.
    ):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x):
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        if n % g != 0:
            raise ValueError(f'minibatch-stddev group size {g} does not divide the batch size {n}')
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1)
        return torch.cat([x, y.repeat(g, 1, h, w)], dim=1)
