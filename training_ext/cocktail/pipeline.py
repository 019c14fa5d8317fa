"""The cocktail pipeline: rooting -> averaging (+ widening) -> merge fine-tuning -> report.

Every training stage is an ordinary run of the host's training loop, configured through its
seams: a ``LabelDataset`` (labels only) and a ``GeneratedDataLoss`` (real images generated on
the fly by the source generators). The pipeline directory keeps ``cocktail_state.json``; a
killed pipeline started again with ``--resume <pipeline dir>`` skips finished stages and
continues an interrupted training stage from its newest snapshot.
"""
import copy
import json
import os
import time



from plugin import launch, run_options
from plugin.easydict import EasyDict, to_plain
from plugin.pickles import load_network_pkl, save_network_pkl

from . import distance
from .merge import MERGE_METHODS, merge_modules
from .report import write_report
from .sources import CocktailError, load_sources, total_classes
from .widen import host_class_name, widen_discriminator, widen_generator

STATE_FILE = 'cocktail_state.json'
BASELINES = ('none', 'scratch', 'transfergan', 'freezed')
STAGE_DEFAULT_AUG = 'noaug'          # generated data is unlimited: no augmentation (as the reference)


class CocktailPipeline:
    def __init__(self, flags, pipeline_dir, host_spec=None, log=print):
        self.flags = EasyDict(flags)
        self.dir = pipeline_dir
        self.host_spec = host_spec
        self.log = log
        os.makedirs(self.dir, exist_ok=True)
        self.state_path = os.path.join(self.dir, STATE_FILE)
        self.state = self._load_state()

    # -- persistent pipeline state ---------------------------------------------------------------
    def _load_state(self):
        if os.path.isfile(self.state_path):
            with open(self.state_path) as f:
                state = json.load(f)
            if state.get('sources') != self.flags.cocktail:
                raise CocktailError(f'{self.dir} is a pipeline for other sources ({", ".join(state["sources"])})')
            return state
        return dict(sources=list(self.flags.cocktail), stages={}, flags=to_plain(
            {k: v for k, v in self.flags.items() if k not in ('outdir',)}))

    def _save_state(self):
        tmp = self.state_path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(self.state, f, indent=2)
        os.replace(tmp, self.state_path)

    def _done(self, name):
        stage = self.state['stages'].get(name)
        return stage if stage and stage.get('done') else None

    def _finish(self, name, **info):
        self.state['stages'][name] = dict(info, done=True)
        self._save_state()

    # -- configuration shared by all training stages ----------------------------------------------
    def _stage_args(self, name, dataset, loss_sources, G_kwargs, D_kwargs, kimg, resume=None, freezed=None):
        f = self.flags
        flags = {k: f.get(k) for k in ('gpus', 'snap', 'seed', 'cfg', 'gamma', 'batch', 'aug', 'p', 'target',
                                       'augpipe', 'fp32', 'nhwc', 'nobench', 'allow_tf32', 'workers', 'device',
                                       'tick', 'batch_gpu')}
        flags['aug'] = flags['aug'] or STAGE_DEFAULT_AUG
        flags['metrics'] = []
        flags['training_set_kwargs'] = dataset
        flags['cond'] = dataset['num_classes'] > 0
        flags['freezed'] = freezed
        try:
            _, args = run_options.build(flags)
        except run_options.UserError as e:
            raise CocktailError(str(e)) from None
        fp16 = dict(num_fp16_res=0, conv_clamp=None) if args.G_kwargs.synthesis_kwargs.num_fp16_res == 0 else {}
        args.G_kwargs = _network_kwargs(G_kwargs, 'synthesis_kwargs', fp16)
        args.D_kwargs = _network_kwargs(D_kwargs, None, fp16)
        if freezed is not None:
            args.D_kwargs.setdefault('block_kwargs', EasyDict())['freeze_layers'] = freezed
        mbstd = args.D_kwargs.get('epilogue_kwargs', {}).get('mbstd_group_size', 4)
        if mbstd and args.batch_gpu % min(mbstd, args.batch_gpu):
            raise CocktailError(f'the per-GPU batch ({args.batch_gpu}) must be a multiple of the sources\' '
                                f'minibatch-stddev group ({mbstd}); change --batch')
        args.loss_kwargs = EasyDict(args.loss_kwargs, class_name='training_ext.common.generated.GeneratedDataLoss',
                                    sources=loss_sources)
        args.total_kimg = kimg
        args.run_dir = os.path.join(self.dir, name)
        snaps = _snapshots(args.run_dir)
        if snaps:                            # an interrupted stage: continue from its newest snapshot
            args.resume_pkl, args.resume_mode = snaps[-1], 'continue'
            self.log(f'[{name}] continuing from {os.path.basename(snaps[-1])}')
        elif resume is not None:
            args.resume_pkl, args.resume_mode = resume, 'weights'
            args.ada_kimg, args.ema_rampup = 100, None
        return args

    def _train(self, name, args):
        done = self._done(name)
        if done:
            self.log(f'[{name}] done before, skipping ({os.path.basename(done["output"])})')
            return done['output']
        self.log(f'[{name}] training {args.total_kimg} kimg -> {args.run_dir}')
        t0 = time.time()
        launch.launch(args, host_spec=self.host_spec, exist_ok=True)
        snaps = _snapshots(args.run_dir)
        final = snaps[-1]
        self._finish(name, output=final, kimg=args.total_kimg, seconds=round(time.time() - t0, 1))
        return final

    # -- stages -----------------------------------------------------------------------------------
    def run(self):
        f = self.flags
        sources = load_sources(f.cocktail)
        root_idx = f.get('root') or 0
        if not 0 <= root_idx < len(sources):
            raise CocktailError(f'--root must be between 0 and {len(sources) - 1}')
        self.sources, self.root = sources, sources[root_idx]
        baseline = f.get('baseline') or 'none'
        method = f.get('merge_method') or 'mean'
        if method not in MERGE_METHODS:
            raise CocktailError(f'--merge-method must be one of {", ".join(MERGE_METHODS)}')
        if method == 'slerp' and len(sources) != 2:
            raise CocktailError('--merge-method slerp merges exactly two sources')
        if baseline == 'none':
            rooted = {s.name: self.rooting(s) for i, s in enumerate(sources) if i != root_idx}
            start = self.averaging(rooted, method)
        else:
            rooted, start = {}, self.baseline_start(baseline)
        final = self.merge(start, freezed=(f.get('freezed') if f.get('freezed') is not None else 4)
                           if baseline == 'freezed' else f.get('freezed'), scratch=(baseline == 'scratch'))
        return write_report(self, final, rooted, baseline, method)

    def rooting(self, source):
        """Fine-tune a copy of the root's G and D on images generated by ``source``."""
        name = f'stage1-root-{source.name}'
        root = self.root
        ds = _label_dataset(root.G, root.G.c_dim, name=f'generated-{source.name}')
        spec = dict(source.spec(), offset=0, classes=1 << 30)     # this source draws every label
        args = self._stage_args(name, ds, [spec], _kwargs(root.G), _kwargs(root.D), self._root_kimg(),
                                resume=os.path.abspath(root.path))
        return self._train(name, args)

    def averaging(self, rooted, method):
        """Merge the root and the rooted models, then widen to one class per source."""
        name = 'stage2-average'
        out = os.path.join(self.dir, name, 'average.pkl')
        if self._done(name):
            self.log(f'[{name}] done before, skipping')
            return out
        t0 = time.time()
        models = [load_network_pkl(p) for p in rooted.values()]
        params = _merge_params(self.flags, method, len(models))
        G = merge_modules(self.root.G, [m['G'] for m in models], method, **params)
        D = merge_modules(self.root.D, [m['D'] for m in models], method, **params)
        C = total_classes(self.sources)
        G = widen_generator(G, C, self.root.offset)
        D = widen_discriminator(D, C, self.root.offset)
        save_network_pkl(dict(training_set_kwargs=None, G=G, D=D, G_ema=copy.deepcopy(G), augment_pipe=None), out)
        self._finish(name, output=out, seconds=round(time.time() - t0, 1), method=method, params=params)
        self.log(f'[{name}] {method} of {len(models) + 1} models, widened to {C} classes -> {out}')
        return out

    def baseline_start(self, baseline):
        """Baselines start from the root widened (TransferGAN, Freeze-D) or from scratch."""
        if baseline == 'scratch':
            return None
        out = os.path.join(self.dir, 'stage2-root-widened', 'root.pkl')
        if not os.path.isfile(out):
            C = total_classes(self.sources)
            G = widen_generator(self.root.G_ema, C, self.root.offset)
            D = widen_discriminator(self.root.D, C, self.root.offset)
            save_network_pkl(dict(training_set_kwargs=None, G=G, D=D, G_ema=copy.deepcopy(G)), out)
        return out

    def merge(self, start, freezed=None, scratch=False):
        """Class-conditional fine-tuning on the union of the original sources' images."""
        name = 'stage3-merge'
        C = total_classes(self.sources)
        ds = _label_dataset(self.root.G, C, name='generated-union', percentages=self.flags.get('class_percentages'))
        G_kwargs = dict(_kwargs(self.root.G), c_dim=C)
        D_kwargs = dict(_kwargs(self.root.D), c_dim=C)
        args = self._stage_args(name, ds, [s.spec() for s in self.sources], G_kwargs, D_kwargs,
                                self.flags.get('kimg') or 25000, resume=None if scratch else start, freezed=freezed)
        return self._train(name, args)

    def _root_kimg(self):
        return self.flags.get('root_kimg') or self.flags.get('kimg') or 25000


