"""GAN Cocktail vs from scratch, TransferGAN and Freeze-D, merging 2 and 3 domains (miniature).

    python bench/exp_cocktail.py [--kimg 3] [--seed 0] [--workdir /tmp/cocktail-bench] [--num 200]

The paper's main table: merge N pretrained generators into one class-conditional generator of
the same size, from the sources' generated images only, and compare with training that one
network from scratch, TransferGAN (fine-tune the root) and Freeze-D (TransferGAN with the
first D layers frozen), all on the same generated data. Here: the shipped tiny sources, discs +
rings (2 domains) and discs + rings + squares (3), root = discs. Every row gets the same total
budget of ``--kimg`` generated images: the cocktail spends a third of it on rooting (split over
the N-1 non-root sources) and the rest on merge fine-tuning; the baselines spend all of it on
their single training stage. Metrics are measured against freshly rendered images of the real
procedural domains (not against the sources), so a source's own error bounds its class: the
squares source is itself poor (README: FID 7.4). FID over the union and per class (class k =
source k), plus the domain-classifier accuracy of each class's samples.
"""
import os

from experiments import (curve, final, fmt, markdown_table, parser, run_row, snapshots, source, start,
                         train_flags, write_results)
from training_ext.cocktail.pipeline import CocktailPipeline

MERGES = {'2 domains': ['discs', 'rings'], '3 domains': ['discs', 'rings', 'squares']}
METHODS = ['cocktail', 'scratch', 'transfergan', 'freezed']
LABELS = {'cocktail': 'GAN Cocktail', 'scratch': 'from scratch', 'transfergan': 'TransferGAN',
          'freezed': 'Freeze-D (4)'}


def run_method(args, work, domains, method):
    n = len(domains)
    root_kimg = args.kimg / 3 / (n - 1) if method == 'cocktail' else 0
    merge_kimg = args.kimg - root_kimg * (n - 1)
    flags = train_flags(args, merge_kimg, cocktail=[source(d) for d in domains],
                        root_kimg=root_kimg if method == 'cocktail' else None, baseline=None if method == 'cocktail' else method)
    flags['judge'] = 0          # this experiment measures against the real domains itself (below)
    pipe_dir = os.path.join(work, f'{"-".join(domains)}-{method}')
    info = run_row(args, pipe_dir, lambda: CocktailPipeline(flags, pipe_dir, log=lambda *a: None).run())
    snaps = snapshots(os.path.join(pipe_dir, 'stage3-merge'), offset=root_kimg * (n - 1))
    return curve(snaps, domains, args.num, t0=info['t0']), info['seconds']


def main():
    args = parser(__doc__, kimg=3).parse_args()
    work = start(args, 'cocktail')
    curves, rows = {}, []
    for merge, domains in MERGES.items():
        for method in METHODS:
            print(f'{merge}: {LABELS[method]}')
            points, seconds = run_method(args, work, domains, method)
            curves[f'{merge}: {LABELS[method]}'] = points
            end = final(points)
            per_class = ' / '.join(fmt(r['fid']) for r in end['per_class'])
            accuracy = ' / '.join(fmt(r['accuracy']) for r in end['per_class'])
            rows.append([merge, LABELS[method], fmt(end['fid_union']), per_class, accuracy, f'{seconds:.0f}'])
    table = markdown_table(['merge', 'method', 'FID union', 'FID per class (' + ' / '.join(MERGES['3 domains']) + ')',
                            'class accuracy', 'train s'], rows)
    write_results(args, 'cocktail', table, curves,
                  f'GAN Cocktail vs baselines at {args.kimg:g} kimg per row (root = discs; the cocktail spends '
                  f'{args.kimg / 3:g} kimg on rooting)',
                  meta=dict(merges=MERGES))


if __name__ == '__main__':
    main()
