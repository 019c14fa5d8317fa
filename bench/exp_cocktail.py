"""GAN Cocktail vs from scratch, TransferGAN and Freeze-D on the shipped three-domain runs.

    python bench/exp_cocktail.py [--kimg 24] [--root-kimg 4] [--ema-kimg 1] [--seed 0] [--num 100]

The paper's main table: merge N pretrained generators into one class-conditional generator of
the same size, from the sources' generated images only, and compare with training that one
network from scratch, TransferGAN (fine-tune the widened root) and Freeze-D (TransferGAN with
the first 4 D layers frozen), all on the same generated data. Sources: the shipped runs
``plugin/assets/runs/<run>/network-snapshot-NNNNNN.pkl`` (discs, rings, stripes; root = discs).
Every row gets the same total budget of ``--kimg`` generated images: the cocktail spends
``--root-kimg`` on each of its N-1 rooting runs and the rest on merge fine-tuning; the
baselines spend all of it on their single training stage.

Measured per class k (class k = source k), on the final G_ema: the share of its samples that a
source-identification classifier (the cocktail report's judge, trained once here on the
sources' own samples) attributes to source k, and the FID against source k's samples in the
project's feature space; also the share the project's domain classifier puts on domain k.
"""
import os

from experiments import fmt, markdown_table, parser, run_row, snapshots, start, train_flags, write_results
from plugin import load_network_pkl
from plugin.metrics.evaluate import evaluate
from training_ext.cocktail.judge import Judge
from training_ext.cocktail.pipeline import CocktailPipeline
from training_ext.cocktail.sources import load_sources

RUNS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'plugin', 'assets', 'runs')
DOMAINS = ['discs', 'rings', 'stripes']
METHODS = ['cocktail', 'scratch', 'transfergan', 'freezed']
LABELS = {'cocktail': 'GAN Cocktail', 'scratch': 'from scratch', 'transfergan': 'TransferGAN',
          'freezed': 'Freeze-D (4)'}


def run_sources():
    """The shipped runs' snapshots, in DOMAINS order."""
    paths = []
    for domain in DOMAINS:
        run = next(d for d in sorted(os.listdir(RUNS)) if d.split('-')[1] == domain)
        paths.append(os.path.join(RUNS, run, sorted(os.listdir(os.path.join(RUNS, run)))[-1]))
    return paths


def run_method(args, work, paths, method):
    n = len(paths)
    root_kimg = args.root_kimg if method == 'cocktail' else 0
    merge_kimg = args.kimg - root_kimg * (n - 1)
    flags = train_flags(args, merge_kimg, cocktail=paths, class_names=DOMAINS, ema_kimg=args.ema_kimg,
                        root_kimg=root_kimg if method == 'cocktail' else None,
                        baseline=None if method == 'cocktail' else method)
    flags['judge'] = 0          # judged below, by one judge for every row
    pipe_dir = os.path.join(work, method)
    info = run_row(args, pipe_dir, lambda: CocktailPipeline(flags, pipe_dir, log=lambda *a: None).run())
    snaps = snapshots(os.path.join(pipe_dir, 'stage3-merge'), offset=root_kimg * (n - 1))
    return snaps, info['seconds']


def main():
    p = parser(__doc__, kimg=24, num=100)
    p.add_argument('--root-kimg', type=float, default=4, help='the cocktail: kimg of each rooting run [default: 4]')
    p.add_argument('--ema-kimg', type=float, default=1, help="every row: G_ema's half-life [default: 1]")
    p.add_argument('--judge-images', type=int, default=300, help='judge training images per class [default: 300]')
    args = p.parse_args()
    work = start(args, 'cocktail')
    paths = run_sources()
    judge = Judge.train(load_sources(paths, DOMAINS), DOMAINS, n=args.judge_images)
    curves, rows = {}, []
    for method in METHODS:
        print(LABELS[method])
        snaps, seconds = run_method(args, work, paths, method)
        points = []
        for kimg, path in snaps:
            G = load_network_pkl(path)['G_ema'].eval()
            j = judge.evaluate(G, args.num)
            d = evaluate(G, DOMAINS, n=args.num, seed=1)
            points.append(dict(kimg=kimg, fid_union=d['fid_union'], judge=j,
                               domain_accuracy=[r['accuracy'] for r in d['per_class']]))
        curves[LABELS[method]] = points
        end = points[-1]
        rows.append([LABELS[method], ' / '.join(fmt(a) for a in end['judge']['accuracy']),
                     fmt(end['judge']['mean_accuracy']), ' / '.join(fmt(f, 1) for f in end['judge']['fid']),
                     ' / '.join(fmt(a) for a in end['domain_accuracy']), fmt(end['fid_union']), f'{seconds:.0f}'])
    names = ' / '.join(DOMAINS)
    table = markdown_table(['method', f'source-ID accuracy ({names})', 'mean', f'FID vs source ({names})',
                            'domain accuracy', 'FID union (real domains)', 'train s'], rows)
    write_results(args, 'cocktail', table, curves,
                  f'GAN Cocktail vs baselines, 3 domains, {args.kimg:g} kimg per row (root = discs; the cocktail '
                  f'spends {args.root_kimg:g} kimg on each of 2 rootings); judge held-out accuracy '
                  f'{judge.heldout_accuracy:.3f}', meta=dict(sources=paths, ema_kimg=args.ema_kimg),
                  extra_plots=[('accuracy.png', 'kimg', lambda pt: pt['judge']['mean_accuracy'],
                                'cocktail: mean source-ID accuracy against kimg', 'accuracy')])


if __name__ == '__main__':
    main()
