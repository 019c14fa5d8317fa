"""Shared machinery of the paper comparisons in miniature (bench/exp_*.py).

An experiment trains every row of its table from the shipped tiny sources with the same
budget, evaluates every network snapshot of every row with ``plugin.metrics.evaluate``
(quality against kimg) and writes, under ``bench/results/<experiment>/``:

  table.md      the markdown table the script prints
  fid.png       FID against kimg, one line per row of the table
  results.json  the raw numbers (every snapshot's metrics, wall-clock, the command)

Run directories (pickles) go under ``--workdir`` (default /tmp/cocktail-bench), never into
the repository. Everything is seeded: the data renders, the training loop (``--seed``) and
the evaluation samples, so a rerun reproduces the table up to CPU floating-point noise.
"""
import argparse
import contextlib
import io
import json
import os
import platform
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from plugin import launch, load_network_pkl, run_options  # noqa: E402
from plugin.files import list_snapshots, snapshot_kimg  # noqa: E402
from plugin.metrics.evaluate import evaluate  # noqa: E402
from plugin.plots import line_plot  # noqa: E402
from plugin.domains import write_domains_zip  # noqa: E402

SOURCES = os.path.join(REPO, 'plugin', 'assets', 'sources')
RESULTS = os.path.join(REPO, 'bench', 'results')
EVAL_SEED = 1234          # evaluation samples: fixed and independent of the training seed


def source(name):
    return os.path.join(SOURCES, f'{name}.pkl')


def parser(doc, kimg, num=200):
    """The flags every experiment takes (--kimg, --seed, --workdir) and a few shared ones."""
    p = argparse.ArgumentParser(description=doc.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=doc)
    p.add_argument('--kimg', type=float, default=kimg, help=f'training budget per row in kimg [default: {kimg}]')
    p.add_argument('--seed', type=int, default=0, help='training seed [default: 0]')
    p.add_argument('--workdir', default='/tmp/cocktail-bench', help='run directories (pickles) go here')
    p.add_argument('--num', type=int, default=num, help=f'generated and real images per class for the metrics '
                                                       f'[default: {num}]')
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads (tiny networks: 1 is fastest)')
    p.add_argument('--results', default=RESULTS, help='where <experiment>/table.md etc. go')
    p.add_argument('--quiet', action='store_true', help='hide the training loop\'s own output')
    p.add_argument('--reverse', action='store_true',
                   help='train the rows in reverse order: a second process on the same --workdir then shares the '
                        'work (a row one process trains, the other waits for and reuses)')
    return p


def start(args, name):
    """Seed, thread count and this experiment's work directory."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    work = os.path.join(os.path.abspath(args.workdir), f'{name}-seed{args.seed}-kimg{args.kimg:g}')
    os.makedirs(work, exist_ok=True)
    return work


def dataset(work, domains, count, seed=0, labels=None):
    """A procedural dataset zip (cached by name in the work directory)."""
    path = os.path.join(work, f'{"-".join(domains)}-{count}-seed{seed}{"-labelled" if labels else ""}.zip')
    if not os.path.isfile(path):
        write_domains_zip(path, domains, count, 32, seed=seed, labels=labels)
    return path


def train_flags(args, kimg, **over):
    """Flags shared by every row: tiny networks, batch 16, 1-kimg ticks, CPU, fixed seed."""
    flags = dict(cfg='tiny', batch=16, kimg=kimg, tick=1, snap=1, seed=args.seed, device='cpu', metrics=['none'])
    flags.update(over)
    return flags


@contextlib.contextmanager
def maybe_quiet(quiet):
    if not quiet:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def run_row(args, run_dir, train):
    """Run ``train()`` (which trains into ``run_dir``) unless it finished before; returns
    (seconds, start time) where the start time lets snapshot mtimes be turned into wall-clock."""
    marker, lock = os.path.join(run_dir, 'bench_row.json'), os.path.join(run_dir, 'bench_row.lock')
    while os.path.isfile(lock) and not os.path.isfile(marker):      # another process trains this row
        time.sleep(5)
    if os.path.isfile(marker):
        with open(marker) as f:
            info = json.load(f)
        print(f'  {os.path.basename(run_dir)}: done before ({info["seconds"]:.0f} s), reusing')
        return info
    os.makedirs(run_dir, exist_ok=True)
    open(lock, 'w').close()
    t0 = time.time()
    with maybe_quiet(args.quiet):
        train()
    info = dict(seconds=time.time() - t0, t0=t0)
    with open(marker, 'w') as f:
        json.dump(info, f)
    os.unlink(lock)
    print(f'  {os.path.basename(run_dir)}: trained in {info["seconds"]:.0f} s')
    return info


def ordered(args, jobs):
    """``jobs`` in the order this process trains them (``--reverse``)."""
    return list(reversed(jobs)) if args.reverse else list(jobs)


def plain_run(run_dir, flags):
    """A plain host training run (``train_cocktail.py --data ... --resume ...``) into ``run_dir``."""
    flags = dict(flags)
    kimg = flags.pop('kimg')                # the host's --kimg is an integer; a stage may be shorter
    _, opts = run_options.build(flags)
    opts.run_dir, opts.total_kimg = run_dir, kimg
    return launch.launch(opts, exist_ok=True)


def snapshots(run_dir, offset=0.0):
    """[(kimg, path)] of a run directory's network snapshots; ``offset`` kimg of earlier stages."""
    return [(offset + snapshot_kimg(p), p) for p in list_snapshots(run_dir)]


