"""The miner: a small network in front of frozen pretrained generators.

``MinedGenerator`` wraps one or several host generators so that ``G(z, c)``, ``G.mapping``
(which the StyleGAN2 loss calls, style mixing included) and ``G.synthesis`` all go through
the miner; host-style code samples it like any generator. Layout:

    mapping   = MinedMapping:   miners[j], mappings[j] (the sources' mapping networks), selector
    synthesis = MinedSynthesis: syntheses[j] (the sources' synthesis networks)

With one source the ws between them are the source's own. With several, ``mapping`` picks a
generator per sample and packs the choice into the ws (padded to the widest w, plus one
channel holding the generator index), which ``synthesis`` unpacks; the loss never notices.

Style mixing with several sources: the host loss maps a second latent with the *same* ``c``
tensor right after the first (``ws[:, cutoff:] = G_mapping(randn_like(z), c, ...)``). That
second call must reuse the first call's generator choice, or synthesis would run one
generator on another's ws (a hybrid never sampled at test time). ``MinedMapping`` therefore
remembers its last sampled choice together with the ``c`` object it was made for, and the
next call with that very ``c`` object (and batch size) reuses it once. ``MinedSynthesis``
refuses ws whose layers name different generators, so a host that mixes another way fails
loudly instead of training on hybrids.

Freezing (stage 1: only miners and selector train; MineGAN++: only selected channels) uses
gradient masks (training_ext.common.freezing), which survive the host loop.
"""
import re
import weakref

import torch

from plugin.hosts import active_host
from plugin.layouts import takes_update_emas
from plugin.persistence import constructor_kwargs, persistent_class
from training_ext.common.freezing import register_gradient_masks


@persistent_class(None)
class Miner(torch.nn.Module):
    """z -> z (or w -> w): Linear, ReLU, Linear. ``init='identity'`` adds the input back and
    zero-initialises the last layer, so mining starts exactly at the source distribution;
    ``init='default'`` is the reference's plain MLP."""

    def __init__(self,
        in_dim,                # Input width.
        out_dim,               # Output width; must equal in_dim for init='identity'.
        hidden  = None,        # Hidden width (>= 1); None = out_dim.
        init    = 'identity',  # 'identity' = residual, starts as the identity; 'default' = plain MLP.
    ):
        super().__init__()
        if init not in ('identity', 'default'):
            raise ValueError(f"miner init must be 'identity' or 'default', got {init!r}")
        if init == 'identity' and in_dim != out_dim:
            raise ValueError('an identity-initialised miner needs equal input and output widths')
        hidden = out_dim if hidden is None else hidden
        if hidden < 1:
            raise ValueError(f'a miner needs at least one hidden unit, got {hidden}')
        self.residual = init == 'identity'
        self.fc1 = torch.nn.Linear(in_dim, hidden)
        self.fc2 = torch.nn.Linear(hidden, out_dim)
        if self.residual:
            torch.nn.init.zeros_(self.fc2.weight)
            torch.nn.init.zeros_(self.fc2.bias)

    def forward(self, x):
        y = self.fc2(torch.relu(self.fc1(x)))
        return x + y if self.residual else y


@persistent_class(None)
class Selector(torch.nn.Module):
    """Per-sample logits over the source generators, from the input noise."""

    def __init__(self,
        z_dim,                # Input noise width.
        num_generators,       # Number of source generators (logits).
        hidden         = 64,  # Hidden width.
    ):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(z_dim, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, num_generators))
        torch.nn.init.zeros_(self.net[2].weight)      # start uniform over the generators
        torch.nn.init.zeros_(self.net[2].bias)

    def forward(self, z):
        return self.net(z)


def _in_graph(module):
    """0 * (sum of the module's trainable parameters), to add to an output: parameters that a
    batch did not use (a source no sample chose, the selector, whose choice is detached) stay in
    the autograd graph with a zero gradient, which the host's multi-process loop needs (its
    DistributedDataParallel runs without unused-parameter detection and fails otherwise)."""
    params = [p for p in module.parameters() if p.requires_grad]
    if not params or not torch.is_grad_enabled():
        return 0
    return sum(p.sum() for p in params) * 0


