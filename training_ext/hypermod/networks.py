"""Hyper-modulated generator and class-conditional discriminator, built around host networks.

``HyperGenerator`` holds a host generator (from its constructor kwargs) whose modulated
convolutions are replaced by hyper twins (``HyperModulated``): the 3x3 convs (conv0/conv1 of
every block) of a StyleGAN2 by ``HyperSynthesisLayer``s, every layer but ToRGB of an
alias-free (StyleGAN3-T/-R) generator by ``HyperAliasFreeLayer``s:

    mapping   = HyperMapping:   net (the source's mapping network); packs the label into the ws
    synthesis = HyperSynthesis: task (embedding + MLP -> task vector v), net (the source's
                synthesis network, convs hyper-modulated); unpacks the label from the ws

The ws between them are the source's ws with the label c appended as ``num_classes`` more
channels (the same in every layer). The host's StyleGAN2 loss calls ``G_mapping(z, c)`` (twice
with the same c for style mixing) and ``G_synthesis(ws)``, so it never notices; the path-length
gradient of the label channels is zero. The task vector reaches the hyper layers as a keyword
(``task=v``) that a StyleGAN2 synthesis network and its blocks pass through to their conv
layers; an alias-free network passes its keywords to ToRGB too, so HyperSynthesis runs its
parts itself (``run_alias_free``) and hands the task to the hyper layers only.

Frozen (gradient masks, or buffers): mapping, style affines, noise strengths, toRGB, constant
or Fourier input, and the standardised base weights and biases. Trainable: embedding, task
MLP, heads. The alias-free layers' ``magnitude_ema`` moves on ``update_emas`` as the source's.
"""
import math

import torch

from plugin.hosts import active_host
from plugin.hosts.embedded.layers import FullyConnectedLayer
from plugin.hosts.embedded.networks_stylegan3 import magnitude_input_gain
from plugin.layouts import is_alias_free_synthesis, takes_update_emas
from plugin.persistence import constructor_kwargs, persistent_class
from torch_utils_ext.ops import default_impl
from torch_utils_ext.ops.bias_act import bias_act, default_gain
from torch_utils_ext.ops.conv2d_resample import conv2d_resample
from torch_utils_ext.ops.filtered_lrelu import filtered_lrelu
from torch_utils_ext.ops.hypermod_weight import hypermod_weight
from torch_utils_ext.ops.upfirdn2d import setup_filter
from training_ext.common.freezing import register_gradient_masks

INITS = ('source', 'reference')
CONV_NAMES = ('conv0', 'conv1')


def check_labels(c, num_classes):
    """c must be [N, num_classes] (one-hot, or soft); a clear ValueError otherwise."""
    if c is None or c.ndim != 2 or c.shape[1] != num_classes:
        shape = None if c is None else tuple(c.shape)
        raise ValueError(f'this generator is conditional with {num_classes} classes: labels must be one-hot of '
                         f'shape [N, {num_classes}], got {shape}')


def standardise(t, dims):
    """(t_hat, mean, std) with t = std * t_hat + mean over ``dims``; a constant slice gets std 1."""
    mean = t.mean(dim=dims, keepdim=True)
    std = t.std(dim=dims, keepdim=True, unbiased=False)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return (t - mean) / std, mean, std


