"""Training flags (the host train.py's, with the same names and meaning) -> the ``args``
EasyDict that ``training_loop(**args)`` takes, with ``class_name`` kwargs for every seam.

One small function per group of flags, in the host's order, each adding to the run
description the way the host does (``00000-mydata-auto1-kimg100``) and raising UserError
with a one-line message for bad values.
"""
import os

from .easydict import EasyDict
from .hosts import active_host
from .errors import UserError
from .devices import choose_device, cuda_available
from .files import list_snapshots


# The host's configurations, plus 'tiny': small networks that train on a CPU in minutes.
CFG_SPECS = {
    'auto':      dict(ref_gpus=-1, kimg=25000,  mb=-1, mbstd=-1, fmaps=-1,  lrate=-1,     gamma=-1,   ema=-1,  ramp=0.05, map=2),
    'stylegan2': dict(ref_gpus=8,  kimg=25000,  mb=32, mbstd=4,  fmaps=1,   lrate=0.002,  gamma=10,   ema=10,  ramp=None, map=8),
    'paper256':  dict(ref_gpus=8,  kimg=25000,  mb=64, mbstd=8,  fmaps=0.5, lrate=0.0025, gamma=1,    ema=20,  ramp=None, map=8),
    'paper512':  dict(ref_gpus=8,  kimg=25000,  mb=64, mbstd=8,  fmaps=1,   lrate=0.0025, gamma=0.5,  ema=20,  ramp=None, map=8),
    'paper1024': dict(ref_gpus=8,  kimg=25000,  mb=32, mbstd=4,  fmaps=1,   lrate=0.002,  gamma=2,    ema=10,  ramp=None, map=8),
    'cifar':     dict(ref_gpus=2,  kimg=100000, mb=64, mbstd=32, fmaps=1,   lrate=0.0025, gamma=0.01, ema=500, ramp=0.05, map=2),
    'tiny':      dict(ref_gpus=-1, kimg=200,    mb=16, mbstd=4,  fmaps=-1,  lrate=0.0025, gamma=-1,   ema=-1,  ramp=0.05, map=2,
                      zdim=64, cmax=32),
}
# Defaults of host flags that the plugin's methods read too (one place; 0 given is 0).
HOST_DEFAULTS = dict(gpus=1, snap=50, seed=0)

# The stylegan3 repo's train.py configurations. '--cfg stylegan2' means stylegan2-ada's config
# (training.networks) on the embedded host and a stylegan2-ada checkout, and this repo's
# (training.networks_stylegan2, its hyperparameters) on a stylegan3 checkout; 'sg3-stylegan2'
# names the latter on any host.
SG3_CFGS = ('stylegan3-t', 'stylegan3-r', 'sg3-stylegan2')
# The defaults of the stylegan3 train.py flags that stylegan2-ada's lacks (one place; the
# flags' help texts read them). A dict value is per config ('*': the others).
SG3_DEFAULTS = dict(cbase=32768, cmax=512, glr={'sg3-stylegan2': 0.002, '*': 0.0025}, dlr=0.002,
                    map_depth={'sg3-stylegan2': 8, '*': 2}, mbstd_group=4, freezed=0, kimg=25000, p=0.2)
# Flags that only the stylegan3 configs take (stylegan2-ada's configs fix these values).
SG3_ONLY_FLAGS = ('cbase', 'cmax', 'glr', 'dlr', 'map_depth', 'mbstd_group')
# Of those, the ones that shape the networks (refused when G and D come from a --resume pickle).
SG3_NETWORK_FLAGS = ('cbase', 'cmax', 'map_depth', 'mbstd_group')
# stylegan2-ada flags with no meaning in the stylegan3 configs (their train.py and loop lack them).
SG2ADA_ONLY_FLAGS = dict(nhwc='channels-last fp16 is not an option of the stylegan3 repo\'s configs',
                         allow_tf32='the stylegan3 repo\'s loop always disables TF32')


def sg3_default(name, cfg=None):
    """SG3_DEFAULTS[name], for ``cfg`` where it depends on the config."""
    value = SG3_DEFAULTS[name]
    return value.get(cfg, value['*']) if isinstance(value, dict) else value
AUGMENTS = ('noaug', 'ada', 'fixed')
METRICS = ()          # offline metrics arrive with the evaluation work; 'none' is always accepted


