"""A real stylegan2-ada-pytorch (or stylegan3) checkout as the host: ``--host PATH``.

The checkout is imported as it is (``training``, ``torch_utils``, ``dnnlib`` from PATH); the
plugin never edits or copies it. Its classes then stand behind every ``class_name`` the
plugin constructs (networks, loss, augment pipe, dataset), and network pickles are rebuilt
as its classes. Training runs the checkout's own ``training_loop``, patched in memory (never
edited) so that it also runs on a CPU and reads pickles safely.
"""
import os
import sys

from plugin.hosts.base import Host, HostError

REQUIRED = ('training/loss.py', 'training/dataset.py', 'training/training_loop.py', 'torch_utils/persistence.py',
            'dnnlib/__init__.py')
# The networks: stylegan2-ada-pytorch's module, or the stylegan3 repo's two.
NETWORKS = {'stylegan2-ada': ('training/networks.py',),
            'stylegan3': ('training/networks_stylegan2.py', 'training/networks_stylegan3.py')}
HOST_PACKAGES = ('training', 'torch_utils', 'dnnlib', 'metrics', 'legacy')
# Keys of the embedded loop that the host's training_loop() does not take.
EMBEDDED_ONLY_KEYS = ('device', 'resume_mode')


def check_layout(path):
    """The checkout's repo ('stylegan2-ada' or 'stylegan3'); HostError when it is neither."""
    def missing(files):
        return [p for p in files if not os.path.isfile(os.path.join(path, p))]
    repos = [repo for repo, files in NETWORKS.items() if not missing(files)]
    lacking = missing(REQUIRED) + ([] if repos else [' or '.join(' + '.join(f) for f in NETWORKS.values())])
    if lacking:
        raise HostError(f'--host {path}: not a stylegan2-ada-pytorch/stylegan3 checkout (missing '
                        f'{", ".join(lacking)})')
    return 'stylegan2-ada' if 'stylegan2-ada' in repos else 'stylegan3'


def _import_checkout(path):
    """Put the checkout first on sys.path; refuse a second, different checkout in one process."""
    for name in HOST_PACKAGES:
        mod = sys.modules.get(name)
        where = os.path.abspath(getattr(mod, '__file__', '') or '') if mod is not None else None
        if where and not where.startswith(path + os.sep):
            raise HostError(f'--host {path}: a module {name!r} from {os.path.dirname(where)} is already imported; '
                            'one host checkout per process')
    if path not in sys.path:
        sys.path.insert(0, path)