@persistent_class(None)
class TaskNetwork(torch.nn.Module):
    """Label -> task vector v: an embedding (c @ E, so soft labels interpolate) and an MLP of
    ``num_layers`` equalised-lr linear layers with leaky ReLU. The MLP has the mapping
    network's learning-rate multiplier (0.01), so with the host's lr it learns at the
    reference's task-network rate (2e-5); the embedding learns at the full rate.

    ``anchor``: a class index, or None. With it, v is MLP(c @ E) - MLP(E[anchor]): the anchor
    class's task vector is exactly zero, so heads whose v-independent parts are the source's
    (and frozen) give it exactly the source's weights, at every step of training.
    ``decorrelate``: keep a fixed linear map ``basis`` [dim, dim] and a 0/1 ``support``
    [num_classes, dim] (buffers; identity and ones until ``decorrelate_classes()`` sets them):
    v becomes (v @ basis) * (c @ support). The MLP's leaky ReLUs make the task
    vectors of random embeddings strongly correlated (cosine 0.35..0.70 for 3 classes at
    64 dims); the heads' gradient is g (x) v, so a step for one class then moves the others
    almost as much, and one domain takes over every class. The map puts the classes' task
    vectors on disjoint coordinates at the start (``decorrelate_classes``).
    """

    def __init__(self,
        num_classes,              # Number of classes: rows of the embedding E, width of the labels c.
        dim             = 64,     # Width of the embedding and of the task vector v.
        num_layers      = 4,      # Layers of the MLP (dim -> dim, leaky ReLU); 0 = v is c @ E itself.
        lr_multiplier   = 0.01,   # Learning-rate multiplier of the MLP's layers (the embedding's is 1).
        anchor          = None,   # Class whose task vector is exactly zero; None = no anchor.
        decorrelate     = False,  # Add the basis/support buffers (set by decorrelate_classes()); False = none.
    ):
        super().__init__()
        if anchor is not None and not 0 <= anchor < num_classes:
            raise ValueError(f'anchor class must be in 0..{num_classes - 1}, got {anchor}')
        self.num_classes, self.dim, self.num_layers = num_classes, dim, num_layers
        self.anchor = anchor
        self.embed = torch.nn.Parameter(torch.randn([num_classes, dim]))
        for i in range(num_layers):
            setattr(self, f'fc{i}', FullyConnectedLayer(dim, dim, activation='lrelu', lr_multiplier=lr_multiplier))
        if decorrelate:
            self.register_buffer('basis', torch.eye(dim))
            self.register_buffer('support', torch.ones([num_classes, dim]))

    def mlp(self, e):
        for i in range(self.num_layers):
            e = getattr(self, f'fc{i}')(e)
        return e

    def forward(self, c):
        v = self.mlp(c.to(torch.float32) @ self.embed)
        if self.anchor is not None:
            v = v - self.mlp(self.embed[self.anchor:self.anchor + 1])
        if not hasattr(self, 'basis'):
            return v
        return (v @ self.basis) * (c.to(torch.float32) @ self.support)

    @torch.no_grad()
    def decorrelate_classes(self, norm=None, shared=0):
        """Set ``basis`` so that each one-hot class's task vector (the anchor's, zero, left out)
        lies on its own block of coordinates, disjoint from the other classes' blocks, with
        norm ``norm`` (None: the classes' mean norm); the complement of their span is left as it is:
        basis = V^+ U + (I - V^+ V) with U the block vectors. Disjoint, not merely orthogonal:
        Adam normalises every weight's step separately, so a head weight column that a class
        does not use gets no step from that class at all (orthogonal dense vectors would still
        leak through the per-weight normalisation). ``support`` zeroes each class's vector
        off its block exactly: Adam would turn the basis's rounding residue (1e-7) into full
        steps. ``shared`` > 0 reserves the last coordinate as one that every class but the
        anchor has, at that value: the heads' weights on it are a trainable offset shared by
        the new classes (they learn what the target domains have in common from the whole
        batch), which the anchor never sees."""
        if not hasattr(self, 'basis'):
            raise ValueError('this task network was built without decorrelate=True')
        self.basis.copy_(torch.eye(self.dim, device=self.basis.device))
        self.support.fill_(1)
        classes = [k for k in range(self.num_classes) if k != self.anchor]
        if self.anchor is not None:
            self.support[self.anchor] = 0
        if not classes:
            return
        free = self.dim - (1 if shared else 0)
        if len(classes) > free:
            raise ValueError(f'{len(classes)} classes do not fit on disjoint blocks of {free} task dims')
        V = self(torch.eye(self.num_classes, device=self.embed.device)[classes]).double()
        if torch.linalg.matrix_rank(V) < len(classes):
            raise ValueError('the classes\' task vectors are linearly dependent (equal embeddings?): cannot '
                             'decorrelate them')
        size = free // len(classes)
        U = torch.zeros_like(V)
        for i, k in enumerate(classes):
            U[i, i * size:(i + 1) * size] = (V.norm(dim=1).mean() if norm is None else norm) / math.sqrt(size)
            self.support[k] = 0
            self.support[k, i * size:(i + 1) * size] = 1
            if shared:
                U[i, -1] = shared
                self.support[k, -1] = 1
        pinv = torch.linalg.pinv(V)
        eye = torch.eye(self.dim, dtype=V.dtype, device=V.device)
        self.basis.copy_((pinv @ U + eye - pinv @ V).to(self.basis.dtype))


@persistent_class(None)
class HyperHead(torch.nn.Module):
    """Task vector v [N, D] -> a modulation of shape [N, out, in] (gamma or beta).

    Full (``rank=0``): one equalised-lr linear layer D -> out*in with a bias (out*in).
    Low rank (``rank=R``): ``offset + A(v) @ B^T`` with ``offset`` [out, in] (the full head's
    bias), ``A`` a linear layer D -> out*R without bias, ``B`` [in, R] a learnt basis shared
    by all classes. At R = in, B = identity and A = the full head's weights this *is* the
    full head (``lowrank_from_full``). The v-dependent part costs D*out*R + in*R weights
    instead of D*out*in.
    """

    def __init__(self,
        dim,                         # Width of the task vector v.
        out_channels,                # Modulation rows (the layer's output channels).
        in_channels,                 # Modulation columns (the layer's input channels).
        rank            = 0,         # Rank R of the v-dependent part, 1..in_channels; 0 = full head.
        init            = 'source',  # 'source' = v-dependent weights zero (offset only); 'reference' = random.
    ):
        super().__init__()
        if init not in INITS:
            raise ValueError(f'hyper head init must be one of {INITS}, got {init!r}')
        if rank < 0 or rank > in_channels:
            raise ValueError(f'rank must be 0 (full) or 1..{in_channels}, got {rank}')
        self.dim, self.out_channels, self.in_channels, self.rank = dim, out_channels, in_channels, rank
        if rank == 0:
            self.fc = FullyConnectedLayer(dim, out_channels * in_channels)
        else:
            self.offset = torch.nn.Parameter(torch.zeros([out_channels, in_channels]))
            self.left = FullyConnectedLayer(dim, out_channels * rank, bias=False)
            self.right = torch.nn.Parameter(torch.randn([in_channels, rank]) / math.sqrt(rank))
        if init == 'source':                # v-dependent part zero: the offset alone is the modulation
            with torch.no_grad():
                (self.fc if rank == 0 else self.left).weight.zero_()

    @torch.no_grad()
    def set_offset(self, value):
        """Set the v-independent part (the full head's bias), [out, in]."""
        offset = self.fc.bias if self.rank == 0 else self.offset
        offset.copy_(value.reshape(offset.shape))

    def forward(self, v):
        n = v.shape[0]
        if self.rank == 0:
            return self.fc(v).reshape(n, self.out_channels, self.in_channels)
        return self.offset, self.left(v).reshape(n, self.out_channels, self.rank), self.right



