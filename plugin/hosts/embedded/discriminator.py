"""Discriminator of the embedded host (StyleGAN2, with the host's Freeze-D and cmap conditioning)."""
import math

import torch

from plugin.persistence import persistent_class
from torch_utils_ext.ops.upfirdn2d import downsample2d, setup_filter

from .generator import ARCHITECTURES, block_dtype, block_resolutions, fp16_min_resolution
from .layers import FAMILY, Conv2dLayer, FullyConnectedLayer, MappingNetwork, MinibatchStdLayer


@persistent_class(FAMILY)
class DiscriminatorBlock(torch.nn.Module):
    conv_class = Conv2dLayer                 # the class it builds (a host variant's module substitutes its own)

    def __init__(self,
        in_channels,                        # Input feature channels; 0 = first block (image input only).
        tmp_channels,                       # Channels of the intermediate layers.
        out_channels,                       # Output feature channels.
        resolution,                         # Input resolution of this block (it halves it).
        img_channels,                       # Image channels (for fromrgb).
        first_layer_idx,                    # Index of this block's first layer, counted from the image.
        architecture       = 'resnet',      # 'orig', 'skip' or 'resnet'.
        activation         = 'lrelu',       # Activation function name.
        resample_filter    = [1, 3, 3, 1],  # Low-pass filter taps applied when downsampling.
        conv_clamp         = None,          # Clamp conv outputs to +-this value; None = no clamping.
        use_fp16           = False,         # Run this block in fp16.
        fp16_channels_last = False,         # Use channels-last memory format when in fp16.
        freeze_layers      = 0,             # Freeze-D: layers with index < this are frozen; 0 = none.
    ):
        super().__init__()
        if in_channels not in (0, tmp_channels):
            raise ValueError(f'in_channels must be 0 or tmp_channels ({tmp_channels}), got {in_channels}')
        if architecture not in ARCHITECTURES:
            raise ValueError(f'architecture must be one of {ARCHITECTURES}, got {architecture!r}')
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer('resample_filter', setup_filter(resample_filter))

        # Freeze-D counts layers from the input image: layer k is frozen when k < freeze_layers.
        self.num_layers = 0

        def next_trainable():
            trainable = first_layer_idx + self.num_layers >= freeze_layers
            self.num_layers += 1
            return trainable

        common = dict(activation=activation, conv_clamp=conv_clamp, channels_last=self.channels_last)
        if in_channels == 0 or architecture == 'skip':
            self.fromrgb = self.conv_class(img_channels, tmp_channels, kernel_size=1, trainable=next_trainable(),
                                           **common)
        self.conv0 = self.conv_class(tmp_channels, tmp_channels, kernel_size=3, trainable=next_trainable(), **common)
        self.conv1 = self.conv_class(tmp_channels, out_channels, kernel_size=3, down=2, trainable=next_trainable(),
                                     resample_filter=resample_filter, **common)
        if architecture == 'resnet':
            self.skip = self.conv_class(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                        trainable=next_trainable(), resample_filter=resample_filter,
                                        channels_last=self.channels_last)

    def forward(self, x, img, force_fp32=False):
        dtype = block_dtype(self.use_fp16, force_fp32)
        fmt = torch.channels_last if self.channels_last and not force_fp32 else torch.contiguous_format
        if x is not None:
            x = x.to(dtype=dtype, memory_format=fmt)
        if self.in_channels == 0 or self.architecture == 'skip':
            img = img.to(dtype=dtype, memory_format=fmt)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = downsample2d(img, self.resample_filter) if self.architecture == 'skip' else None
        if self.architecture == 'resnet':
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=math.sqrt(0.5))
            x = y.add_(x)
        else:
            x = self.conv1(self.conv0(x))
        return x, img


