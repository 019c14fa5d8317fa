"""Command line: ``python -m plugin inspect net.pkl`` (also installed as ``gan-cocktail``)."""
import json
import sys
import warnings

import click

from .cli_flags import apply_flags, merge_param_options, merge_params_given
from .hosts.base import HostError
from .pickles import NetworkPickleError


class _CleanErrors(click.Group):
    """One clear line and exit code 1 for expected failures, instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (NetworkPickleError, HostError, ValueError, OSError) as e:
            click.echo('error: ' + ' '.join(str(e).split()), err=True)      # one line, whatever the file says
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


@main.command()
@click.argument('src', type=click.Path(dir_okay=False, exists=True))
@click.argument('dst', type=click.Path(dir_okay=False))
@click.option('--host', 'host_path', required=True, envvar='COCKTAIL_HOST', metavar='PATH',
              help='The stylegan2-ada-pytorch / stylegan3 checkout whose classes the result should use.')
def export(src, dst, host_path):
    """Rewrite a plain StyleGAN2 result in a host checkout's own classes (loads without the plugin)."""
    from .export import export_to_host
    click.echo(f'wrote {export_to_host(src, dst, host_path)}')


def parse_range(text):
    """'0-3,7' -> [0, 1, 2, 3, 7]."""
    out = []
    try:
        for part in text.split(','):
            a, _, b = part.partition('-')
            out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    except ValueError:
        raise click.BadParameter(f'expected numbers and ranges like 0-3,7, got {text!r}') from None
    return out


@main.command()
@click.argument('pkl', type=click.Path(dir_okay=False))
@click.option('--seeds', default='0-15', show_default=True, help='Seeds: ranges and lists, e.g. 0-7,42.')
@click.option('--trunc', 'truncation_psi', type=float, default=1.0, show_default=True, help='Truncation psi.')
@click.option('--class', 'class_idx', type=int, default=None, help='Class index (conditional networks).')
@click.option('--noise-mode', type=click.Choice(['const', 'random', 'none']), default='const', show_default=True)
@click.option('--network', 'key', default='G_ema', show_default=True, help='Which network of the pickle to use.')
@click.option('--outdir', type=click.Path(file_okay=False), required=True)
@click.option('--device', default='cpu', show_default=True)
def generate(pkl, seeds, truncation_psi, class_idx, noise_mode, key, outdir, device):
    """Generate images (one PNG per seed, plus grid.png) from a network pickle."""
    import os

    import numpy as np
    import torch

    from .images import save_image_grid, save_images
    from .pickles import load_network_pkl
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        data = load_network_pkl(pkl)
    G = data.get(key)
    if not isinstance(G, torch.nn.Module) or not hasattr(G, 'mapping'):
        raise NetworkPickleError(f'{pkl}: no generator under {key!r}')
    G = G.to(device).eval()
    seed_list = parse_range(seeds)
    c = torch.zeros([len(seed_list), G.c_dim], device=device)
    if G.c_dim:
        if class_idx is None or not 0 <= class_idx < G.c_dim:
            raise click.BadParameter(f'this generator is conditional: pass --class 0..{G.c_dim - 1}')
        c[:, class_idx] = 1
    elif class_idx is not None:
        raise click.BadParameter('--class given, but this generator is unconditional')
    # Same latents as the host's generate.py: z from np.random.RandomState(seed).randn(1, z_dim).
    z = torch.from_numpy(np.concatenate([np.random.RandomState(s).randn(1, G.z_dim) for s in seed_list])).float()
    with torch.no_grad():
        img = G(z.to(device), c, truncation_psi=truncation_psi, noise_mode=noise_mode)
    os.makedirs(outdir, exist_ok=True)
    save_images(img, [os.path.join(outdir, f'seed{s:04d}.png') for s in seed_list])
    grid = save_image_grid(img, os.path.join(outdir, 'grid.png'))
    click.echo(f'wrote {len(seed_list)} images and {grid}')


@main.command()
@click.argument('a_pkl', type=click.Path(dir_okay=False))
@click.argument('b_pkl', type=click.Path(dir_okay=False))
@click.option('--swap-res', type=int, required=True, metavar='R',
              help='Synthesis blocks up to R px from A, above from B (0: every block from B).')
@click.option('--blend-width', type=float, default=0.0, show_default=True, metavar='W',
              help='0: a hard swap; > 0: every block a sigmoid mix across resolutions, W octaves wide.')
@click.option('--mapping', type=click.Choice(['a', 'b']), default='a', show_default=True,
              help='Which mapping network (with its w_avg) the result keeps.')