def head_weights(dim, out_channels, in_channels, rank=0):
    """Trainable weights of one HyperHead (without building it): for sizing at 512 channels."""
    if rank == 0:
        return dim * out_channels * in_channels + out_channels * in_channels
    return out_channels * in_channels + dim * out_channels * rank + in_channels * rank


def lowrank_from_full(head):
    """The rank-``in`` low-rank head computing exactly what the full ``head`` computes."""
    low = HyperHead(head.dim, head.out_channels, head.in_channels, rank=head.in_channels, init='reference')
    with torch.no_grad():
        low.offset.copy_(head.fc.bias.reshape(head.out_channels, head.in_channels))
        low.left.weight.copy_(head.fc.weight)
        low.right.copy_(torch.eye(head.in_channels))
    return low


class HyperModulated(torch.nn.Module):
    """What the hyper twins of the hosts' modulated convolutions share: the frozen
    standardised source weight and bias, the heads that modulate them per class, and the
    per-sample class weight (not a persistent class itself: its subclasses are).

    Buffers (frozen): ``base_weight`` W_hat [O, I, k, k] (per (out, in) filter standardised over
    its kernel), ``weight_mean``/``weight_std`` [O, I] (so that W = std * W_hat + mean),
    ``base_bias`` b_hat [O]. Trainable: the heads ``gamma``, ``beta`` (HyperHead) and ``dbias``.

    W_c = gamma(v) (.) W_hat + beta(v), b_c = b_hat + dbias(v). ``init='source'`` sets the heads'
    v-independent parts to (std, mean, b - b_hat) and their v-dependent parts to zero, so the
    layer starts out computing the source layer's output; ``'reference'`` is the paper's init
    (biases zero, random weights), which self-initialisation has to undo. A 1x1 kernel (the
    stylegan3-r layers) has one tap per filter: W_hat is 0, std 1 and mean W, so beta(v)
    alone carries the class's weight (gamma scales nothing there).
    """

    def add_modulation(self, out_channels, in_channels, kernel_size, task_dim, rank, init):
        """Register the base buffers and the heads (called by the subclass's constructor)."""
        self.init = init
        self.register_buffer('base_weight', torch.zeros([out_channels, in_channels, kernel_size, kernel_size]))
        self.register_buffer('weight_mean', torch.zeros([out_channels, in_channels]))
        self.register_buffer('weight_std', torch.ones([out_channels, in_channels]))
        self.register_buffer('base_bias', torch.zeros([out_channels]))
        self.gamma = HyperHead(task_dim, out_channels, in_channels, rank, init)
        self.beta = HyperHead(task_dim, out_channels, in_channels, rank, init)
        self.dbias = FullyConnectedLayer(task_dim, out_channels)
        if init == 'source':
            with torch.no_grad():
                self.dbias.weight.zero_()

    @torch.no_grad()
    def init_from(self, weight, bias):
        """Standardise a source layer's weight [O, I, k, k] and bias [O] into the buffers and,
        with ``init='source'``, set the heads so that W_c = W and b_c = b."""
        w_hat, mean, std = standardise(weight.to(torch.float32), dims=[2, 3])
        b_hat, _, _ = standardise(bias.to(torch.float32), dims=[0])
        self.base_weight.copy_(w_hat)
        self.weight_mean.copy_(mean[:, :, 0, 0])
        self.weight_std.copy_(std[:, :, 0, 0])
        self.base_bias.copy_(b_hat)
        if self.init == 'source':
            self.gamma.set_offset(self.weight_std)
            self.beta.set_offset(self.weight_mean)
            self.dbias.bias.copy_(bias - b_hat)

    def head_parameters(self, offsets=True):
        """The heads' parameters; without their v-independent parts (offsets, the bias head's
        bias) when ``offsets`` is False."""
        params = [*self.gamma.parameters(), *self.beta.parameters(), *self.dbias.parameters()]
        if offsets:
            return params
        fixed = {id(self.dbias.bias)} | {id(h.fc.bias if h.rank == 0 else h.offset) for h in (self.gamma, self.beta)}
        return [p for p in params if id(p) not in fixed]

    @staticmethod
    def check_call(task, noise_mode):
        if task is None:
            raise ValueError('a hyper-modulated layer needs the task vector: call it through HyperSynthesis')
        if noise_mode not in ('random', 'const', 'none'):
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")

    def class_weight(self, styles, task):
        """[N, O, I, k, k]: every sample's class weight W_c, modulated by ``styles`` [N, I] and
        demodulated (torch_utils_ext.ops.hypermod_weight)."""
        return hypermod_weight(self.base_weight, styles, self.gamma(task), self.beta(task), impl=default_impl())

    def class_bias(self, task):
        """[N, O]: every sample's class bias b_c."""
        return self.base_bias + self.dbias(task)