# MinedMapping -> (c, choice) of its last sampled call, for the style-mixing call that follows.
# Kept outside the module so that it is never pickled nor deep-copied into G_ema.
_PENDING_CHOICE = weakref.WeakKeyDictionary()


@persistent_class(None)
class MinedMapping(torch.nn.Module):
    def __init__(self,
        mappings,                 # The sources' mapping networks; several = choice packed into the ws.
        z_dim,                    # Input z width (the miners' and selector's input).
        space      = 'z',         # 'z' = miner before each mapping; else ('w') after it, before truncation.
        miner_init = 'identity',  # For Miner: 'identity' or 'default'.
    ):
        super().__init__()
        self.space = space
        self.mappings = torch.nn.ModuleList(mappings)
        self.z_dim = z_dim
        self.w_dims = [m.w_dim for m in mappings]
        self.num_ws = mappings[0].num_ws
        if space == 'z':
            self.miners = torch.nn.ModuleList([Miner(z_dim, m.z_dim, init=miner_init) for m in mappings])
        else:
            self.miners = torch.nn.ModuleList([Miner(m.w_dim, m.w_dim, init=miner_init) for m in mappings])
        self.selector = Selector(z_dim, len(mappings)) if len(mappings) > 1 else None
        self.packed = len(mappings) > 1
        self.w_dim = max(self.w_dims) + 1 if self.packed else self.w_dims[0]
        # The sources' running-mean convention, which a loss reads here (see
        # plugin.layouts.takes_update_emas): the stylegan3 repo's mappings take update_emas, stylegan2-ada's
        # skip_w_avg_update. forward() accepts both and passes the sources' own.
        self.takes_update_emas = takes_update_emas(mappings[0])

    def _ema_kwargs(self, kwargs):
        update_emas, skip = kwargs.pop('update_emas', None), kwargs.pop('skip_w_avg_update', None)
        if self.takes_update_emas:
            return dict(update_emas=bool(update_emas)) if update_emas is not None else {}
        if skip is None and update_emas is not None:       # the stylegan3 repo's loss on stylegan2-ada sources
            skip = not update_emas
        return dict(skip_w_avg_update=skip) if skip is not None else {}

    @property
    def w_avg(self):
        """The source's mean w, for host tools that truncate ws toward ``mapping.w_avg`` (one
        source; the truncation G(z, c, truncation_psi=...) does uses it too). Several sources
        have no common w space: use G(z, c, truncation_psi=...), which truncates each sample
        toward its own source's mean."""
        if self.packed:
            raise AttributeError('a mined generator with several sources has no single w_avg; truncate with '
                                 'G(z, c, truncation_psi=...)')
        return self.mappings[0].w_avg

    def select(self, z):
        """Generator index per sample: sampled from the selector while training, argmax otherwise."""
        if self.selector is None:
            return torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
        logits = self.selector(z).detach()
        # Both hosts' loops run a module summary on torch.empty latents before training: rows of
        # uninitialised memory can give non-finite logits there. Such a row picks uniformly
        # (Categorical would raise on it, and the summary would stop the run at random).
        logits = torch.where(torch.isfinite(logits).all(1, keepdim=True), logits, torch.zeros_like(logits))
        if self.training:
            return torch.distributions.Categorical(logits=logits).sample()
        return logits.argmax(1)

    def _choice(self, z, c):
        """The generator per sample; the style-mixing call (same ``c`` object and batch size
        as the call before it) reuses the previous choice, once."""
        pending = _PENDING_CHOICE.pop(self, None)
        if pending is not None and c is not None and pending[0] is c and pending[1].shape[0] == z.shape[0]:
            return pending[1]
        select = self.select(z)
        if self.training and isinstance(c, torch.Tensor):
            _PENDING_CHOICE[self] = (c, select)
        return select

    def _one(self, j, z, c, truncation_psi, truncation_cutoff, **kwargs):
        mapping, miner = self.mappings[j], self.miners[j]
        if self.space == 'z':
            return mapping(miner(z), c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, **kwargs)
        ws = miner(mapping(z, c, **kwargs))            # w-space miner: before truncation
        if truncation_psi != 1:
            cut = slice(None) if truncation_cutoff is None else slice(None, truncation_cutoff)
            ws = ws.clone()
            ws[:, cut] = mapping.w_avg.lerp(ws[:, cut], truncation_psi)
        return ws

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, select=None, **kwargs):
        kwargs.update(self._ema_kwargs(kwargs))
        if not self.packed:
            return self._one(0, z, c, truncation_psi, truncation_cutoff, **kwargs)
        if select is None:
            select = self._choice(z, c)
        elif isinstance(select, int):
            select = torch.full([z.shape[0]], select, dtype=torch.long, device=z.device)
        out = torch.zeros([z.shape[0], self.num_ws, self.w_dim], device=z.device)
        for j in range(len(self.mappings)):
            idx = (select == j).nonzero().squeeze(1)
            if idx.numel():
                cj = c[idx] if c is not None and c.numel() else c
                out = out.index_put((idx,), torch.nn.functional.pad(
                    self._one(j, z[idx], cj, truncation_psi, truncation_cutoff, **kwargs),
                    [0, self.w_dim - self.w_dims[j]]))
        out = out + _in_graph(self)
        out[:, :, -1] = select.to(out.dtype).unsqueeze(1)
        return out


