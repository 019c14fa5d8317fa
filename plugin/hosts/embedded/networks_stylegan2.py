"""The embedded host's ``training.networks_stylegan2``: StyleGAN2 as the stylegan3 repo ships it.

Host class paths such as ``training.networks_stylegan2.Generator`` resolve here, and pickles
whose source is that module (the family ``'stylegan3.networks_stylegan2'``, see
``plugin.pickles.read.detect_family``) are rebuilt as these classes. The math, the parameter
and buffer names are stylegan2-ada's (``layers``, ``generator``, ``discriminator``, reused by
subclassing); what this repo changed is its interface:

* ``Generator`` takes the synthesis kwargs flattened (``channel_base=...`` next to ``z_dim``;
  there is no ``synthesis_kwargs``);
* the mapping's ``w_avg`` moves only when a call passes ``update_emas=True`` (there is no
  ``skip_w_avg_update``, and training mode alone does not move it); ``w_avg_beta`` is 0.998;
* ``SynthesisBlock.fused_modconv_default`` chooses fused modulated convs when a call does not
  (True, False, or 'inference_only': fused in eval mode, not in training);
* blocks flagged float16 still run in float32 off CUDA;
* other defaults: ``num_fp16_res=4`` and ``conv_clamp=256`` (synthesis blocks, discriminator).
"""
from plugin.persistence import persistent_class

from . import discriminator, generator, layers
from .layers import modulated_conv2d, normalize_2nd_moment

FAMILY = 'stylegan3.networks_stylegan2'

__all__ = ['Conv2dLayer', 'Discriminator', 'DiscriminatorBlock', 'DiscriminatorEpilogue', 'FullyConnectedLayer',
           'Generator', 'MappingNetwork', 'MinibatchStdLayer', 'SynthesisBlock', 'SynthesisLayer',
           'SynthesisNetwork', 'ToRGBLayer', 'modulated_conv2d', 'normalize_2nd_moment']


def _on_cuda(tensor):
    return tensor.device.type == 'cuda'


@persistent_class(FAMILY)
class FullyConnectedLayer(layers.FullyConnectedLayer):
    """stylegan2-ada's, under this repo's name."""


@persistent_class(FAMILY)
class Conv2dLayer(layers.Conv2dLayer):
    """stylegan2-ada's, under this repo's name."""


@persistent_class(FAMILY)
class MinibatchStdLayer(layers.MinibatchStdLayer):
    """stylegan2-ada's, under this repo's name."""


@persistent_class(FAMILY)
class MappingNetwork(layers.MappingNetwork):
    """stylegan2-ada's mapping; ``w_avg`` is updated only on ``update_emas=True``."""

    fc_class = FullyConnectedLayer

    def __init__(self,
        z_dim,                      # Size of the latent z; 0 = none (the discriminator's label mapping).
        c_dim,                      # Size of the label c; 0 = unconditional.
        w_dim,                      # Size of the output w.
        num_ws,                     # Copies of w returned ([N, num_ws, w_dim]); None = [N, w_dim].
        num_layers      = 8,        # Fully connected layers after the input.
        embed_features  = None,     # Width of the label embedding; None = w_dim.
        layer_features  = None,     # Width of the hidden layers; None = w_dim.
        activation      = 'lrelu',  # Nonlinearity of the layers.
        lr_multiplier   = 0.01,     # Learning-rate multiplier of the layers (equalised learning rate).
        w_avg_beta      = 0.998,    # Decay of w_avg, the truncation centre; None = no w_avg.
    ):
        super().__init__(z_dim, c_dim, w_dim, num_ws, num_layers=num_layers, embed_features=embed_features,
                         layer_features=layer_features, activation=activation, lr_multiplier=lr_multiplier,
                         w_avg_beta=w_avg_beta)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        return super().forward(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                               update_emas=bool(update_emas))


@persistent_class(FAMILY)
class SynthesisLayer(layers.SynthesisLayer):
    """stylegan2-ada's, under this repo's name."""

    fc_class = FullyConnectedLayer


@persistent_class(FAMILY)
class ToRGBLayer(layers.ToRGBLayer):
    """stylegan2-ada's, under this repo's name."""

    fc_class = FullyConnectedLayer


