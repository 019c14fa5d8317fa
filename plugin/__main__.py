"""Command line: ``python -m plugin inspect net.pkl`` (also installed as ``gan-cocktail``)."""
import json
import sys
import warnings

import click

from .pickles import NetworkPickleError


class _CleanErrors(click.Group):
    """One clear line and exit code 1 for expected failures, instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (NetworkPickleError, ValueError, OSError) as e:
            click.echo(f'error: {e}', err=True)
            sys.exit(1)


@click.group(cls=_CleanErrors)
def main():
    """Tools for StyleGAN2-ADA network pickles (safe: nothing in a pickle is executed)."""


@main.command()
@click.argument('pkl', type=click.Path(dir_okay=False))
@click.option('--json', 'as_json', is_flag=True, help='Print a JSON description instead of text.')
def inspect(pkl, as_json):
    """Show what a network pickle holds: classes, sizes, dims, architecture, fp16 blocks."""
    from .inspect_pkl import describe, format_description
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        info = describe(pkl)
    click.echo(json.dumps(info, indent=2, default=str) if as_json else format_description(info))


if __name__ == '__main__':
    main()
