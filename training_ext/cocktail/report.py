"""The merge report: stage timings, the paper's parameter distances before and after
rooting, and a grid with one row per source domain (the source's samples on the left, the
merged model's samples of the same class on the right)."""
import json
import os

import torch

from plugin.images import save_image_grid
from plugin.pickles import load_network_pkl
from plugin.plots import line_plot
from plugin.files import list_snapshots

from . import distance

GRID_SAMPLES = 6


def _class_rows(pipeline, merged_G, device='cpu'):
    """Images for the grid: per merged class, source samples then merged samples; and the
    rows' names (the source's label; ``label:k`` for class k of a conditional source)."""
    rows, names = [], []
    gen = torch.Generator().manual_seed(0)
    for source in pipeline.sources:
        for k in range(source.num_classes):
            z = torch.randn([GRID_SAMPLES, merged_G.z_dim], generator=gen)
            c_src = torch.zeros([GRID_SAMPLES, source.G_ema.c_dim])
            if source.G_ema.c_dim:
                c_src[:, k] = 1
            c_merged = torch.zeros([GRID_SAMPLES, merged_G.c_dim])
            c_merged[:, source.offset + k] = 1
            with torch.no_grad():
                left = source.G_ema.eval()(z, c_src, noise_mode='const')
                right = merged_G.eval()(z, c_merged, noise_mode='const')
            rows.append(torch.cat([left, right]))
            names.append(f'{source.name}:{k}' if source.G.c_dim else source.name)
    return torch.cat(rows), names


def write_report(pipeline, final_pkl, rooted, baseline, method):
    merged = load_network_pkl(final_pkl)
    report = dict(sources=[dict(path=s.path, name=s.name, classes=list(range(s.offset, s.offset + s.num_classes)),
                                conditional=s.G.c_dim > 0) for s in pipeline.sources],
                  root=pipeline.root.name, baseline=baseline, merge_method=None if baseline != 'none' else method,
                  merged_pickle=final_pkl, num_classes=merged['G_ema'].c_dim, stages=pipeline.state['stages'])
    before_G = distance.pairwise({s.name: s.G for s in pipeline.sources})
    report['distance_before_rooting'] = dict(G=distance.summary(before_G),
                                             D=distance.summary(distance.pairwise({s.name: s.D for s in pipeline.sources})))
    if rooted:
        start = load_network_pkl(pipeline.widened_root())        # rooting started from the widened root
        nets, dnets = {pipeline.root.name: start['G']}, {pipeline.root.name: start['D']}
        for name, path in rooted.items():
            data = load_network_pkl(path)
            nets[name], dnets[name] = data['G'], data['D']
        after_G = distance.pairwise(nets)
        report['distance_after_rooting'] = dict(G=distance.summary(after_G), D=distance.summary(distance.pairwise(dnets)))
        report['distance_per_layer'] = dict(before=before_G, after=after_G)
    report['judge'] = judge_stages(pipeline, rooted, final_pkl)
    images, rows = _class_rows(pipeline, merged['G_ema'])
    grid = os.path.join(pipeline.dir, 'merge_grid.png')
    save_image_grid(images, grid, grid_size=(2 * GRID_SAMPLES, len(rows)))
    report['grid'], report['grid_rows'] = grid, rows
    with open(os.path.join(pipeline.dir, 'report.json'), 'w') as f:
        json.dump(report, f, indent=2)
    text = format_report(report)
    with open(os.path.join(pipeline.dir, 'report.txt'), 'w') as f:
        f.write(text + '\n')
    pipeline.log(text)
    return report


def _kimg_of(data, path):
    state = data.get('training_state') or {}
    return state['cur_nimg'] / 1000 if 'cur_nimg' in state else None