@persistent_class(FAMILY)
class DiscriminatorEpilogue(torch.nn.Module):
    conv_class, fc_class, mbstd_class = Conv2dLayer, FullyConnectedLayer, MinibatchStdLayer

    def __init__(self,
        in_channels,                    # Input feature channels.
        cmap_dim,                       # Conditioning map width; 0 = unconditional (one score).
        resolution,                     # Input resolution (4).
        img_channels,                   # Image channels (for fromrgb).
        architecture       = 'resnet',  # 'orig', 'skip' or 'resnet'.
        mbstd_group_size   = 4,         # Minibatch-std group size (capped at the batch); None = whole batch.
        mbstd_num_channels = 1,         # Minibatch-std feature channels; 0 = no minibatch-std layer.
        activation         = 'lrelu',   # Activation function name.
        conv_clamp         = None,      # Clamp conv outputs to +-this value; None = no clamping.
    ):
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture
        if architecture == 'skip':
            self.fromrgb = self.conv_class(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = self.mbstd_class(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = self.conv_class(in_channels + mbstd_num_channels, in_channels, kernel_size=3,
                                    activation=activation, conv_clamp=conv_clamp)
        self.fc = self.fc_class(in_channels * resolution ** 2, in_channels, activation=activation)
        self.out = self.fc_class(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x, img, cmap, force_fp32=False):
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.architecture == 'skip':
            x = x + self.fromrgb(img.to(torch.float32))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if cmap is not None:
            # Projection conditioning: the score is the scaled dot product with the label's map.
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x


@persistent_class(FAMILY)
class Discriminator(torch.nn.Module):
    block_class, mapping_class, epilogue_class = DiscriminatorBlock, MappingNetwork, DiscriminatorEpilogue

    def __init__(self,
        c_dim,                       # Label width; 0 = unconditional.
        img_resolution,              # Input image size; a power of two >= 4.
        img_channels,                # Input image channels.
        architecture    = 'resnet',  # 'orig', 'skip' or 'resnet'.
        channel_base    = 32768,     # Channels at resolution r: min(channel_base // r, channel_max).
        channel_max     = 512,       # Maximum channels of any block.
        num_fp16_res    = 0,         # Number of highest-resolution blocks in fp16 (none below 8 px); 0 = none.
        conv_clamp      = None,      # Clamp conv outputs to +-this value; None = no clamping.
        cmap_dim        = None,      # Conditioning map width; None = channels at 4x4; 0 if c_dim == 0.
        block_kwargs    = {},        # For DiscriminatorBlock.
        mapping_kwargs  = {},        # For MappingNetwork (the label embedding).
        epilogue_kwargs = {},        # For DiscriminatorEpilogue.
    ):
        super().__init__()
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.block_resolutions = block_resolutions(img_resolution)[::-1][:-1]   # R, R/2, ..., 8
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        fp16_res = fp16_min_resolution(img_resolution, num_fp16_res)
        if cmap_dim is None:
            cmap_dim = channels[4]
        if c_dim == 0:
            cmap_dim = 0
        self.cmap_dim = cmap_dim
        common = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        layer_idx = 0
        for res in self.block_resolutions:
            block = self.block_class(channels[res] if res < img_resolution else 0, channels[res], channels[res // 2],
                                     resolution=res, first_layer_idx=layer_idx, use_fp16=(res >= fp16_res),
                                     **block_kwargs, **common)
            setattr(self, f'b{res}', block)
            layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = self.mapping_class(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                              **mapping_kwargs)
        self.b4 = self.epilogue_class(channels[4], cmap_dim=cmap_dim, resolution=4, **epilogue_kwargs, **common)

    def forward(self, img, c, update_emas=None, **block_kwargs):
        if img.ndim != 4 or tuple(img.shape[1:]) != (self.img_channels, self.img_resolution, self.img_resolution):
            raise ValueError(f'discriminator expects images of shape [N, {self.img_channels}, {self.img_resolution}, '
                             f'{self.img_resolution}], got {tuple(img.shape)}')
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f'b{res}')(x, img, **block_kwargs)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap)
