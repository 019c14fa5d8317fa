"""Mind2Mind bypass (latent w, partial at 16 px) vs full fine-tuning: quality and wall-clock.

    python bench/exp_bypass.py [--kimg 4] [--latent-kimg 1200] [--seed 0] [--workdir /tmp/cocktail-bench] [--modes w,16]

Source: the shipped discs generator; target: 500 rendered triangles. Why triangles: in the
metrics' feature space the discs source is at FID ~37 from triangles but ~134 from rings (a
ring needs a hole the source never draws, and no method closes that gap in a few CPU kimg),
so triangles let the curves show progress at this budget. Rows:

  full fine-tuning   a plain host run, ``--resume discs.pkl``, ``--kimg`` target images (ADA)
  bypass w           encoder on ``--kimg``/4 generated kimg, then the latent GAN on W for
                     ``--latent-kimg`` encodings (its kimg are 64-d latents, not images, and
                     cost about 1/100 of an image kimg, so the budget is set in wall-clock terms)
  bypass R=16        adapter on ``--kimg``/4 generated kimg, then G's blocks <= 16 px and D's
                     blocks from 16 px on ``--kimg`` target encodings

The paper's claim is about cost: the bypass reaches a given quality far cheaper. So every
snapshot is evaluated (FID to fresh rings renders) and stamped with the wall-clock since its
row started (encoder stage included); the plot is FID against seconds, and the table gives the
time at which each row first reaches full fine-tuning's final FID. The method's known bound
applies here: the frozen decoder of a discs model draws no corners (README, bypass demo: it
cannot draw a ring either), so the latent mode's quality is capped by what the source's
synthesis network can produce.
"""
import os

from experiments import (curve, dataset, final, fmt, markdown_table, parser, plain_run, run_row, snapshots, source,
                         start, train_flags, write_results)
from training_ext.bypass.pipeline import BypassPipeline

SOURCE, TARGET, COUNT = 'discs', 'triangles', 500


def run_fine_tuning(args, work, data):
    run_dir = os.path.join(work, 'full-fine-tuning')
    flags = train_flags(args, args.kimg, snap=2, data=data, resume=source(SOURCE))
    info = run_row(args, run_dir, lambda: plain_run(run_dir, flags))
    return curve(snapshots(run_dir), [TARGET], args.num, t0=info['t0']), info['seconds']


def run_bypass(args, work, data, mode):
    pipe_dir = os.path.join(work, f'bypass-{mode}')
    if mode == 'w':       # the latent GAN: its own batch (128) and latent-kimg ticks
        flags = train_flags(args, args.latent_kimg, batch=None, tick=args.latent_kimg / 6, snap=1)
    else:
        flags = train_flags(args, args.kimg, snap=2)
    flags.update(data=data, bypass=mode, encoder_kimg=args.kimg / 4)
    info = run_row(args, pipe_dir, lambda: BypassPipeline(flags, pipe_dir, source(SOURCE), log=print).run())
    return curve(snapshots(os.path.join(pipe_dir, 'stage3-gan')), [TARGET], args.num, t0=info['t0']), info['seconds']


def first_time_below(points, fid):
    return next((p['seconds'] for p in points if p['fid_union'] <= fid), None)


def main():
    p = parser(__doc__, kimg=4)
    p.add_argument('--latent-kimg', type=float, default=1200, help='latent GAN budget of the w row [default: 1200]')
    p.add_argument('--modes', default='w,16', help='bypass rows to run, comma-separated [default: w,16]')
    args = p.parse_args()
    work = start(args, 'bypass')
    data = dataset(work, [TARGET], COUNT, seed=args.seed)
    curves = {}
    print('full fine-tuning')
    curves['full fine-tuning'], seconds = run_fine_tuning(args, work, data)
    totals = {'full fine-tuning': seconds}
    for mode, label in (('w', 'bypass w (latent GAN)'), ('16', 'bypass R=16 (partial)')):
        if mode not in args.modes.split(','):
            continue
        print(label)
        curves[label], totals[label] = run_bypass(args, work, data, mode)
    reference = final(curves['full fine-tuning'])['fid_union']
    budgets = {'full fine-tuning': f'{args.kimg:g} kimg images',
               'bypass w (latent GAN)': f'{args.kimg / 4:g} kimg encoder + {args.latent_kimg:g} kimg latents',
               'bypass R=16 (partial)': f'{args.kimg / 4:g} kimg adapter + {args.kimg:g} kimg at 16 px'}
    budgets = {k: v for k, v in budgets.items() if k in curves}
    rows = []
    for label, points in curves.items():
        best = min(points, key=lambda q: q['fid_union'])
        reach = first_time_below(points, reference)
        end = final(points)['per_class'][0]
        rows.append([label, budgets[label], fmt(points[0]['fid_union']), fmt(final(points)['fid_union']),
                     fmt(best['fid_union']), fmt(end['precision']), fmt(end['recall']), fmt(end['accuracy']),
                     f'{best["seconds"]:.0f}', f'{totals[label]:.0f}', '-' if reach is None else f'{reach:.0f}'])
    table = markdown_table(['method', 'budget', 'FID (first snapshot)', 'FID (end)', 'FID (best)', 'precision (end)',
                            'recall (end)', f'{TARGET} accuracy (end)', 's to best', 's total',
                            f's to reach fine-tuning\'s final FID ({reference:.2f})'], rows)
    write_results(args, 'bypass', table, curves,
                  f'Mind2Mind bypass vs full fine-tuning, {SOURCE} -> {COUNT} {TARGET}', x='seconds',
                  meta=dict(source=SOURCE, target=TARGET, count=COUNT, latent_kimg=args.latent_kimg))


if __name__ == '__main__':
    main()