@persistent_class(None)
class HyperSynthesisLayer(HyperModulated):
    """A StyleGAN2 synthesis layer whose weight and bias are hyper-modulated per sample.

    Besides HyperModulated's: buffers (frozen) ``noise_const``, ``resample_filter``; frozen
    parameters ``affine`` (styles), ``noise_strength``. The class weight is modulated by the
    styles, demodulated and applied as a grouped convolution, as StyleGAN2.
    """

    def __init__(self,
        in_channels,                 # Input feature channels.
        out_channels,                # Output feature channels.
        w_dim,                       # Width of w (the style affine's input).
        resolution,                  # Output resolution (px); the size of the noise.
        kernel_size     = 3,         # Convolution kernel size (padding kernel_size // 2).
        up              = 1,         # Upsampling factor of the convolution (conv2d_resample); 1 = none.
        use_noise       = True,      # Add per-pixel noise times a learnt strength; False = no noise.
        activation      = 'lrelu',   # Activation after the bias (bias_act name).
        conv_clamp      = None,      # Clamp the output to +-this (times gain); None = no clamp.
        task_dim        = 64,        # Width of the task vector v.
        rank            = 0,         # Rank of the gamma/beta heads; 0 = full heads.
        init            = 'source',  # 'source' = start as the source layer (after init_from); 'reference' = paper's.
    ):
        super().__init__()
        self.in_channels, self.out_channels, self.resolution = in_channels, out_channels, resolution
        self.up, self.use_noise, self.activation, self.conv_clamp = up, use_noise, activation, conv_clamp
        self.padding = kernel_size // 2
        self.act_gain = default_gain(activation)
        self.register_buffer('resample_filter', setup_filter([1, 3, 3, 1]))
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        if use_noise:
            self.register_buffer('noise_const', torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.add_modulation(out_channels, in_channels, kernel_size, task_dim, rank, init)

    def forward(self, x, w, task=None, noise_mode='random', fused_modconv=True, gain=1):
        self.check_call(task, noise_mode)
        n = x.shape[0]
        weight = self.class_weight(self.affine(w), task)
        x = conv2d_resample(x.reshape(1, -1, *x.shape[2:]), weight.reshape(-1, *weight.shape[2:]).to(x.dtype),
                            f=self.resample_filter, up=self.up, padding=self.padding, groups=n,
                            flip_weight=(self.up == 1))
        x = x.reshape(n, -1, *x.shape[2:])
        if self.use_noise and noise_mode == 'random':
            x = x + torch.randn([n, 1, self.resolution, self.resolution], device=x.device) * self.noise_strength
        elif self.use_noise and noise_mode == 'const':
            x = x + self.noise_const * self.noise_strength
        x = x + self.class_bias(task).to(x.dtype).reshape(n, -1, 1, 1)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, None, act=self.activation, gain=self.act_gain * gain, clamp=clamp, impl=default_impl())