class CheckoutHost(Host):
    def __init__(self, path):
        path = os.path.abspath(str(path))
        # Which repo: run_options reads it (--cfg stylegan2 is the stylegan3 repo's config there).
        self.repo = check_layout(path)
        _import_checkout(path)
        self.path = path
        self.name = f'checkout {path}'
        # stylegan3 keeps the StyleGAN2 networks in training/networks_stylegan2.py.
        sg3 = self.repo == 'stylegan3'
        networks = 'training.networks_stylegan2' if sg3 else 'training.networks'
        self.family_modules = {'stylegan2.networks': networks, 'stylegan2.augment': 'training.augment'}
        if sg3:
            self.family_modules['stylegan3.networks_stylegan2'] = 'training.networks_stylegan2'
            self.family_modules['stylegan3.networks'] = 'training.networks_stylegan3'
        # The seams the plugin names, each a fixed module of the checkout (the closed registry:
        # plugin.class_registry). Its persistent classes live in torch_utils.persistence.
        self.class_path_modules = {'training.networks.': networks, 'training.loss.': 'training.loss',
                                   'training.augment.': 'training.augment', 'training.dataset.': 'training.dataset'}
        if sg3:
            self.class_path_modules['training.networks_stylegan2.'] = 'training.networks_stylegan2'
            self.class_path_modules['training.networks_stylegan3.'] = 'training.networks_stylegan3'
        self.packages = ('training.', 'torch_utils.persistence')

    # train.py flags that the host's setup_training_loop_kwargs() takes, with their types there.
    OPTION_FLAGS = dict(gpus=int, snap=int, metrics=list, seed=int, data=str, cond=bool, subset=int, mirror=bool,
                        cfg=str, gamma=float, kimg=int, batch=int, aug=str, p=float, target=float, augpipe=str,
                        resume=str, freezed=int, fp32=bool, nhwc=bool, allow_tf32=bool, nobench=bool, workers=int)

    def training_options(self, flags):
        """(desc, args) from the checkout's own train.setup_training_loop_kwargs for the host
        flags in ``flags``, or None when the checkout has no such function (a fork) or a flag
        is one only the plugin knows. A rejected value raises the plugin's UserError with the
        host's message."""
        from plugin.errors import UserError
        if flags.get('cfg') == 'tiny' or flags.get('training_set_kwargs'):
            return None
        try:
            import train as host_train
            setup = host_train.setup_training_loop_kwargs
        except (ImportError, AttributeError):
            return None
        kwargs = {k: (t(v) if t is not list else list(v)) for k, t in self.OPTION_FLAGS.items()
                  if (v := flags.get(k)) is not None}
        kwargs.setdefault('metrics', [])            # offline: no metric downloads by default
        try:
            return setup(**kwargs)
        except host_train.UserError as e:
            raise UserError(str(e)) from None

    def report(self, name, value):
        from torch_utils import training_stats             # the checkout's loop collects these
        return training_stats.report(name, value)

    def training_loop(self, **kwargs):
        """The checkout's own ``training_loop``, on CUDA or on a CPU, patched in memory for the
        plugin (``plugin.patch``): pickles read by the safe loader, failed op builds not retried,
        its sampler on a current torch, one zip handle per data worker, the widened-mapping copy, a device choice (the host's loop is hard-wired to CUDA), and,
        when a stage continues from its own snapshot, its kimg and augment p."""
        import torch
        try:
            from torch_utils import training_stats
            from training import training_loop as host_loop
        except ImportError as e:
            raise HostError(f'{self.path}: its training loop cannot be imported ({e}); install what the '
                            'checkout needs (its README: e.g. pip install psutil)') from None
        from plugin.devices import choose_device

        from .patch import patch
        device = choose_device(kwargs.get('device'))
        # What the host's train.py does per process before calling its loop (the process group
        # itself is set up by plugin.launch, as for the embedded loop).
        # One process runs several stages; its statistics' defaults (rank 0, no sync) are the
        # single-process set-up, which the host's module refuses to repeat after a first sync.
        rank, num_gpus = kwargs.get('rank', 0), kwargs.get('num_gpus', 1)
        if num_gpus > 1:        # a fresh process per rank (plugin.launch spawns them)
            sync_device = torch.device('cuda', rank) if device.type == 'cuda' else torch.device('cpu')
            training_stats.init_multiprocessing(rank=rank, sync_device=sync_device)
        features = ['safe_pickles', 'custom_ops', 'torch_compat', 'zip_per_process', 'cond_copy', 'device']
        if kwargs.get('resume_mode') == 'continue':
            features.append('resume')
        import dnnlib
        args = {k: _host_easydicts(v, dnnlib.EasyDict) for k, v in kwargs.items() if k not in EMBEDDED_ONLY_KEYS}
        for key in ('G_opt_kwargs', 'D_opt_kwargs'):
            # train.py's betas [0, 0.99]: without lazy regularisation (the stylegan3 configs' G) the
            # host's loop hands them to torch.optim.Adam as they are, which a current torch refuses
            # (ints and floats mixed); the same numbers as floats.
            if 'betas' in args.get(key, {}):
                args[key].betas = [float(b) for b in args[key].betas]
        with patch(self, features=features):
            return host_loop.training_loop(device=device, **args)


def _host_easydicts(value, easydict):
    """The plugin's option dicts as the checkout's dnnlib.EasyDict, as its train.py passes them
    (the host's loop pickles training_set_kwargs into every snapshot)."""
    if isinstance(value, dict):
        return easydict({k: _host_easydicts(v, easydict) for k, v in value.items()})
    if isinstance(value, list):
        return [_host_easydicts(v, easydict) for v in value]
    return value

