"""Flag groups of train_cocktail.py. HOST_FLAGS mirror the host train.py (names, types,
meaning); PLUGIN_FLAGS are ours. A method adds its flags as one more group."""
import click

from .errors import DatasetError, HostError, TrainingError, UserError
from .pickles import NetworkPickleError


class CommaList(click.ParamType):
    name = 'list'

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        return [] if value in (None, '', 'none') else [v.strip() for v in value.split(',') if v.strip()]


def apply_flags(options):
    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn
    return decorate


def _sg3(name):
    """A stylegan3 flag's default, as its help text gives it."""
    from .run_options import SG3_DEFAULTS
    value = SG3_DEFAULTS[name]
    if isinstance(value, dict):
        return ', '.join(f'{value[k]} ({"others" if k == "*" else k})' for k in value)
    return value


HOST_FLAGS = [
    click.option('--outdir', required=True, metavar='DIR', help='Where to save the results'),
    click.option('--gpus', type=int, metavar='INT', help='Number of GPUs (processes on CPU) [default: 1]'),
    click.option('--snap', type=int, metavar='INT', help='Snapshot interval in ticks [default: 50]'),
    click.option('--metrics', type=CommaList(), help='Comma-separated list or "none" [default: none]'),
    click.option('--seed', type=int, metavar='INT', help='Random seed [default: 0]'),
    click.option('-n', '--dry-run', is_flag=True, help='Print training options and exit'),
    click.option('--data', metavar='PATH', help='Training data (directory or zip)'),
    click.option('--cond', type=bool, metavar='BOOL', help='Train conditional model based on dataset labels'),
    click.option('--subset', type=int, metavar='INT', help='Train with only N images [default: all]'),
    click.option('--mirror', type=bool, metavar='BOOL', help='Enable dataset x-flips [default: false]'),
    click.option('--cfg', type=click.Choice(['auto', 'stylegan2', 'paper256', 'paper512', 'paper1024', 'cifar',
                                            'stylegan3-t', 'stylegan3-r', 'sg3-stylegan2', 'tiny', 'resume']),
                 help='Base config: stylegan2-ada\'s (auto, stylegan2, paper256/512/1024, cifar); the stylegan3 '
                      'repo\'s (stylegan3-t, stylegan3-r, and sg3-stylegan2, its StyleGAN2: networks_stylegan2 '
                      'with its hyperparameters; "stylegan2" means that one only on a stylegan3 checkout, and '
                      'stylegan2-ada\'s elsewhere); tiny; resume: G and D as in the --resume pickle (what auto '
                      'does with a --resume pickle; a stylegan3-repo pickle trains with its config\'s '
                      'hyperparameters) [default: auto]'),
    click.option('--gamma', type=float, help='Override R1 gamma'),
    click.option('--kimg', type=int, help='Override training duration'),
    click.option('--batch', type=int, help='Override batch size'),
    click.option('--aug', type=click.Choice(['noaug', 'ada', 'fixed']), help='Augmentation mode [default: ada]'),
    click.option('--p', type=float, help='Augmentation probability for --aug=fixed'),
    click.option('--target', type=float, help='ADA target value for --aug=ada'),
    click.option('--augpipe', type=click.Choice(['blit', 'geom', 'color', 'filter', 'noise', 'cutout', 'bg', 'bgc',
                                                'bgcf', 'bgcfn', 'bgcfnc']), help='Augmentation pipeline [default: bgc]'),
    click.option('--resume', metavar='PKL|DIR', help='Resume from a network pickle, or a run directory\'s newest'),
    click.option('--freezed', type=int, metavar='INT', help='Freeze-D [default: 0 layers]'),
    click.option('--fp32', type=bool, metavar='BOOL', help='Disable mixed-precision training [default: true on CPU]'),
    click.option('--nhwc', type=bool, metavar='BOOL', help='Use NHWC memory format with FP16'),
    click.option('--nobench', type=bool, metavar='BOOL', help='Disable cuDNN benchmarking'),
    click.option('--allow-tf32', type=bool, metavar='BOOL', help='Allow PyTorch to use TF32 internally'),
    click.option('--workers', type=int, metavar='INT', help='Override number of DataLoader workers'),
    # The stylegan3 train.py's flags that stylegan2-ada's lacks: only with its configs (--cfg
    # stylegan3-t|stylegan3-r|sg3-stylegan2), an error with the others. Defaults: SG3_DEFAULTS.
    click.option('--cbase', type=int, metavar='INT', help=f'Capacity multiplier [default: {_sg3("cbase")}]'),
    click.option('--cmax', type=int, metavar='INT', help=f'Max. feature maps [default: {_sg3("cmax")}]'),
    click.option('--glr', type=float, metavar='FLOAT', help=f'G learning rate [default: {_sg3("glr")}]'),
    click.option('--dlr', type=float, metavar='FLOAT', help=f'D learning rate [default: {_sg3("dlr")}]'),
    click.option('--map-depth', type=int, metavar='INT', help=f'Mapping network depth [default: {_sg3("map_depth")}]'),
    click.option('--mbstd-group', type=int, metavar='INT',
                 help=f'Minibatch std group size [default: {_sg3("mbstd_group")}]'),
    click.option('--desc', metavar='STR', help='String to include in result dir name'),
]