@persistent_class(None)
class HyperAliasFreeLayer(HyperModulated):
    """An alias-free (StyleGAN3-T/-R) synthesis layer whose weight and bias are hyper-modulated
    per sample; ToRGB is not one (it stays the source's, frozen, as StyleGAN2's toRGB does).

    It computes what the source layer computes with W_c, b_c in place of its weight and bias:
    the input divided by its running RMS (``magnitude_ema``, moved only on ``update_emas``, as
    the source layer does), the class weight modulated by the styles and demodulated, a
    grouped convolution without padding, the class bias, then the filtered leaky ReLU with
    the source layer's filters (``up_filter``, ``down_filter``: buffers copied from it), rates,
    padding, gain sqrt(2), slope 0.2 and clamp. The per-sample bias is added before the filtered
    nonlinearity, which adds its own (per-channel) bias first too. Besides HyperModulated's:
    buffers ``magnitude_ema``, ``up_filter``, ``down_filter``; frozen parameters ``affine``.
    """

    def __init__(self,
        w_dim,                          # Width of w (the style affine's input).
        in_channels,                    # Input feature channels.
        out_channels,                   # Output feature channels.
        in_size,                        # Input [width, height], margin included.
        out_size,                       # Output [width, height], margin included.
        conv_kernel         = 3,        # Convolution kernel size (no padding: the margin shrinks).
        up_factor           = 2,        # Upsampling factor of the filtered nonlinearity.
        down_factor         = 2,        # Downsampling factor of the filtered nonlinearity.
        padding             = (0, 0, 0, 0),  # Its padding [x0, x1, y0, y1] (negative: cropping).
        up_filter_shape     = None,     # Shape of the source's up_filter; None = no filter.
        down_filter_shape   = None,     # Shape of the source's down_filter ([t] separable, [t, t] radial); None = none.
        conv_clamp          = None,     # Clamp of the nonlinearity's output; None = no clamp.
        use_fp16            = False,    # Compute in float16 (on CUDA, unless force_fp32)?
        magnitude_ema_beta  = 0.999,    # Decay of the running mean square of the input.
        task_dim            = 64,       # Width of the task vector v.
        rank                = 0,        # Rank of the gamma/beta heads; 0 = full heads.
        init                = 'source', # 'source' = start as the source layer (after init_from); 'reference' = paper's.
    ):
        super().__init__()
        self.w_dim, self.in_channels, self.out_channels = w_dim, in_channels, out_channels
        self.in_size, self.out_size = [int(s) for s in in_size], [int(s) for s in out_size]
        self.conv_kernel, self.up_factor, self.down_factor = conv_kernel, up_factor, down_factor
        self.padding = [int(p) for p in padding]
        self.conv_clamp, self.use_fp16, self.magnitude_ema_beta = conv_clamp, use_fp16, magnitude_ema_beta
        self.is_torgb = False
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.register_buffer('magnitude_ema', torch.ones([]))
        for name, shape in (('up_filter', up_filter_shape), ('down_filter', down_filter_shape)):
            self.register_buffer(name, None if shape is None else torch.zeros(list(shape)))
        self.add_modulation(out_channels, in_channels, conv_kernel, task_dim, rank, init)

    def forward(self, x, w, task=None, noise_mode='random', force_fp32=False, update_emas=False):
        self.check_call(task, noise_mode)                   # noise_mode: the host's interface; no noise here
        input_gain = magnitude_input_gain(self, x, update_emas)
        n = x.shape[0]
        dtype = torch.float16 if self.use_fp16 and not force_fp32 and x.device.type == 'cuda' else torch.float32
        weight = self.class_weight(self.affine(w), task) * input_gain       # the input gain after demodulation
        x = conv2d_resample(x.to(dtype).reshape(1, -1, *x.shape[2:]), weight.reshape(-1, *weight.shape[2:]).to(dtype),
                            padding=self.conv_kernel - 1, groups=n)
        x = x.reshape(n, -1, *x.shape[2:]) + self.class_bias(task).to(dtype).reshape(n, -1, 1, 1)
        return filtered_lrelu(x, fu=self.up_filter, fd=self.down_filter, up=self.up_factor, down=self.down_factor,
                              padding=self.padding, gain=math.sqrt(2), slope=0.2, clamp=self.conv_clamp)

    def extra_repr(self):
        return (f'w_dim={self.w_dim}, in_size={self.in_size}, out_size={self.out_size}, '
                f'in_channels={self.in_channels}, out_channels={self.out_channels}')


def hyper_layer_for(layer, task_dim, rank, init):
    """A hyper twin shaped like the host's synthesis ``layer`` (weights and filters not copied):
    a HyperAliasFreeLayer for an alias-free layer (one with a ``magnitude_ema``), else a
    HyperSynthesisLayer."""
    # Shapes from the tensors: the host's layers do not all keep their channel counts as attributes.
    out_channels, in_channels = (int(s) for s in layer.weight.shape[:2])
    w_dim, rank = int(layer.affine.weight.shape[1]), min(rank, in_channels)
    if hasattr(layer, 'magnitude_ema'):
        shapes = {f'{name}_shape': None if getattr(layer, name) is None else list(getattr(layer, name).shape)
                  for name in ('up_filter', 'down_filter')}
        return HyperAliasFreeLayer(w_dim, in_channels, out_channels, in_size=[int(s) for s in layer.in_size],
                                   out_size=[int(s) for s in layer.out_size], conv_kernel=int(layer.weight.shape[-1]),
                                   up_factor=int(layer.up_factor), down_factor=int(layer.down_factor),
                                   padding=[int(p) for p in layer.padding], conv_clamp=layer.conv_clamp,
                                   use_fp16=bool(layer.use_fp16), magnitude_ema_beta=float(layer.magnitude_ema_beta),
                                   task_dim=task_dim, rank=rank, init=init, **shapes)
    return HyperSynthesisLayer(in_channels, out_channels, w_dim=w_dim,
                               resolution=layer.resolution, kernel_size=layer.weight.shape[-1], up=layer.up,
                               use_noise=layer.use_noise, activation=layer.activation, conv_clamp=layer.conv_clamp,
                               task_dim=task_dim, rank=rank, init=init)


