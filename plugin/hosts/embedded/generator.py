"""Generator of the embedded host: mapping network + synthesis network (StyleGAN2)."""
import math

import torch

from plugin.persistence import persistent_class
from torch_utils_ext.ops.upfirdn2d import setup_filter, upsample2d

from .layers import FAMILY, Conv2dLayer, MappingNetwork, SynthesisLayer, ToRGBLayer

ARCHITECTURES = ('orig', 'skip', 'resnet')


def block_resolutions(img_resolution):
    """[4, 8, ..., img_resolution]; the resolution must be a power of two >= 4."""
    log2 = int(math.log2(img_resolution)) if img_resolution > 0 else 0
    if img_resolution < 4 or 2 ** log2 != img_resolution:
        raise ValueError(f'resolution must be a power of two >= 4, got {img_resolution}')
    return [2 ** i for i in range(2, log2 + 1)]


def fp16_min_resolution(img_resolution, num_fp16_res):
    """Blocks at this resolution and above run in fp16 (never below 8 px)."""
    return max(2 ** (int(math.log2(img_resolution)) + 1 - num_fp16_res), 8)


def block_dtype(use_fp16, force_fp32):
    return torch.float16 if use_fp16 and not force_fp32 else torch.float32


@persistent_class(FAMILY)
class SynthesisBlock(torch.nn.Module):
    # The classes it builds (a host variant's module substitutes its own).
    layer_class, torgb_class, skip_class = SynthesisLayer, ToRGBLayer, Conv2dLayer

    def __init__(self,
        in_channels,                        # Input feature channels; 0 = first block (learned constant input).
        out_channels,                       # Output feature channels.
        w_dim,                              # Intermediate latent w width.
        resolution,                         # Output resolution of this block (it doubles its input).
        img_channels,                       # Output image channels (for toRGB).
        is_last,                            # Final block: always has a toRGB.
        architecture       = 'skip',        # 'orig', 'skip' or 'resnet'.
        resample_filter    = [1, 3, 3, 1],  # Low-pass filter taps applied when upsampling.
        conv_clamp         = None,          # Clamp conv outputs to +-this value; None = no clamping.
        use_fp16           = False,         # Run this block in fp16.
        fp16_channels_last = False,         # Use channels-last memory format when in fp16.
        **layer_kwargs,                     # For SynthesisLayer.
    ):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f'architecture must be one of {ARCHITECTURES}, got {architecture!r}')
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer('resample_filter', setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0
        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        if in_channels != 0:
            self.conv0 = self.layer_class(in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=2,
                                          resample_filter=resample_filter, conv_clamp=conv_clamp,
                                          channels_last=self.channels_last, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = self.layer_class(out_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                      conv_clamp=conv_clamp, channels_last=self.channels_last, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == 'skip':
            self.torgb = self.torgb_class(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                                          channels_last=self.channels_last)
            self.num_torgb += 1
        if in_channels != 0 and architecture == 'resnet':
            self.skip = self.skip_class(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                        resample_filter=resample_filter, channels_last=self.channels_last)

    def forward(self, x, img, ws, force_fp32=False, fused_modconv=None, **layer_kwargs):
        if ws.shape[1] != self.num_conv + self.num_torgb:
            raise ValueError(f'block b{self.resolution} needs {self.num_conv + self.num_torgb} ws, got {ws.shape[1]}')
        w_iter = iter(ws.unbind(dim=1))
        dtype = block_dtype(self.use_fp16, force_fp32)
        fmt = torch.channels_last if self.channels_last and not force_fp32 else torch.contiguous_format
        if fused_modconv is None:
            # Fused modconv is faster for inference; in fp16 only at batch 1 (as the host).
            fused_modconv = (not self.training) and (dtype == torch.float32 or int(ws.shape[0]) == 1)

        if self.in_channels == 0:
            x = self.const.to(dtype=dtype, memory_format=fmt).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            x = x.to(dtype=dtype, memory_format=fmt)

        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
        elif self.architecture == 'resnet':
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, gain=math.sqrt(0.5), **layer_kwargs)
            x = y.add_(x)
        else:
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)

        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == 'skip':
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img.add_(y) if img is not None else y
        return x, img


@persistent_class(FAMILY)
class SynthesisNetwork(torch.nn.Module):
    block_class = SynthesisBlock

    def __init__(self,
        w_dim,                   # Intermediate latent w width.
        img_resolution,          # Output image size; a power of two >= 4.
        img_channels,            # Output image channels.
        channel_base   = 32768,  # Channels at resolution r: min(channel_base // r, channel_max).
        channel_max    = 512,    # Maximum channels of any block.
        num_fp16_res   = 0,      # Number of highest-resolution blocks in fp16 (none below 8 px); 0 = none.
        **block_kwargs,          # For SynthesisBlock (and its layers).
    ):
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.num_fp16_res = num_fp16_res
        self.block_resolutions = block_resolutions(img_resolution)
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_res = fp16_min_resolution(img_resolution, num_fp16_res)
        self.num_ws = 0
        for res in self.block_resolutions:
            block = self.block_class(channels[res // 2] if res > 4 else 0, channels[res], w_dim=w_dim,
                                     resolution=res, img_channels=img_channels, is_last=(res == img_resolution),
                                     use_fp16=(res >= fp16_res), **block_kwargs)
            self.num_ws += block.num_conv
            if res == img_resolution:
                self.num_ws += block.num_torgb
            setattr(self, f'b{res}', block)

    def forward(self, ws, update_emas=None, **block_kwargs):
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f'synthesis expects ws of shape [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}')
        ws = ws.to(torch.float32)
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f'b{res}')
            # Consecutive blocks share a w: a block's toRGB uses the next block's first w.
            cur_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, cur_ws, **block_kwargs)
        return img


@persistent_class(FAMILY)
class Generator(torch.nn.Module):
    synthesis_class, mapping_class = SynthesisNetwork, MappingNetwork

    def __init__(self,
        z_dim,                  # Latent z width.
        c_dim,                  # Label width; 0 = unconditional.
        w_dim,                  # Intermediate latent w width.
        img_resolution,         # Output image size; a power of two >= 4.
        img_channels,           # Output image channels.
        mapping_kwargs   = {},  # For MappingNetwork.
        synthesis_kwargs = {},  # For SynthesisNetwork (and its blocks and layers).
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = self.synthesis_class(w_dim=w_dim, img_resolution=img_resolution,
                                              img_channels=img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = self.mapping_class(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws,
                                          **mapping_kwargs)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=None, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, **synthesis_kwargs)