PLUGIN_FLAGS = [
    click.option('--device', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto', show_default=True,
                 help='Where to train'),
    click.option('--host', default=None, metavar='PATH', envvar='COCKTAIL_HOST',
                 help='Host: "embedded" (default), or a stylegan2-ada-pytorch or stylegan3 checkout [env COCKTAIL_HOST]'),
    click.option('--tick', type=float, metavar='KIMG', help='Progress/snapshot tick length in kimg [default: 4]'),
    click.option('--ema-kimg', type=float, metavar='KIMG',
                 help="G_ema's half-life in kimg (0: G_ema = G) [default: the config's, batch * 10 / 32]"),
    click.option('--batch-gpu', type=int, metavar='INT', help='Images per process per accumulation round'),
    click.option('--baseline', type=click.Choice(['none', 'scratch', 'transfergan', 'freezed']),
                 help='With --cocktail or --mine: train this baseline instead, on the same data '
                      '(scratch: cocktail only; freezed: Freeze-D with --freezed, default 4)'),
    click.option('--resume-mode', type=click.Choice(['auto', 'continue', 'weights']), default=None,
                 help='continue: restore kimg, optimiser, augment p; weights: transfer only; '
                      'auto: continue when the pickle was trained on the same --data [default: auto]'),
]


# What the command line reports in one line (exit 1), for any host.
CLEAN_ERRORS = (UserError, TrainingError, DatasetError, NetworkPickleError, HostError)


class FloatList(click.ParamType):
    name = 'floats'

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        try:
            return [float(v) for v in str(value).split(',') if v.strip()]
        except ValueError:
            self.fail(f'expected comma-separated numbers, got {value!r}', param, ctx)


def _merge_flag(name, flag_names):
    return (flag_names or {}).get(name, name)


def merge_param_options(flag_names=None, skip=()):
    """click options for the merge methods' declared parameters (plugin.merging.PARAMS), named
    ``--<flag_names[name]>`` (default ``--<name>``); each help text lists the methods that take
    it with their defaults, read from the methods themselves."""
    from .merging import PARAMS, param_defaults
    types = dict(float=float, int=int, floats=FloatList())
    options = []
    for p in PARAMS:
        if p.name in skip:
            continue
        takes = ', '.join(f'{m}: {"equal" if d is None and p.name == "weights" else d}'
                          for m, d in param_defaults(p.name).items())
        options.append(click.option(f'--{_merge_flag(p.name, flag_names)}', type=types[p.kind],
                                    help=f'{p.help} [{takes}]'))
    return options


def merge_flag_names(flag_names=None, skip=()):
    """The Python names (as click passes them) of merge_param_options' flags."""
    from .merging import PARAMS
    return tuple(_merge_flag(p.name, flag_names).replace('-', '_') for p in PARAMS if p.name not in skip)


def merge_flags_given(flags, flag_names=None, skip=()):
    """{parameter: value} of the merge parameters given in ``flags`` (keyed by the flags'
    Python names, as click passes them), whatever the method."""
    from .merging import PARAMS
    given = {}
    for p in PARAMS:
        value = None if p.name in skip else flags.get(_merge_flag(p.name, flag_names).replace('-', '_'))
        if value is not None and value != []:
            given[p.name] = value
    return given


def merge_params_given(method, flags, flag_names=None, skip=(), error=ValueError):
    """merge_flags_given for ``method``: a value given to a method that does not take it is an
    error, never ignored."""
    from .merging import method_params
    takes = method_params(method)
    given = merge_flags_given(flags, flag_names, skip)
    unused = [k for k in given if k not in takes]
    if unused:
        names = ', '.join('--' + _merge_flag(k, flag_names) for k in unused)
        raise error(f'{names}: merge method {method} does not take {"it" if len(unused) == 1 else "them"} '
                    f'(it takes {", ".join(takes) or "no parameters"})')
    return given