def modulated_layer_names(synthesis_net):
    """Names (relative to the synthesis network) of the host layers that hyper-modulation
    replaces: every block's 3x3 convs (StyleGAN2), every layer but ToRGB (alias-free)."""
    if is_alias_free_synthesis(synthesis_net):
        return [n for n in synthesis_net.layer_names if not getattr(synthesis_net, n).is_torgb]
    return [f'b{res}.{name}' for res in synthesis_net.block_resolutions for name in CONV_NAMES
            if hasattr(getattr(synthesis_net, f'b{res}'), name)]


def hyper_layers(synthesis_net):
    """(name, layer) of every hyper-modulated layer of a synthesis network, in block order."""
    return [(n, m) for n, m in synthesis_net.named_modules() if isinstance(m, HyperModulated)]


def run_alias_free(synthesis_net, ws, task, **layer_kwargs):
    """An alias-free synthesis network's output for styles ``ws`` with the task vector going to
    its hyper layers only. Its own forward passes its keyword arguments to every layer, ToRGB
    included, whose host class takes no ``task``; this runs its parts as that forward does:
    the Fourier input from ws[:, 0], layer i from ws[:, 1 + i], the output scale, float32."""
    net = synthesis_net
    if ws.ndim != 3 or tuple(ws.shape[1:]) != (net.num_ws, net.w_dim):
        raise ValueError(f'synthesis expects ws of shape [N, {net.num_ws}, {net.w_dim}], got {list(ws.shape)}')
    w_input, *w_layers = ws.to(torch.float32).unbind(dim=1)
    x = net.input(w_input)
    for name, w in zip(net.layer_names, w_layers):
        layer = getattr(net, name)
        x = layer(x, w, task=task, **layer_kwargs) if isinstance(layer, HyperModulated) else layer(x, w, **layer_kwargs)
    return (x * net.output_scale if net.output_scale != 1 else x).to(torch.float32)


@persistent_class(None)
class HyperMapping(torch.nn.Module):
    """The source's (unconditional) mapping network; the label is appended to its ws.
    (Networks are attached after construction so that the constructor kwargs stay small.)"""

    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = num_classes

    def attach(self, net):
        self.net = net
        self.z_dim, self.c_dim = net.z_dim, self.num_classes
        self.style_dim, self.num_ws = net.w_dim, net.num_ws
        self.w_dim = self.style_dim + self.num_classes
        return self

    @property
    def w_avg(self):
        """The mean of the packed ws, [w_dim] like every w (host tools read ``mapping.w_avg`` and
        truncate whole ws toward it: ``w_avg.lerp(ws, psi)``): the source's mean w, then the mean
        label over the classes (uniform). Truncated that way the label moves toward the average
        class too, as it does for the host's own conditional generators, whose w_avg is the
        mean over all classes; ``G(z, c, truncation_psi=psi)`` truncates the styles only and
        keeps the class exact."""
        w = self.net.w_avg
        return torch.cat([w, w.new_full([self.num_classes], 1 / self.num_classes)])

    @property
    def takes_update_emas(self):
        """The wrapped mapping's convention (plugin.layouts.takes_update_emas): the loss calls
        this wrapper as it would call the source's mapping."""
        return takes_update_emas(self.net)

    def forward(self, z, c, **kwargs):
        check_labels(c, self.num_classes)
        ws = self.net(z, c[:, :0], **kwargs)
        return torch.cat([ws, c.to(ws.dtype).unsqueeze(1).expand(-1, ws.shape[1], -1)], dim=2)


@persistent_class(None)
class HyperSynthesis(torch.nn.Module):
    """The task network and the source's synthesis network with hyper-modulated convs."""

    def __init__(self,
        num_classes,           # Number of classes: label channels at the end of the ws.
        task_dim        = 64,  # Width of the task vector v.
        task_layers     = 4,   # Layers of the task network's MLP; 0 = v is c @ E.
        **task_kwargs,         # For TaskNetwork (lr_multiplier, anchor, decorrelate).
    ):
        super().__init__()
        self.num_classes = num_classes
        self.task = TaskNetwork(num_classes, task_dim, task_layers, **task_kwargs)

    def attach(self, net):
        self.net = net
        self.style_dim, self.num_ws = net.w_dim, net.num_ws
        self.w_dim = self.style_dim + self.num_classes
        self.img_resolution, self.img_channels = net.img_resolution, net.img_channels
        if hasattr(net, 'block_resolutions'):         # StyleGAN2 layout only
            self.block_resolutions = net.block_resolutions
        return self

    def forward(self, ws, **kwargs):
        if ws.ndim != 3 or ws.shape[2] != self.w_dim:
            raise ValueError(f'hyper synthesis expects packed ws of shape [N, {self.num_ws}, {self.w_dim}] '
                             f'(styles + {self.num_classes} label channels), got {tuple(ws.shape)}')
        c = ws[:, 0, self.style_dim:].detach()
        if is_alias_free_synthesis(self.net):
            return run_alias_free(self.net, ws[:, :, :self.style_dim], self.task(c), **kwargs)
        return self.net(ws[:, :, :self.style_dim], task=self.task(c), **kwargs)