@click.option('--out', type=click.Path(dir_okay=False), required=True, help='Pickle to write.')
@click.option('--grid', type=click.Path(dir_okay=False), help='Also write a PNG sweeping --swap-res (rows) for --seeds.')
@click.option('--seeds', default='0-5', show_default=True, help='Seeds of the grid columns.')
@click.option('--gif', type=click.Path(dir_okay=False), help='Also write an animated GIF sweeping the swap resolution.')
def blend(a_pkl, b_pkl, swap_res, blend_width, mapping, out, grid, seeds, gif):
    """Layer-swap blend of two fine-tunes of one parent (the "toonify" blend), no training."""
    from .training_free import blend_pickles
    blend_pickles(a_pkl, b_pkl, out, swap_res, blend_width, mapping, grid=grid, seeds=parse_range(seeds),
                  log=click.echo, gif=gif)


@main.command()
@click.argument('models', nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option('--method', type=click.Choice(['mean', 'task-arithmetic', 'ties', 'dare', 'slerp']), required=True)
@click.option('--base', type=click.Path(dir_okay=False), help='The parent the models were fine-tuned from '
              '(needed by task-arithmetic, ties, dare).')
@apply_flags(merge_param_options())       # --weights --scale --density --drop --t --seed, from the methods
@click.option('--out', type=click.Path(dir_okay=False), required=True, help='Pickle to write.')
@click.option('--grid', type=click.Path(dir_okay=False), help='Also write a PNG: the inputs, then the merge '
              'coefficient (scale or t) swept, for --seeds.')
@click.option('--seeds', default='0-5', show_default=True, help='Seeds of the grid columns.')
@click.option('--gif', type=click.Path(dir_okay=False), help='Also write an animated GIF sweeping the merge coefficient.')
def merge(models, method, base, out, grid, seeds, gif, **params):
    """Merge fine-tunes of one parent by their weights, no training (weights of 1/N each by default)."""
    from .training_free import merge_pickles
    merge_pickles(list(models), out, method, base=base, grid=grid, seeds=parse_range(seeds), log=click.echo, gif=gif,
                  **merge_params_given(method, params))


@main.command()
@click.option('--domains', required=True, help='Comma-separated: discs, squares, stripes, rings, triangles.')
@click.option('--count', type=int, default=1000, show_default=True, help='Images per domain.')
@click.option('--resolution', type=int, default=32, show_default=True)
@click.option('--seed', type=int, default=0, show_default=True)
@click.option('--labels/--no-labels', default=None, help='Write class labels [default: when several domains].')
@click.option('--out', type=click.Path(dir_okay=False), required=True, help='Zip file to write.')
def domains(domains, count, resolution, seed, labels, out):
    """Write a dataset zip of procedural image domains (deterministic for a seed)."""
    from plugin.domains import write_domains_zip
    names = [d.strip() for d in domains.split(',') if d.strip()]
    write_domains_zip(out, names, count, resolution, seed, labels)
    click.echo(f'wrote {out}: {len(names)} domain(s) x {count} images at {resolution}px')


@main.command()
@click.argument('pkl', type=click.Path(dir_okay=False))
@click.option('--domains', help='Procedural domains: one per class (conditional) or the one domain, comma-separated.')
@click.option('--inception', type=click.Path(dir_okay=False), metavar='FILE',
              help="Standard Inception FID/KID with this detector (the host's inception-2015-12-05.pt) against --data.")
@click.option('--data', type=click.Path(), metavar='PATH', help='Real images for --inception (folder or zip).')
@click.option('--num', type=int, default=500, show_default=True, help='Samples per class (and real images).')
@click.option('--trunc', 'truncation_psi', type=float, default=1.0, show_default=True)
@click.option('--network', 'key', default='G_ema', show_default=True)
@click.option('--out', type=click.Path(dir_okay=False), help='Append the result as one JSON line to this file.')
def metrics(pkl, domains, inception, data, num, truncation_psi, key, out):
    """FID, KID, precision/recall and domain accuracy against the procedural domains
    (--domains), and/or the standard Inception FID/KID against real images (--inception, --data)."""
    from .pickles import load_network_pkl
    if not domains and not inception:
        raise click.UsageError('give --domains (procedural domains) and/or --inception FILE --data PATH')
    if inception and not data:
        raise click.UsageError('--inception needs the real images: --data PATH')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        G = load_network_pkl(pkl).get(key)
    if G is None or not hasattr(G, 'mapping'):
        raise NetworkPickleError(f'{pkl}: no generator under {key!r}')
    result = {}
    if domains:
        from .metrics.evaluate import evaluate, format_result
        result.update(evaluate(G.eval(), [d.strip() for d in domains.split(',')], n=num,
                               truncation_psi=truncation_psi))
        click.echo(format_result(result))
    if inception:
        from .metrics.inception import inception_metrics
        result.update(inception_metrics(G.eval(), data, inception, n=num, truncation_psi=truncation_psi))
        click.echo(f"Inception FID {result['inception_fid']:.3f}  KID {result['inception_kid']:.5f}  "
                   f"({result['num_fake']} generated vs {result['num_real']} real)")
    if out:
        with open(out, 'a') as f:
            f.write(json.dumps(dict(pkl=pkl, network=key, truncation_psi=truncation_psi, **result)) + '\n')


if __name__ == '__main__':
    main()