def _kwargs(module):
    """Constructor kwargs of a network with class_name, without what the loop supplies."""
    kw = copy.deepcopy(dict(module._init_kwargs))
    kw['class_name'] = host_class_name(module)
    return kw


def _network_kwargs(kwargs, nested, fp16_override):
    kw = EasyDict(copy.deepcopy(kwargs))
    for key in ('c_dim', 'img_resolution', 'img_channels'):
        kw.pop(key, None)
    target = kw.setdefault(nested, EasyDict()) if nested else kw
    target.update(fp16_override)
    return kw


def _label_dataset(G, num_classes, name, percentages=None):
    return dict(class_name='training_ext.common.generated.LabelDataset', resolution=G.img_resolution,
                num_channels=G.img_channels, num_classes=num_classes, class_percentages=percentages, name=name)


def _merge_params(flags, method, n_rooted):
    params = {}
    if method in ('task-arithmetic', 'ties') and flags.get('merge_scale') is not None:
        params['scale'] = flags.merge_scale
    if method == 'task-arithmetic' and flags.get('merge_weights'):
        weights = [float(w) for w in flags.merge_weights]
        if len(weights) != n_rooted:
            raise CocktailError(f'--merge-weights needs {n_rooted} values (one per rooted model)')
        params['weights'] = weights
    if method == 'ties' and flags.get('ties_density') is not None:
        params['density'] = flags.ties_density
    if method == 'slerp' and flags.get('slerp_t') is not None:
        params['t'] = flags.slerp_t
    return params


def _snapshots(run_dir):
    if not os.path.isdir(run_dir):
        return []
    return sorted(os.path.join(run_dir, p) for p in os.listdir(run_dir)
                  if p.startswith('network-snapshot-') and p.endswith('.pkl'))