@persistent_class(None)
class MinedSynthesis(torch.nn.Module):
    def __init__(self, syntheses):
        super().__init__()
        self.syntheses = torch.nn.ModuleList(syntheses)
        self.w_dims = [s.w_dim for s in syntheses]
        self.packed = len(syntheses) > 1
        self.num_ws = syntheses[0].num_ws
        self.img_resolution = syntheses[0].img_resolution
        self.img_channels = syntheses[0].img_channels
        self.w_dim = max(self.w_dims) + 1 if self.packed else self.w_dims[0]
        if hasattr(syntheses[0], 'block_resolutions'):           # not on alias-free syntheses
            self.block_resolutions = syntheses[0].block_resolutions
        # True in the miner-only stage: the stylegan3 families' running means of the synthesis
        # (the alias-free layers' magnitude_ema) stay as they are, like its weights.
        self.freeze_emas = False

    def forward(self, ws, **kwargs):
        if self.freeze_emas:
            kwargs.pop('update_emas', None)
        if not self.packed:
            return self.syntheses[0](ws, **kwargs)
        index = ws[:, :, -1].detach().round().long()
        select = index[:, 0]
        if (index != select.unsqueeze(1)).any():
            raise ValueError('mined ws mix several source generators across layers (style mixing between samples '
                             'of different generators); each sample must use one generator in every layer')
        img = None
        for j, synthesis in enumerate(self.syntheses):
            idx = (select == j).nonzero().squeeze(1)
            if idx.numel() == 0:
                continue
            part = synthesis(ws[idx, :, :self.w_dims[j]], **kwargs)
            if img is None:
                img = torch.zeros([ws.shape[0], *part.shape[1:]], device=part.device, dtype=part.dtype)
            img = img.index_put((idx,), part)
        return img + _in_graph(self)


