"""train_cocktail.py: the host train.py's flags, with the same names and meaning, plus the
plugin's. Runs on the embedded host (CPU or CUDA) unless --host names a real checkout.

    python train_cocktail.py --outdir runs --data discs32.zip --cfg tiny --kimg 50
    python train_cocktail.py --outdir runs --cocktail a.pkl,b.pkl,c.pkl --root-kimg 20 --kimg 50
    python train_cocktail.py --outdir runs --data target.zip --mine a.pkl,b.pkl --mine-kimg 20 --kimg 50
    python train_cocktail.py --outdir runs --data target.zip --resume source.pkl --bypass w --kimg 200

Flags are declared in groups (host flags, plugin flags, one group per method); the methods
are listed once, in training_ext/registry.py (each a cli module with SELECTOR, FLAG_NAMES,
FLAGS, ERROR and run(flags)): the command grows by registering a method, not by editing this
file.
"""
import sys
import warnings

import click

from plugin.cli_flags import CLEAN_ERRORS, HOST_FLAGS, PLUGIN_FLAGS, apply_flags
from training_ext.registry import METHODS, method_errors, method_flags, selected_method

ERRORS = CLEAN_ERRORS + method_errors()


@click.command(context_settings=dict(show_default=False, max_content_width=100))
@apply_flags(HOST_FLAGS)
@apply_flags(PLUGIN_FLAGS)
@apply_flags(method_flags())
def main(**flags):
    """Train a StyleGAN2-ADA network with the plugin's methods (host train.py flags + ours)."""
    from plugin import hosts
    try:
        hosts.set_active_host(flags.get('host'))
        method = selected_method(flags)
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='.*kept as inert data')
            if method is not None:
                method.run(flags)
            else:
                train_plain(flags)
    except ERRORS as e:
        click.echo(f'error: {e}', err=True)
        sys.exit(1)


def train_plain(flags):
    """A plain StyleGAN2-ADA run, exactly as the host's train.py would configure it."""
    from plugin import launch, run_options
    for method in METHODS:
        for name in method.FLAG_NAMES:
            value = flags.pop(name)
            if value is not None and value is not False and value != []:      # a 0 given is given
                raise run_options.UserError(f'--{name.replace("_", "-")} needs --{method.SELECTOR}')
    if flags.pop('baseline') not in (None, 'none'):
        raise run_options.UserError('--baseline needs --cocktail or --mine')
    flags.pop('host')
    outdir, dry_run = flags.pop('outdir'), flags.pop('dry_run')
    desc, args = run_options.build(flags)
    args.run_dir = launch.next_run_dir(outdir, desc)
    print('Training options:')
    print(launch.describe(args))
    print(f'\nOutput directory:   {args.run_dir}')
    print(f'Training data:      {args.training_set_kwargs.path}')
    print(f'Training duration:  {args.total_kimg} kimg')
    print(f'Number of GPUs:     {args.num_gpus} ({args.device})')
    print(f'Image resolution:   {args.training_set_kwargs.resolution}')
    print(f'Conditional model:  {args.training_set_kwargs.use_labels}')
    print(f'Dataset x-flips:    {args.training_set_kwargs.xflip}\n')
    if dry_run:
        print('Dry run; exiting.')
        return
    snapshot = launch.launch(args)
    if snapshot:
        print(f'Final snapshot: {snapshot}')


if __name__ == '__main__':
    main()