def flag(flags, name, defaults=HOST_DEFAULTS):
    """A flag's value, or its default when it was not given (None). Never ``value or default``:
    a 0 given on the command line stays 0."""
    value = flags.get(name)
    return defaults[name] if value is None else value


def build(flags):
    """(run description, training_loop kwargs) from a dict of flag values (None = default).

    With a host checkout active, its own train.py option handling builds the options where it
    can (a fork's changed defaults are then honoured); the plugin's flags apply on top."""
    f = EasyDict({k: v for k, v in flags.items()})
    if f.get('resume') and f.resume != 'noresume':
        f.resume = resolve_resume(f.resume)
    f.cfg = _cfg_name(f.get('cfg'))
    networks = _resume_networks(f)
    if networks is not None:
        # Training hyperparameters: the config that made the pickle for the stylegan3 repo's
        # families, else auto; G and D from the pickle.
        f.cfg = networks[3] or 'auto'
    _check_config_flags(f, resumed=networks is not None)
    # A stylegan2-ada checkout builds its own configs' options; the stylegan3 configs are ours.
    host_options = getattr(active_host(), 'training_options', None) if f.cfg not in SG3_CFGS else None
    built = host_options(f) if host_options is not None else None
    if built is not None:
        desc, args = built
        args = EasyDict(args)
        if networks is not None:
            _use_resume_networks(args, networks, args.training_set_kwargs.resolution)
        _performance(f, args)
        return _with_desc(f, desc), args
    args = EasyDict()
    desc = _general(f, args)
    desc = _dataset(f, args, desc)
    if f.cfg in SG3_CFGS:
        desc = _sg3_config(f, args, desc, resumed=networks is not None)
        if networks is not None:
            _use_resume_networks(args, networks, args.training_set_kwargs.resolution)
    else:
        desc = _base_config(f, args, desc)
        if networks is not None:
            desc = desc.replace('-auto', '-resume', 1)
            _use_resume_networks(args, networks, args.training_set_kwargs.resolution)
        desc = _overrides(f, args, desc)
    desc = _augmentation(f, args, desc)
    desc = _transfer(f, args, desc)
    _performance(f, args)
    return _with_desc(f, desc), args


def _with_desc(f, desc):
    """--desc (the stylegan3 train.py's): appended to the run directory's name."""
    return desc + f'-{f.desc}' if f.get('desc') else desc


def _cfg_name(cfg):
    """--cfg as the plugin names it: 'stylegan2' on a stylegan3 checkout is that repo's config."""
    if cfg == 'stylegan2' and getattr(active_host(), 'repo', None) == 'stylegan3':
        return 'sg3-stylegan2'
    return cfg


def _check_config_flags(f, resumed):
    """A flag that means nothing for the chosen config is a one-line error, never ignored."""
    cfg = f.get('cfg') or 'auto'
    sg3 = cfg in SG3_CFGS
    given = [k for k in SG3_ONLY_FLAGS if f.get(k) is not None]
    if given and not sg3:
        raise UserError(f'--{given[0].replace("_", "-")}: a flag of the stylegan3 repo\'s configs (--cfg '
                        f'{"|".join(SG3_CFGS)}); --cfg {cfg} sets this itself')
    if resumed:
        fixed = [k for k in SG3_NETWORK_FLAGS if f.get(k) is not None]
        if fixed:
            raise UserError(f'--{fixed[0].replace("_", "-")}: G and D are built from the --resume pickle (--cfg '
                            'resume); their architecture cannot be changed')
    if sg3:
        for k, why in SG2ADA_ONLY_FLAGS.items():
            if f.get(k):
                raise UserError(f'--{k.replace("_", "-")}: not with --cfg {cfg} ({why})')
    if getattr(active_host(), 'repo', None) == 'stylegan2-ada' and sg3:
        raise UserError(f'--cfg {cfg} needs the stylegan3 repo\'s networks, which a stylegan2-ada-pytorch checkout '
                        'lacks: use the embedded host or a stylegan3 checkout')
    if getattr(active_host(), 'repo', None) == 'stylegan3' and not sg3:
        what = 'a --resume pickle of stylegan2-ada\'s networks' if resumed else f'--cfg {cfg}'
        raise UserError(f'{what}: a stylegan2-ada-pytorch config; a stylegan3 checkout trains --cfg '
                        'stylegan3-t|stylegan3-r|stylegan2, or resumes a pickle of its own networks')