@persistent_class(None)
class MinedGenerator(torch.nn.Module):
    """Miner(s) + pretrained generator(s), constructed from the generators' kwargs.

    ``generators``: list of the sources' generator kwargs (with class_name); weights come
    from the stage's initial pickle. ``train``: 'miner' (stage 1: only miners and selector
    learn), 'all' (stage 2), or 'sparse' (stage 2 with per-channel masks, MineGAN++).
    ``c_dim``, ``img_resolution`` and ``img_channels`` are what the training loop passes;
    ``img_resolution`` and a non-zero ``c_dim`` must agree with the sources (``img_channels``
    is not used).
    """

    def __init__(self,
        generators,                   # The sources' generator kwargs (with class_name); same resolution.
        space          = 'z',         # Where the miners act: 'z' or 'w'.
        miner_init     = 'identity',  # For Miner: 'identity' or 'default'.
        train          = 'miner',     # 'miner' = only miners and selector; 'all'; 'sparse' = per-channel masks.
        c_dim          = None,        # The loop's label width; None or 0 = unchecked, else every source must match.
        img_resolution = None,        # The loop's image size; None = unchecked, else must match the sources.
        img_channels   = None,        # The loop's image channels; unused.
    ):
        super().__init__()
        if not generators:
            raise ValueError('MinedGenerator needs at least one source generator')
        if space not in ('z', 'w'):
            raise ValueError(f"mining space must be 'z' or 'w', got {space!r}")
        if train not in ('miner', 'all', 'sparse'):
            raise ValueError(f"train must be 'miner', 'all' or 'sparse', got {train!r}")
        host = active_host()
        gens = [host.construct_class_by_name(**dict(kw)) for kw in generators]
        res = {g.img_resolution for g in gens}
        if len(res) > 1:
            raise ValueError(f'source generators have different resolutions: {sorted(res)}')
        if img_resolution is not None and img_resolution != gens[0].img_resolution:
            raise ValueError(f'the target images are {img_resolution}px, the sources {gens[0].img_resolution}px')
        if c_dim not in (None, 0) and any(g.c_dim != c_dim for g in gens):
            raise ValueError('conditional mining needs sources with the target\'s number of classes')
        self.z_dim = gens[0].z_dim
        self.c_dim = gens[0].c_dim
        self.img_resolution = gens[0].img_resolution
        self.img_channels = gens[0].img_channels
        self.train_mode = train
        self.mapping = MinedMapping([g.mapping for g in gens], self.z_dim, space, miner_init)
        self.synthesis = MinedSynthesis([g.synthesis for g in gens])
        self.num_ws = self.synthesis.num_ws
        self.w_dim = self.mapping.w_dim
        self._freeze(train)

    def _freeze(self, train):
        self.synthesis.freeze_emas = train == 'miner'
        if train == 'all':
            return
        generator_params = {f'mapping.mappings.{n}': p for n, p in self.mapping.mappings.named_parameters()}
        generator_params.update({f'synthesis.{n}': p for n, p in self.synthesis.named_parameters()})
        masks = None
        if train == 'sparse':
            # Per output channel of every synthesis conv layer (weight rows and bias); all
            # ones until the sparse selection fills them in (see sparse.py).
            masks = {n: torch.ones([p.shape[0]] + [1] * (p.ndim - 1)) for n, p in channel_params(self).items()}
        register_gradient_masks(self, generator_params, masks)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, select=None, **synthesis_kwargs):
        emas = {k: synthesis_kwargs[k] for k in ('update_emas',) if k in synthesis_kwargs}
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, select=select,
                          **emas)
        return self.synthesis(ws, **synthesis_kwargs)


_ALIAS_FREE_LAYER = re.compile(r'L\d+_\d+_\d+$')


def is_channel_param(name, p):
    """Weights and biases of the synthesis conv layers (StyleGAN2: conv0/conv1 of every block;
    alias-free: the layers L<i>_<size>_<channels>), scored per output channel. ToRGB is not a
    channel layer (for alias-free layers, channel_params drops it)."""
    parts = name.split('.')
    return (name.startswith('synthesis.') and len(parts) >= 2 and parts[-1] in ('weight', 'bias')
            and (parts[-2] in ('conv0', 'conv1') or _ALIAS_FREE_LAYER.match(parts[-2]) is not None))


def channel_params(G):
    """name -> parameter of G's channel layers (is_channel_param), without alias-free ToRGB."""
    out = {}
    for n, p in G.named_parameters():
        if is_channel_param(n, p) and not getattr(G.get_submodule(n.rsplit('.', 1)[0]), 'is_torgb', False):
            out[n] = p
    return out



def mined_from_sources(generators, space='z', miner_init='identity', train='miner'):
    """A MinedGenerator holding the given (loaded) generators' weights."""
    M = MinedGenerator([constructor_kwargs(G) for G in generators], space=space, miner_init=miner_init, train=train)
    with torch.no_grad():
        for j, G in enumerate(generators):
            M.mapping.mappings[j].load_state_dict(G.mapping.state_dict())
            M.synthesis.syntheses[j].load_state_dict(G.synthesis.state_dict())
    return M