@persistent_class(None)
class HyperGenerator(torch.nn.Module):
    """A class-conditional generator: ``G(z, c)`` with one-hot c [N, num_classes].

    ``generator``: the unconditional source generator's kwargs (with class_name); weights come
    from ``hyper_from_source`` or the stage's pickle. ``rank``: 0 for full (out x in) heads,
    R for low-rank heads. ``train``: 'hyper' (only task network and heads learn) or 'all'
    (every parameter: the paper's optional fine-tuning). ``freeze_offsets``: with 'hyper', the
    heads' v-independent parts (offsets and the bias head's bias) stay frozen too, so only
    the class-dependent parts learn: with them trainable, every class shares them, and the
    classes in the majority drag the others (the source's own class too) along.
    ``freeze_task``: with 'hyper', the task network (embedding, MLP) stays frozen too: it is
    shared by the classes (the anchor's embedding enters every class's v), so its steps for
    one class move the others. The heads are linear in v, so fixed distinct task vectors lose
    nothing: each class keeps its own weights (its v's coordinates). ``anchor``,
    ``decorrelate``: see TaskNetwork; the anchor class stays exactly the source only with
    'source' heads, frozen offsets and train 'hyper'. ``c_dim``, ``img_resolution``,
    ``img_channels`` are what the training loop passes; they must agree.
    """

    def __init__(self,
        generator,                   # The unconditional source generator's kwargs (with class_name).
        num_classes,                 # Number of classes (width of c); at least 1.
        rank            = 0,         # Rank of the heads (capped at each layer's input channels); 0 = full heads.
        task_dim        = 64,        # Width of the task vector v.
        task_layers     = 4,         # Layers of the task network's MLP; 0 = v is c @ E.
        init            = 'source',  # Heads: 'source' = start as the source; 'reference' = the paper's init.
        train           = 'hyper',   # 'hyper' = only task network and heads learn; 'all' = every parameter.
        freeze_offsets  = False,     # With 'hyper': the heads' v-independent parts stay frozen too.
        freeze_task     = False,     # With 'hyper': the task network (embedding, MLP) stays frozen too.
        anchor          = None,      # Class kept exactly the source (see TaskNetwork); None = no anchor.
        decorrelate     = False,     # Task network with a decorrelating basis (see TaskNetwork); False = none.
        c_dim           = None,      # The loop's label width; None = unchecked, else must equal num_classes.
        img_resolution  = None,      # The loop's image size; None = unchecked, else must match the source.
        img_channels    = None,      # The loop's image channels; unused.
    ):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f'num_classes must be at least 1, got {num_classes}')
        if train not in ('hyper', 'all'):
            raise ValueError(f"train must be 'hyper' or 'all', got {train!r}")
        if anchor is not None and not (init == 'source' and freeze_offsets and train == 'hyper'):
            raise ValueError("an anchor class needs init 'source', freeze_offsets and train 'hyper' (otherwise it "
                             "would not stay the source)")
        G = active_host().construct_class_by_name(**dict(generator))
        if G.c_dim != 0:
            raise ValueError(f'the source generator is conditional (c_dim {G.c_dim}); hyper-modulation needs an '
                             'unconditional one')
        if c_dim is not None and c_dim != num_classes:
            raise ValueError(f'the labels have {c_dim} classes but this hyper generator has {num_classes} '
                             '(check --cond 1 and the dataset labels)')
        if img_resolution is not None and img_resolution != G.img_resolution:
            raise ValueError(f'the images are {img_resolution}px, the source generates {G.img_resolution}px')
        for name in modulated_layer_names(G.synthesis):
            parent, _, leaf = name.rpartition('.')
            owner = G.synthesis.get_submodule(parent)
            setattr(owner, leaf, hyper_layer_for(getattr(owner, leaf), task_dim, rank, init))
        self.mapping = HyperMapping(num_classes).attach(G.mapping)
        task_kwargs = dict(anchor=anchor) if anchor is not None else {}     # class 0 is an anchor: no truthiness
        if decorrelate:
            task_kwargs['decorrelate'] = True
        self.synthesis = HyperSynthesis(num_classes, task_dim, task_layers, **task_kwargs).attach(G.synthesis)
        self.num_classes, self.rank, self.train_mode = num_classes, rank, train
        self.z_dim, self.c_dim = G.z_dim, num_classes
        self.w_dim, self.style_dim, self.num_ws = self.synthesis.w_dim, G.w_dim, G.num_ws
        self.img_resolution, self.img_channels = G.img_resolution, G.img_channels
        if train == 'hyper':
            trainable = set() if freeze_task else {id(p) for p in self.synthesis.task.parameters()}
            for _, layer in hyper_layers(self.synthesis.net):
                trainable.update(id(p) for p in layer.head_parameters(offsets=not freeze_offsets))
            register_gradient_masks(self, {n: p for n, p in self.named_parameters() if id(p) not in trainable})

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=None, **synthesis_kwargs):
        # update_emas exists only in the stylegan3 repo's networks: pass it on only when given (to
        # the synthesis too, as their generators do: the alias-free layers' magnitude EMAs).
        extra = {} if update_emas is None else dict(update_emas=update_emas)
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, **extra)
        return self.synthesis(ws, **extra, **synthesis_kwargs)

    @torch.no_grad()
    def load_source(self, G):
        """Copy the unconditional generator G's weights in; conv weights become base buffers."""
        own = self.synthesis.net.state_dict()
        self.mapping.net.load_state_dict(G.mapping.state_dict())
        src = G.synthesis.state_dict()
        convs = dict(hyper_layers(self.synthesis.net))
        for name, t in src.items():
            layer, _, leaf = name.rpartition('.')
            if layer in convs and leaf in ('weight', 'bias'):
                continue
            own[name].copy_(t)
        for name, layer in convs.items():
            layer.init_from(src[f'{name}.weight'], src[f'{name}.bias'])
        return self

    def copy_class(self, source_class=0):
        """Give every class the embedding of ``source_class`` (after self-initialisation)."""
        with torch.no_grad():
            embed = self.synthesis.task.embed
            embed.copy_(embed[source_class:source_class + 1].expand_as(embed))