def curve(snaps, domains, num, t0=None):
    """Evaluate every snapshot: [{kimg, seconds, fid_union, per_class}]."""
    points = []
    for kimg, path in snaps:
        G = load_network_pkl(path)['G_ema'].eval()
        r = evaluate(G, domains, n=num, seed=EVAL_SEED)
        points.append(dict(kimg=kimg, seconds=None if t0 is None else round(os.path.getmtime(path) - t0, 1),
                           fid_union=r['fid_union'], per_class=r['per_class'], snapshot=os.path.basename(path)))
    return points


def final(points):
    return points[-1]


def class_samples(pkl, path, cols=12, seed=EVAL_SEED):
    """A grid of the snapshot's G_ema samples, one row per class (fixed z, the same for every
    row, constant noise): what each class draws, beside the numbers."""
    from plugin.images import save_image_grid
    G = load_network_pkl(pkl)['G_ema'].eval()
    z = torch.randn([cols, G.z_dim], generator=torch.Generator().manual_seed(seed))
    rows = []
    with torch.no_grad():
        for k in range(max(G.c_dim, 1)):
            c = torch.zeros([cols, G.c_dim])
            if G.c_dim:
                c[:, k] = 1
            rows.append(G(z, c, noise_mode='const'))
    return save_image_grid(torch.cat(rows), path, grid_size=(cols, len(rows)))


def markdown_table(columns, rows):
    """``rows``: list of lists of cells (already formatted)."""
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '|'.join('---' for _ in columns) + '|']
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


def fmt(x, digits=2):
    return '-' if x is None else f'{x:.{digits}f}'


def write_results(args, name, table, curves, title, meta=None, x='kimg', extra_plots=()):
    """Write table.md, fid.png (FID against ``x`` per curve) and results.json; print the table.

    ``curves``: {row label: [points]} as returned by ``curve``. ``extra_plots``: (file name,
    x key, series key or callable(point) -> y, title[, y label, default FID]) for further PNGs."""
    out = os.path.join(args.results, name)
    os.makedirs(out, exist_ok=True)
    command = 'python ' + ' '.join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:])
    header = (f'{title}\n\n`{command}` (seed {args.seed}, {args.kimg:g} kimg per row, metrics on {args.num} '
              f'images per class, evaluation seed {EVAL_SEED}); {machine()}, {time.strftime("%Y-%m-%d")}.\n\n')
    with open(os.path.join(out, 'table.md'), 'w') as f:
        f.write(header + table + '\n')
    plots = [('fid.png', x, lambda p: p['fid_union'], f'{name}: FID (union) against {x}')] + list(extra_plots)
    for file, xkey, y, plot_title, *ylabel in plots:
        series = {label: [(p[xkey], y(p)) for p in pts if p[xkey] is not None and y(p) is not None]
                  for label, pts in curves.items()}
        line_plot(os.path.join(out, file), series, title=plot_title, xlabel=xkey, ylabel=(ylabel or ['FID'])[0])
    with open(os.path.join(out, 'results.json'), 'w') as f:
        json.dump(dict(experiment=name, command=command, seed=args.seed, kimg=args.kimg, num=args.num,
                       eval_seed=EVAL_SEED, machine=machine(), date=time.strftime('%Y-%m-%d'), meta=meta or {},
                       curves=curves), f, indent=1)
    print('\n' + table)
    print(f'\nwritten: {out}/table.md, fid.png, results.json')
    return out


def machine():
    return (f'{platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}, '
            f'{torch.get_num_threads()} thread(s)')
