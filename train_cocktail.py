"""train_cocktail.py: the host train.py's flags, with the same names and meaning, plus the
plugin's. Runs on the embedded host (CPU or CUDA) unless --host names a real checkout.

    python train_cocktail.py --outdir runs --data discs32.zip --cfg tiny --kimg 50

Flags are declared in groups (host flags, plugin flags; each method adds its own group), so
the command grows by adding a group, not by growing one function.
"""
import sys
import warnings

import click

from plugin.cli_flags import CLEAN_ERRORS, HOST_FLAGS, PLUGIN_FLAGS, apply_flags


@click.command(context_settings=dict(show_default=False, max_content_width=100))
@apply_flags(HOST_FLAGS)
@apply_flags(PLUGIN_FLAGS)
def main(**flags):
    """Train a StyleGAN2-ADA network with the plugin's methods (host train.py flags + ours)."""
    from plugin import hosts, launch, run_options
    try:
        hosts.set_active_host(flags.pop('host'))
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
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='.*kept as inert data')
            snapshot = launch.launch(args, host_spec=None)
        if snapshot:
            print(f'Final snapshot: {snapshot}')
    except CLEAN_ERRORS as e:
        click.echo(f'error: {e}', err=True)
        sys.exit(1)


if __name__ == '__main__':
    main()