def _general(f, args):
    gpus = flag(f, 'gpus')
    if not (gpus >= 1 and gpus & (gpus - 1) == 0):
        raise UserError('--gpus must be a power of two')
    args.num_gpus = gpus
    snap = flag(f, 'snap')
    if snap < 1:
        raise UserError('--snap must be at least 1')
    args.image_snapshot_ticks = args.network_snapshot_ticks = snap
    metrics = [m for m in (f.get('metrics') or []) if m != 'none']
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        raise UserError(f'--metrics: {", ".join(bad)} not available offline; use --metrics=none')
    args.metrics = metrics
    args.random_seed = flag(f, 'seed')
    return ''


def _dataset(f, args, desc):
    host = active_host()
    if f.get('training_set_kwargs'):
        # A plugin stage supplies its own dataset (generated data, say) instead of --data.
        args.training_set_kwargs = EasyDict(f.training_set_kwargs)
    elif not f.get('data'):
        raise UserError('--data is required')
    else:
        args.training_set_kwargs = EasyDict(class_name='training.dataset.ImageFolderDataset', path=f.data,
                                            use_labels=True, max_size=None, xflip=False)
    args.data_loader_kwargs = EasyDict(pin_memory=True, num_workers=3, prefetch_factor=2)
    try:
        ds = host.construct_class_by_name(**args.training_set_kwargs)
    except IOError as e:
        raise UserError(f'--data: {e}') from None
    args.training_set_kwargs.resolution = ds.resolution
    args.training_set_kwargs.use_labels = ds.has_labels
    args.training_set_kwargs.max_size = len(ds)
    desc = ds.name
    if f.get('cond'):
        if not ds.has_labels:
            raise UserError('--cond=1 requires labels specified in dataset.json')
        desc += '-cond'
    else:
        args.training_set_kwargs.use_labels = False
    if f.get('subset') is not None:
        if not 1 <= f.subset <= args.training_set_kwargs.max_size:
            raise UserError(f'--subset must be between 1 and {args.training_set_kwargs.max_size}')
        desc += f'-subset{f.subset}'
        if f.subset < args.training_set_kwargs.max_size:
            args.training_set_kwargs.max_size = f.subset
            args.training_set_kwargs.random_seed = args.random_seed
    if f.get('mirror'):
        desc += '-mirror'
        args.training_set_kwargs.xflip = True
    args._resolution = ds.resolution
    ds.close()
    return desc


def _resume_networks(f):
    """(G kwargs, D kwargs, pickle) of the --resume pickle when the networks are to be built from
    it: ``--cfg resume``, or ``--cfg auto`` (the default) with a --resume pickle (said in the
    log). Else None: the networks come from the config, as in the host."""
    cfg = f.get('cfg') or 'auto'
    resume = f.get('resume')
    if cfg == 'resume' and (not resume or resume == 'noresume'):
        raise UserError('--cfg resume builds G and D from the --resume pickle: give --resume PKL')
    if cfg not in ('resume', 'auto') or not resume or resume == 'noresume':
        return None
    from .persistence import constructor_kwargs
    from .pickles import load_network_pkl
    data = load_network_pkl(resume)
    G, D = data.get('G_ema') or data.get('G'), data.get('D')
    if G is None or D is None:
        raise UserError(f'--cfg {cfg}: {resume} holds no G/G_ema and D to build the networks from')
    G_kwargs, D_kwargs = _easy(constructor_kwargs(G)), _easy(constructor_kwargs(D))
    family_cfg = _sg3_family_cfg(G_kwargs)
    if ('synthesis_kwargs' not in G_kwargs and family_cfg is None) or 'epilogue_kwargs' not in D_kwargs:
        raise UserError(f'--cfg {cfg}: {resume} holds a {type(G).__name__}, not a StyleGAN2 generator; continue '
                        'a plugin method\'s result with its own method')
    if cfg == 'auto':
        print(f'--cfg auto with --resume {resume}: G and D are built from the pickle\'s own kwargs (as --cfg resume)')
    if family_cfg is not None:
        print(f'--resume {resume}: a {family_cfg} network of the stylegan3 repo; training hyperparameters as its '
              f'train.py sets them for --cfg {family_cfg}')
    return G_kwargs, D_kwargs, resume, family_cfg