def hyper_from_source(G, num_classes, **kwargs):
    """A HyperGenerator that starts from the unconditional generator G (loaded)."""
    return HyperGenerator(generator=constructor_kwargs(G), num_classes=num_classes, **kwargs).load_source(G)


@persistent_class(None)
class HyperDiscriminator(torch.nn.Module):
    """The source's unconditional D made class-conditional by a per-class output head.

    The host D is built with its ``out`` layer replaced by an identity, so it returns the
    penultimate features f (the epilogue's fc output); ``head`` maps them to one score per
    class and the score is ``head(f)[i, c_i]`` (``(head(f) * c).sum(1)``). Every row of the
    head starts as the source's output layer, so D starts out scoring as the source D for
    every class. ``features(img)`` gives f (the contrastive term uses it).
    """

    def __init__(self,
        discriminator,           # The unconditional source discriminator's kwargs (with class_name).
        num_classes,             # Number of classes: one score (head row) per class.
        c_dim           = None,  # The loop's label width; None = unchecked, else must equal num_classes.
        img_resolution  = None,  # The loop's image size; None = unchecked, else must match the source.
        img_channels    = None,  # The loop's image channels; unused.
        head_lr_multiplier = 1,  # Learning-rate multiplier of the per-class head: its rows are D's only
                                 # class-specific weights and start identical (see HypermodConfig.d_head_lr).
    ):
        super().__init__()
        D = active_host().construct_class_by_name(**dict(discriminator))
        if D.c_dim != 0:
            raise ValueError(f'the source discriminator is conditional (c_dim {D.c_dim})')
        if c_dim is not None and c_dim != num_classes:
            raise ValueError(f'the labels have {c_dim} classes but this discriminator has {num_classes}')
        if img_resolution is not None and img_resolution != D.img_resolution:
            raise ValueError(f'the images are {img_resolution}px, the source D takes {D.img_resolution}px')
        out = D.b4.out
        D.b4.out = torch.nn.Identity()
        self.net = D
        self.head = FullyConnectedLayer(int(out.weight.shape[1]), num_classes,      # host layers keep no in_features
                                        lr_multiplier=head_lr_multiplier)
        self.num_classes, self.c_dim = num_classes, num_classes
        self.img_resolution, self.img_channels = D.img_resolution, D.img_channels

    def features(self, img, **kwargs):
        return self.net(img, img.new_zeros([img.shape[0], 0]), **kwargs)

    def forward(self, img, c, **kwargs):
        check_labels(c, self.num_classes)
        return (self.head(self.features(img, **kwargs)) * c.to(torch.float32)).sum(dim=1, keepdim=True)

    @torch.no_grad()
    def load_source(self, D):
        src = D.state_dict()
        own = self.net.state_dict()
        for name, t in src.items():
            if not name.startswith('b4.out.'):
                own[name].copy_(t)
        # The stored weights are the effective ones over the layers' gains (the source's out layer
        # has lr multiplier 1, the head head_lr_multiplier): every row starts as the source's.
        src_out, head = D.b4.out, self.head
        self.head.weight.copy_((src['b4.out.weight'] * (src_out.weight_gain / head.weight_gain)).expand_as(head.weight))
        self.head.bias.copy_((src['b4.out.bias'] * (src_out.bias_gain / head.bias_gain)).expand_as(head.bias))
        return self


def discriminator_from_source(D, num_classes, freeze_layers=None, head_lr_multiplier=1):
    """A HyperDiscriminator that starts from the unconditional D (loaded)."""
    kwargs = constructor_kwargs(D)
    if freeze_layers is not None:
        kwargs['block_kwargs'] = dict(kwargs.get('block_kwargs', {}), freeze_layers=freeze_layers)
    return HyperDiscriminator(discriminator=kwargs, num_classes=num_classes,
                              head_lr_multiplier=head_lr_multiplier).load_source(D)