def judge_stages(pipeline, rooted, final_pkl):
    """Per-class source identification and FID at the end of each stage: every rooted model
    (its own source's classes matter), the start of merge fine-tuning (kimg 0) and every merge
    snapshot (a curve against kimg). Plots ``judge_accuracy.png`` and ``judge_fid.png``."""
    judge = pipeline.judge()
    if judge is None:
        return None
    n = pipeline.judge_eval_samples()
    rows = []
    for name, path in rooted.items():
        if os.path.isfile(path):
            # The average takes the rooted models' G (their G_ema lags by the EMA half-life).
            rows.append(dict(stage=f'stage1-root-{name}', kimg=None, pickle=path, network='G',
                             **judge.evaluate(load_network_pkl(path)['G'], n)))
    merge_dir = pipeline.path('stage3-merge')
    merge_snaps = list_snapshots(merge_dir) if os.path.dirname(os.path.abspath(final_pkl)) == os.path.abspath(merge_dir) \
        else []
    start = pipeline.merge_start
    if start is not None and os.path.isfile(start):
        rows.append(dict(stage='merge start', kimg=0.0, pickle=start, network='G_ema',
                         **judge.evaluate(load_network_pkl(start)['G_ema'], n)))
    for path in merge_snaps:
        data = load_network_pkl(path)
        rows.append(dict(stage='stage3-merge', kimg=_kimg_of(data, path), pickle=path, network='G_ema',
                         **judge.evaluate(data['G_ema'], n)))
    curve = [r for r in rows if r['kimg'] is not None]
    if curve:
        names = judge.class_names
        line_plot(os.path.join(pipeline.dir, 'judge_accuracy.png'),
                  {names[k]: [(r['kimg'], r['accuracy'][k]) for r in curve] for k in range(len(names))},
                  title='Merged class k identified as source k', xlabel='merge kimg', ylabel='accuracy', ylim=(0, 1))
        line_plot(os.path.join(pipeline.dir, 'judge_fid.png'),
                  {names[k]: [(r['kimg'], r['fid'][k]) for r in curve] for k in range(len(names))},
                  title=f'FID of class k vs source k ({judge.space.name})', xlabel='merge kimg', ylabel='FID')
    return dict(heldout_accuracy=judge.heldout_accuracy, class_names=judge.class_names, eval_samples=n,
                fid_space=judge.space.name, rows=rows)


def _format_judge(j):
    names = j['class_names']
    chance = 1 / len(names)
    lines = [f"Does class k draw source k? Source-identification classifier trained on the sources' own samples: "
             f"held-out accuracy {j['heldout_accuracy']:.3f} (chance {chance:.3f}); per class, the share of "
             f"{j['eval_samples']} samples identified as their source, and FID vs the source's samples "
             f"({j.get('fid_space', 'project feature space')}); rooted models by their G (what the average takes), merge by G_ema:",
             f"  {'stage':<28s} {'kimg':>6s}  " + ' '.join(f'{n[:10]:>10s}' for n in names) + '      mean   | FID '
             + ' '.join(f'{n[:10]:>10s}' for n in names)]
    for r in j['rows']:
        kimg = '' if r['kimg'] is None else f"{r['kimg']:.3g}"
        lines.append(f"  {r['stage'] + ' ' + r['network']:<28s} {kimg:>6s}  " + ' '.join(f'{a:10.3f}' for a in r['accuracy'])
                     + f"  {r['mean_accuracy']:8.3f}   |     " + ' '.join(f'{v:10.2f}' for v in r['fid']))
    return lines


def format_report(r):
    lines = [f"GAN cocktail of {len(r['sources'])} sources -> {r['num_classes']} classes "
             f"({'merge: ' + r['merge_method'] if r['merge_method'] else 'baseline: ' + r['baseline']})"]
    for s in r['sources']:
        cls = ', '.join(map(str, s['classes']))
        lines.append(f"  class {cls:<6s} {s['name']}{' (root)' if s['name'] == r['root'] else ''}"
                     f"{' [conditional]' if s['conditional'] else ''}")
    lines.append('Stages:')
    for name, st in r['stages'].items():
        extra = f"{st['kimg']} kimg, " if 'kimg' in st else ''
        lines.append(f"  {name:<28s} {extra}{st.get('seconds', 0):.0f} s")
    lines.append('Mean per-layer squared parameter distance of G (the paper\'s measure):')
    before, after = r['distance_before_rooting']['G'], r.get('distance_after_rooting', {}).get('G', {})
    for pair, value in before.items():
        a = after.get(pair)
        lines.append(f"  {pair:<32s} before rooting {value:12.4f}" + (f"   after {a:12.4f}" if a is not None else ''))
    if r.get('judge'):
        lines += _format_judge(r['judge'])
    lines.append(f"Merged model: {r['merged_pickle']}")
    lines.append(f"Grid (per row: source samples | merged samples): {r['grid']}")
    lines.append(f"  rows, top to bottom: {', '.join(r['grid_rows'])}")
    return '\n'.join(lines)
