"""MineGAN / MineGAN++ vs fine-tuning (TransferGAN) and Freeze-D at 100 and 500 target images.

    python bench/exp_mining.py [--kimg 3] [--seed 0] [--workdir /tmp/cocktail-bench] [--num 200]

Target: rings (100 or 500 rendered images). Why these domains: the single source is discs, a
*near* domain (round, filled, same colour model), so mining has a region of the source
distribution worth finding and fine-tuning has something to adapt; the two-source rows add the
rings source after discs (discs first, so the fine-tuning baselines, which start from the
first source, and the single-source rows start from the same network). The two-source rows
then test the paper's multi-source claim: the selector must learn to draw from the relevant
source (rings) rather than the first one. MineGAN++'s sparse rows train only the top 25% of
synthesis channels by Fisher information (``--sparse 0.25``). Every row spends ``--kimg``
target images in all: the mining rows 1 kimg on mining (frozen generators) and the rest on
fine-tuning; the baselines all of it on fine-tuning. FID against fresh rings renders.
"""
import os

from experiments import (curve, dataset, final, fmt, markdown_table, ordered, parser, run_row, snapshots, source, start,
                         train_flags, write_results)
from training_ext.mining.pipeline import MiningPipeline

TARGET = 'rings'
ROWS = [  # label, sources, extra flags
    ('MineGAN, 1 source (discs)', ['discs'], {}),
    ('MineGAN++ sparse 0.25, 1 source', ['discs'], dict(sparse=0.25)),
    ('MineGAN, 2 sources (discs, rings)', ['discs', 'rings'], {}),
    ('MineGAN++ sparse 0.25, 2 sources', ['discs', 'rings'], dict(sparse=0.25)),
    ('fine-tuning (TransferGAN, discs)', ['discs'], dict(baseline='transfergan')),
    ('Freeze-D (4), discs', ['discs'], dict(baseline='freezed')),
]
COUNTS = (100, 500)


def run_method(args, work, data, name, sources, extra):
    baseline = 'baseline' in extra
    mine_kimg = 0 if baseline else 1
    flags = train_flags(args, args.kimg - mine_kimg, mine=[source(s) for s in sources], data=data,
                        mine_kimg=None if baseline else mine_kimg, **extra)   # baselines do not mine
    pipe_dir = os.path.join(work, name)
    info = run_row(args, pipe_dir, lambda: MiningPipeline(flags, pipe_dir, log=lambda *a: None).run())
    stage = f'baseline-{extra["baseline"]}' if baseline else 'stage2-finetune'
    snaps = snapshots(os.path.join(pipe_dir, stage), offset=mine_kimg)
    if not baseline:                                  # the mining stage's snapshots come first
        snaps = snapshots(os.path.join(pipe_dir, 'stage1-mine'))[:-1] + snaps
    return curve(snaps, [TARGET], args.num, t0=info['t0']), info['seconds']


def main():
    args = parser(__doc__, kimg=3).parse_args()
    work = start(args, 'mining')
    jobs = [(count, k) for count in COUNTS for k in range(len(ROWS))]
    results = {}
    for count, k in ordered(args, jobs):
        label, sources, extra = ROWS[k]
        print(f'{count} targets: {label}')
        data = dataset(work, [TARGET], count, seed=args.seed)
        results[count, k] = run_method(args, work, data, f'n{count}-row{k}', sources, extra)
    curves, rows = {}, []
    for count, k in jobs:
        label = ROWS[k][0]
        points, seconds = results[count, k]
        curves[f'{count}: {label}'] = points
        end = final(points)
        best = min(p['fid_union'] for p in points)
        r = end['per_class'][0]
        rows.append([count, label, fmt(end['fid_union']), fmt(best), fmt(r['precision']), fmt(r['recall']),
                     fmt(r['accuracy']), f'{seconds:.0f}'])
    table = markdown_table(['target images', 'method', 'FID (end)', 'FID (best snapshot)', 'precision', 'recall',
                            'rings accuracy', 'train s'], rows)
    write_results(args, 'mining', table, curves,
                  f'MineGAN vs fine-tuning on {TARGET}, {args.kimg:g} kimg per row (mining rows: '
                  f'1 kimg mining + {args.kimg - 1:g} kimg fine-tuning)',
                  meta=dict(target=TARGET, counts=COUNTS, rows=[dict(label=r[0], sources=r[1], flags=r[2])
                                                                for r in ROWS]))


if __name__ == '__main__':
    main()