@persistent_class(FAMILY)
class SynthesisBlock(generator.SynthesisBlock):
    """stylegan2-ada's block with ``fused_modconv_default``; float32 off CUDA."""

    layer_class, torgb_class, skip_class = SynthesisLayer, ToRGBLayer, Conv2dLayer

    def __init__(self,
        in_channels,                        # Input channels; 0 = the first block (starts from a learned constant).
        out_channels,                       # Output channels.
        w_dim,                              # Size of w.
        resolution,                         # Output resolution of the block.
        img_channels,                       # Channels of the image its toRGB writes.
        is_last,                            # The last block (it always has a toRGB).
        architecture            = 'skip',   # 'orig', 'skip' (images summed over the toRGBs) or 'resnet'.
        resample_filter         = [1, 3, 3, 1],     # FIR kernel of the 2x upsampling.
        conv_clamp              = 256,      # Clamp the convs' outputs to +-this; None = no clamping.
        use_fp16                = False,    # Flag the block float16 (used on CUDA only).
        fp16_channels_last      = False,    # channels_last memory format while in float16.
        fused_modconv_default   = True,     # fused_modconv when a call passes None; 'inference_only' = not training.
        **layer_kwargs,                     # Passed on to each SynthesisLayer.
    ):
        super().__init__(in_channels, out_channels, w_dim, resolution, img_channels, is_last,
                         architecture=architecture, resample_filter=resample_filter, conv_clamp=conv_clamp,
                         use_fp16=use_fp16, fp16_channels_last=fp16_channels_last, **layer_kwargs)
        self.fused_modconv_default = fused_modconv_default

    def forward(self, x, img, ws, force_fp32=False, fused_modconv=None, update_emas=False, **layer_kwargs):
        mode = self.fused_modconv_default if fused_modconv is None else fused_modconv
        fused = (not self.training) if mode == 'inference_only' else mode
        return super().forward(x, img, ws, force_fp32=force_fp32 or not _on_cuda(ws), fused_modconv=fused,
                               **layer_kwargs)


@persistent_class(FAMILY)
class SynthesisNetwork(generator.SynthesisNetwork):
    """stylegan2-ada's synthesis; four float16 resolutions by default."""

    block_class = SynthesisBlock

    def __init__(self,
        w_dim,                      # Size of w.
        img_resolution,             # Output resolution (a power of two, at least 4).
        img_channels,               # Output channels.
        channel_base    = 32768,    # A block at resolution r has min(channel_base // r, channel_max) channels.
        channel_max     = 512,      # Most channels of any block.
        num_fp16_res    = 4,        # Flag the N highest resolutions float16 (used on CUDA only).
        **block_kwargs,             # Passed on to each SynthesisBlock.
    ):
        super().__init__(w_dim, img_resolution, img_channels, channel_base=channel_base, channel_max=channel_max,
                         num_fp16_res=num_fp16_res, **block_kwargs)


@persistent_class(FAMILY)
class Generator(generator.Generator):
    """stylegan2-ada's generator, its synthesis kwargs flattened into its own."""

    synthesis_class, mapping_class = SynthesisNetwork, MappingNetwork

    def __init__(self,
        z_dim,                      # Size of the latent z.
        c_dim,                      # Size of the label c; 0 = unconditional.
        w_dim,                      # Size of w.
        img_resolution,             # Output resolution.
        img_channels,               # Output channels.
        mapping_kwargs      = {},   # Passed on to MappingNetwork.
        **synthesis_kwargs,         # Passed on to SynthesisNetwork (channel_base, num_fp16_res, ...).
    ):
        super().__init__(z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs=mapping_kwargs,
                         synthesis_kwargs=synthesis_kwargs)


@persistent_class(FAMILY)
class DiscriminatorBlock(discriminator.DiscriminatorBlock):
    """stylegan2-ada's block (with Freeze-D's ``freeze_layers``); float32 off CUDA."""

    conv_class = Conv2dLayer

    def forward(self, x, img, force_fp32=False):
        return super().forward(x, img, force_fp32=force_fp32 or not _on_cuda(x if x is not None else img))


@persistent_class(FAMILY)
class DiscriminatorEpilogue(discriminator.DiscriminatorEpilogue):
    """stylegan2-ada's, under this repo's name."""

    conv_class, fc_class, mbstd_class = Conv2dLayer, FullyConnectedLayer, MinibatchStdLayer


@persistent_class(FAMILY)
class Discriminator(discriminator.Discriminator):
    """stylegan2-ada's discriminator; four float16 resolutions and conv_clamp 256 by default."""

    block_class, mapping_class, epilogue_class = DiscriminatorBlock, MappingNetwork, DiscriminatorEpilogue

    def __init__(self,
        c_dim,                          # Size of the label c; 0 = unconditional.
        img_resolution,                 # Input resolution.
        img_channels,                   # Input channels.
        architecture        = 'resnet', # 'orig', 'skip' or 'resnet'.
        channel_base        = 32768,    # A block at resolution r has min(channel_base // r, channel_max) channels.
        channel_max         = 512,      # Most channels of any block.
        num_fp16_res        = 4,        # Flag the N highest resolutions float16 (used on CUDA only).
        conv_clamp          = 256,      # Clamp the convs' outputs to +-this; None = no clamping.
        cmap_dim            = None,     # Size of the projected label; None = the 4x4 block's channels.
        block_kwargs        = {},       # Passed on to each DiscriminatorBlock (freeze_layers, ...).
        mapping_kwargs      = {},       # Passed on to the label's MappingNetwork.
        epilogue_kwargs     = {},       # Passed on to DiscriminatorEpilogue (mbstd_group_size, ...).
    ):
        super().__init__(c_dim, img_resolution, img_channels, architecture=architecture, channel_base=channel_base,
                         channel_max=channel_max, num_fp16_res=num_fp16_res, conv_clamp=conv_clamp,
                         cmap_dim=cmap_dim, block_kwargs=block_kwargs, mapping_kwargs=mapping_kwargs,
                         epilogue_kwargs=epilogue_kwargs)