def _sg3_family_cfg(G_kwargs):
    """The stylegan3 train.py config that builds a generator of these kwargs, or None
    (stylegan2-ada's, or a plugin network)."""
    name = G_kwargs.get('class_name')
    if name == 'training.networks_stylegan2.Generator':
        return 'sg3-stylegan2'
    if name == 'training.networks_stylegan3.Generator':
        radial = G_kwargs.get('conv_kernel') == 1 or G_kwargs.get('use_radial_filters')
        return 'stylegan3-r' if radial else 'stylegan3-t'
    return None


def _easy(obj):
    if isinstance(obj, dict):
        return EasyDict({k: _easy(v) for k, v in obj.items()})
    return [_easy(v) for v in obj] if isinstance(obj, list) else obj


def _use_resume_networks(args, networks, resolution):
    """The run's G_kwargs and D_kwargs become the pickle's; the loop supplies c_dim (--cond widens
    an unconditional pickle at resume), resolution and channels, as for any config."""
    G_kwargs, D_kwargs, path, _ = networks
    if G_kwargs.get('img_resolution') != resolution:
        raise UserError(f'--resume {path} generates {G_kwargs.get("img_resolution")}px images, the data is '
                        f'{resolution}px')
    for kw in (G_kwargs, D_kwargs):
        for key in ('c_dim', 'img_resolution', 'img_channels'):
            kw.pop(key, None)
    D_kwargs.setdefault('block_kwargs', EasyDict())          # --freezed writes into it
    args.G_kwargs, args.D_kwargs = G_kwargs, D_kwargs


def _base_config(f, args, desc):
    cfg = f.get('cfg') or 'auto'
    if cfg not in CFG_SPECS:
        raise UserError(f'--cfg must be one of {", ".join(CFG_SPECS)}')
    desc += f'-{cfg}'
    spec = EasyDict(CFG_SPECS[cfg])
    gpus, res = args.num_gpus, args.pop('_resolution')
    if spec.ref_gpus < 0:
        desc += f'{gpus:d}'
        spec.ref_gpus = gpus
    if spec.mb < 0:
        spec.mb = max(min(gpus * min(4096 // res, 32), 64), gpus)
    if spec.mbstd < 0:
        spec.mbstd = min(spec.mb // gpus, 4)
    if spec.fmaps < 0:
        spec.fmaps = (1 if res >= 512 else 0.5) if cfg == 'auto' else 1 / 32
    if spec.lrate < 0:
        spec.lrate = 0.002 if res >= 1024 else 0.0025
    if spec.gamma < 0:
        spec.gamma = 0.0002 * (res ** 2) / spec.mb
    if spec.ema < 0:
        spec.ema = spec.mb * 10 / 32
    zdim, cmax = spec.get('zdim', 512), spec.get('cmax', 512)
    args.G_kwargs = EasyDict(class_name='training.networks.Generator', z_dim=zdim, w_dim=zdim,
                             mapping_kwargs=EasyDict(), synthesis_kwargs=EasyDict())
    args.D_kwargs = EasyDict(class_name='training.networks.Discriminator', block_kwargs=EasyDict(),
                             mapping_kwargs=EasyDict(), epilogue_kwargs=EasyDict())
    args.G_kwargs.synthesis_kwargs.channel_base = args.D_kwargs.channel_base = int(spec.fmaps * 32768)
    args.G_kwargs.synthesis_kwargs.channel_max = args.D_kwargs.channel_max = cmax
    args.G_kwargs.mapping_kwargs.num_layers = spec.map
    args.G_kwargs.synthesis_kwargs.num_fp16_res = args.D_kwargs.num_fp16_res = 4
    args.G_kwargs.synthesis_kwargs.conv_clamp = args.D_kwargs.conv_clamp = 256
    args.D_kwargs.epilogue_kwargs.mbstd_group_size = spec.mbstd
    args.G_opt_kwargs = EasyDict(class_name='torch.optim.Adam', lr=spec.lrate, betas=[0, 0.99], eps=1e-8)
    args.D_opt_kwargs = EasyDict(class_name='torch.optim.Adam', lr=spec.lrate, betas=[0, 0.99], eps=1e-8)
    args.loss_kwargs = EasyDict(class_name='training.loss.StyleGAN2Loss', r1_gamma=spec.gamma)
    args.total_kimg = spec.kimg
    args.batch_size = spec.mb
    args.batch_gpu = spec.mb // spec.ref_gpus
    args.ema_kimg = spec.ema
    args.ema_rampup = spec.ramp
    if cfg == 'cifar':
        args.loss_kwargs.pl_weight = 0
        args.loss_kwargs.style_mixing_prob = 0
        args.D_kwargs.architecture = 'orig'
    return desc


def _sg3_config(f, args, desc, resumed=False):
    """The stylegan3 repo's train.py for --cfg stylegan3-t|stylegan3-r|sg3-stylegan2: its kwargs,
    key for key and in its order. --batch and --gamma are required there; a --resume pickle's
    run (``resumed``) takes auto's values for them when they are not given."""
    cfg, gpus, res = f.cfg, args.num_gpus, args.pop('_resolution')
    for name in ('batch', 'gamma'):
        if f.get(name) is None and not resumed:
            raise UserError(f'--cfg {cfg} needs --{name} (the stylegan3 train.py has no default for it)')
    batch = f.batch if f.get('batch') is not None else max(min(gpus * min(4096 // res, 32), 64), gpus)
    gamma = f.gamma if f.get('gamma') is not None else 0.0002 * (res ** 2) / batch
    if not (batch >= 1 and batch % gpus == 0):
        raise UserError('--batch must be at least 1 and a multiple of --gpus')
    if not gamma >= 0:
        raise UserError('--gamma must be non-negative')
    value = lambda name: f.get(name) if f.get(name) is not None else sg3_default(name, cfg)   # noqa: E731
    for name in ('cbase', 'cmax', 'map_depth', 'mbstd_group'):
        if not value(name) >= 1:
            raise UserError(f'--{name.replace("_", "-")} must be at least 1')
    for name in ('glr', 'dlr', 'freezed'):
        if not value(name) >= 0:
            raise UserError(f'--{name} must be non-negative')
    args.G_kwargs = EasyDict(class_name=None, z_dim=512, w_dim=512, mapping_kwargs=EasyDict())
    args.D_kwargs = EasyDict(class_name='training.networks_stylegan2.Discriminator', block_kwargs=EasyDict(),
                             mapping_kwargs=EasyDict(), epilogue_kwargs=EasyDict())
    args.G_opt_kwargs = EasyDict(class_name='torch.optim.Adam', betas=[0, 0.99], eps=1e-8)
    args.D_opt_kwargs = EasyDict(class_name='torch.optim.Adam', betas=[0, 0.99], eps=1e-8)
    args.loss_kwargs = EasyDict(class_name='training.loss.StyleGAN2Loss')
    args.batch_size = batch
    args.batch_gpu = f.batch_gpu if f.get('batch_gpu') is not None else batch // gpus
    args.G_kwargs.channel_base = args.D_kwargs.channel_base = value('cbase')
    args.G_kwargs.channel_max = args.D_kwargs.channel_max = value('cmax')
    args.G_kwargs.mapping_kwargs.num_layers = value('map_depth')
    args.D_kwargs.block_kwargs.freeze_layers = value('freezed')
    args.D_kwargs.epilogue_kwargs.mbstd_group_size = value('mbstd_group')
    args.loss_kwargs.r1_gamma = gamma
    args.G_opt_kwargs.lr = value('glr')
    args.D_opt_kwargs.lr = value('dlr')
    args.total_kimg = value('kimg')
    if f.get('kimg') is not None and not f.kimg >= 1:
        raise UserError('--kimg must be at least 1')
    args.training_set_kwargs.random_seed = args.random_seed
    if not (args.batch_gpu >= 1 and batch % (gpus * args.batch_gpu) == 0):
        raise UserError('--batch must be a multiple of --gpus times --batch-gpu')
    if args.batch_gpu < value('mbstd_group'):
        raise UserError(f'--batch-gpu ({args.batch_gpu}) cannot be smaller than --mbstd-group ({value("mbstd_group")})')
    args.ema_kimg = batch * 10 / 32
    args.ema_rampup = 0.05                  # the stylegan3 loop's default (the embedded loop's is None)
    if cfg == 'sg3-stylegan2':
        args.G_kwargs.class_name = 'training.networks_stylegan2.Generator'
        args.loss_kwargs.style_mixing_prob = 0.9                # style mixing regularisation
        args.loss_kwargs.pl_weight = 2                          # path length regularisation
        args.G_reg_interval = 4                                 # lazy regularisation of G
        args.G_kwargs.fused_modconv_default = 'inference_only'  # plain convs in training
        args.loss_kwargs.pl_no_weight_grad = True               # path length grads skip the weights (see loss)
    else:
        args.G_kwargs.class_name = 'training.networks_stylegan3.Generator'
        args.G_kwargs.magnitude_ema_beta = 0.5 ** (batch / (20 * 1e3))
        # The stylegan3 loss's defaults, explicit for the embedded loss (whose are stylegan2-ada's):
        args.loss_kwargs.style_mixing_prob = 0                  # no style mixing
        args.loss_kwargs.pl_weight = 0                          # no path length regularisation
        args.G_reg_interval = None                              # so no lazy G phase (Gboth)
        if cfg == 'stylegan3-r':
            args.G_kwargs.conv_kernel = 1                       # 1x1 convolutions
            args.G_kwargs.channel_base *= 2                     # twice the feature maps
            args.G_kwargs.channel_max *= 2
            args.G_kwargs.use_radial_filters = True             # radially symmetric downsampling filters
            args.loss_kwargs.blur_init_sigma = 10               # blur D's images at the start ...
            args.loss_kwargs.blur_fade_kimg = batch * 200 / 32  # ... fading out over these kimg
    if f.get('aug') == 'fixed' and f.get('p') is None:
        f.p = sg3_default('p')
    return f'{cfg}-{desc}-gpus{gpus:d}-batch{batch:d}-gamma{gamma:g}'


def _overrides(f, args, desc):
    if f.get('gamma') is not None:
        if not f.gamma >= 0:
            raise UserError('--gamma must be non-negative')
        desc += f'-gamma{f.gamma:g}'
        args.loss_kwargs.r1_gamma = f.gamma
    if f.get('kimg') is not None:
        if not f.kimg >= 1:
            raise UserError('--kimg must be at least 1')
        desc += f'-kimg{f.kimg:d}'
        args.total_kimg = f.kimg
    if f.get('batch') is not None:
        if not (f.batch >= 1 and f.batch % args.num_gpus == 0):
            raise UserError('--batch must be at least 1 and divisible by --gpus')
        desc += f'-batch{f.batch}'
        args.batch_size = f.batch
        args.batch_gpu = f.batch // args.num_gpus
    if f.get('batch_gpu') is not None:
        if not (f.batch_gpu >= 1 and args.batch_size % (f.batch_gpu * args.num_gpus) == 0):
            raise UserError('--batch-gpu must divide --batch / --gpus')
        args.batch_gpu = f.batch_gpu
    mbstd = args.D_kwargs.epilogue_kwargs.get('mbstd_group_size')     # None: no grouping constraint
    if mbstd and args.batch_gpu % min(mbstd, args.batch_gpu):
        raise UserError(f'the per-GPU batch ({args.batch_gpu}) must be a multiple of the minibatch-stddev group '
                        f'({mbstd}); change --batch')
    return desc


def _augmentation(f, args, desc):
    aug = f.get('aug')
    if aug is None:
        aug = 'ada'
    else:
        desc += f'-{aug}'
    if aug not in AUGMENTS:
        raise UserError(f'--aug={aug} not supported')
    if aug == 'ada':
        args.ada_target = 0.6
    elif aug == 'fixed' and f.get('p') is None:
        raise UserError('--aug=fixed requires specifying --p')
    if f.get('p') is not None:
        if aug != 'fixed':
            raise UserError('--p can only be specified with --aug=fixed')
        if not 0 <= f.p <= 1:
            raise UserError('--p must be between 0 and 1')
        desc += f'-p{f.p:g}'
        args.augment_p = f.p
    if f.get('target') is not None:
        if aug != 'ada':
            raise UserError('--target can only be specified with --aug=ada')
        if not 0 <= f.target <= 1:
            raise UserError('--target must be between 0 and 1')
        desc += f'-target{f.target:g}'
        args.ada_target = f.target
    augpipe = f.get('augpipe')
    if augpipe is None:
        augpipe = 'bgc'
    else:
        if aug == 'noaug':
            raise UserError('--augpipe cannot be specified with --aug=noaug')
        desc += f'-{augpipe}'
    try:
        preset = augpipe_preset(augpipe)
    except ValueError as e:
        raise UserError(f'--augpipe: {e}') from None
    if aug != 'noaug':
        args.augment_kwargs = EasyDict(class_name='training.augment.AugmentPipe', **preset)
    return desc


def _transfer(f, args, desc):
    resume = f.get('resume')
    if resume is None or resume == 'noresume':
        if resume == 'noresume':
            desc += '-noresume'
    else:
        path = resolve_resume(resume)
        desc += '-resumecustom'
        args.resume_pkl = path
        args.ada_kimg = 100          # as the host: let ADA react faster at the start of a transfer
        args.ema_rampup = None
        if f.get('cfg') in SG3_CFGS:
            args.loss_kwargs.blur_init_sigma = 0     # as the stylegan3 train.py: no blur ramp-up on resume
    if f.get('freezed') is not None:
        if not f.freezed >= 0:
            raise UserError('--freezed must be non-negative')
        desc += f'-freezed{f.freezed:d}'
        args.D_kwargs.block_kwargs.freeze_layers = f.freezed
    return desc


def resolve_resume(resume):
    """A pickle path, or a run directory (its newest snapshot)."""
    if resume.startswith(('http://', 'https://')):
        raise UserError('--resume: downloads are not supported; pass a local pickle path')
    if os.path.isdir(resume):
        snaps = list_snapshots(resume)
        if not snaps:
            raise UserError(f'--resume {resume}: no network-snapshot-*.pkl in this directory')
        return snaps[-1]
    if not os.path.isfile(resume):
        raise UserError(f'--resume {resume}: no such file or directory')
    return resume


def _performance(f, args):
    device = str(choose_device(f.get('device')))
    if device.startswith('cuda') and not cuda_available():
        raise UserError('--device cuda: no CUDA device is available')
    if device == 'cpu' and args.num_gpus > 1:
        args.data_loader_kwargs.num_workers = 0     # each process is one CPU worker already
    args.device = device
    fp32 = f.get('fp32')
    if fp32 is None:
        fp32 = device == 'cpu'                      # fp16 blocks only slow a CPU down
    if fp32:
        # stylegan2-ada nests the synthesis options; the stylegan3 repo's generators take them flat.
        synthesis = args.G_kwargs.synthesis_kwargs if 'synthesis_kwargs' in args.G_kwargs else args.G_kwargs
        synthesis.num_fp16_res = args.D_kwargs.num_fp16_res = 0
        synthesis.conv_clamp = args.D_kwargs.conv_clamp = None
    if f.get('nhwc'):
        args.G_kwargs.synthesis_kwargs.fp16_channels_last = args.D_kwargs.block_kwargs.fp16_channels_last = True
    if f.get('nobench'):
        args.cudnn_benchmark = False
    if f.get('allow_tf32'):
        args.allow_tf32 = True
    if f.get('workers') is not None:
        if not f.workers >= 1:
            raise UserError('--workers must be at least 1')
        args.data_loader_kwargs.num_workers = f.workers
    elif device == 'cpu':
        args.data_loader_kwargs.num_workers = min(args.data_loader_kwargs.num_workers, 1)
    if f.get('tick') is not None:
        if not f.tick > 0:
            raise UserError('--tick must be positive')
        args.kimg_per_tick = f.tick
    if f.get('ema_kimg') is not None:
        # 0 is 0: G_ema follows G exactly (the loop's beta = 0.5 ** (batch / 0+) = 0).
        if not f.ema_kimg >= 0:
            raise UserError('--ema-kimg must be non-negative')
        args.ema_kimg = f.ema_kimg
    if f.get('resume_mode'):
        args.resume_mode = f.resume_mode


def augpipe_preset(name):
    """The host train.py's --augpipe presets as AugmentPipe kwargs (the same for every host)."""
    b = dict(xflip=1, rotate90=1, xint=1)
    g = dict(scale=1, rotate=1, aniso=1, xfrac=1)
    c = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
    presets = {'blit': b, 'geom': g, 'color': c, 'filter': dict(imgfilter=1), 'noise': dict(noise=1),
               'cutout': dict(cutout=1), 'bg': {**b, **g}, 'bgc': {**b, **g, **c},
               'bgcf': {**b, **g, **c, 'imgfilter': 1}, 'bgcfn': {**b, **g, **c, 'imgfilter': 1, 'noise': 1},
               'bgcfnc': {**b, **g, **c, 'imgfilter': 1, 'noise': 1, 'cutout': 1}}
    if name not in presets:
        raise ValueError(f'unknown --augpipe {name!r}; choose from {", ".join(presets)}')
    return dict(presets[name])
