"""The cocktail pipeline: widening -> conditional rooting -> averaging -> merge fine-tuning -> report.

Every training stage is an ordinary run of the host's training loop, configured through its
seams: a ``LabelDataset`` (labels only) and a ``GeneratedDataLoss`` (real images generated on
the fly by the source generators). The pipeline directory keeps ``pipeline_state.json``; a
killed pipeline started again with ``--resume <pipeline dir>`` skips finished stages and
continues an interrupted training stage from its newest snapshot.
"""
import copy
import os
import time

from plugin.cli_flags import merge_flags_given, merge_params_given
from plugin.layouts import fourier_mismatch
from plugin.metrics.inception import DetectorError, load_detector
from plugin.pickles import load_network_pkl, save_network_pkl
from plugin.persistence import constructor_kwargs as module_kwargs
from training_ext.common.stages import StagePipeline

from .config import MERGE_FLAG_NAMES, MERGE_SKIP, CocktailConfig
from .judge import Judge
from .merge import MERGE_METHODS, merge_modules
from .report import write_report
from .sources import CocktailError, load_sources, total_classes
from plugin.widen import widen_discriminator, widen_generator

BASELINES = ('none', 'scratch', 'transfergan', 'freezed')
STAGE_DEFAULT_AUG = 'noaug'          # generated data is unlimited: no augmentation (as the reference)
GENERATED_LOSS = 'training_ext.common.generated.GeneratedDataLoss'


class CocktailPipeline(StagePipeline):
    method = 'cocktail'
    error = CocktailError
    config_class = CocktailConfig

    def __init__(self,
        flags,                 # Command-line flags; flags['cocktail'] lists the source pickles.
        pipeline_dir,          # Directory of the stages; created if missing.
        log          = print,  # Callable that prints one progress line.
    ):
        super().__init__(flags, pipeline_dir, log, identity=list(flags['cocktail']))

    # -- stages -----------------------------------------------------------------------------------
    def run(self):
        f = self.flags
        sources = load_sources(f.cocktail, f.get('class_names'))
        root_idx = self.config.root
        if not 0 <= root_idx < len(sources):
            raise CocktailError(f'--root must be between 0 and {len(sources) - 1}')
        self.sources, self.root = sources, sources[root_idx]
        self.log('Sources: ' + ', '.join(f'{s.index}: {s.name} ({s.path}, class{"es" if s.num_classes > 1 else ""} '
                                         f'{_class_range(s)}){" [root]" if s is self.root else ""}' for s in sources))
        unrelated = [s.name for s in sources if s is not self.root and
                     fourier_mismatch([self.root.G_ema.state_dict(), s.G_ema.state_dict()], ['', ''])]
        if unrelated:
            # Not an error: no stage averages a source itself, only fine-tunes of the root.
            self.log(f'Sources {", ".join(unrelated)}: other Fourier features than the root {self.root.name} '
                     '(independently initialised alias-free generators): they are never averaged themselves; '
                     'rooting fine-tunes the root, whose features every averaged model keeps')
        baseline = self.config.baseline
        if baseline not in BASELINES:
            raise CocktailError(f'--baseline for a cocktail must be one of {", ".join(BASELINES)}')
        method = self.config.merge_method
        if method not in MERGE_METHODS:
            raise CocktailError(f'--merge-method must be one of {", ".join(MERGE_METHODS)}')
        if method == 'slerp' and len(sources) != 2:
            raise CocktailError('--merge-method slerp merges exactly two sources')
        budgets = self.check_kimg(baseline)
        # Checked before any training: a parameter the method does not take fails at once.
        if baseline != 'none':
            given = merge_flags_given(f, MERGE_FLAG_NAMES, skip=MERGE_SKIP)
            if given:
                raise CocktailError(f'--{MERGE_FLAG_NAMES[next(iter(given))]}: --baseline {baseline} does not '
                                    'average models')
        self.merge_params = _merge_params(f, method, len(sources) - 1) if baseline == 'none' else {}
        if f.get('judge_inception'):
            if self.config.judge == 0:
                raise CocktailError('--judge-inception with --judge 0: nothing would be judged')
            try:                                   # before any training: a bad file fails at once
                load_detector(f.judge_inception)
            except DetectorError as e:
                raise CocktailError(str(e).replace('--inception', '--judge-inception', 1)) from None
        if baseline == 'none':
            rooted = {s.name: self.rooting(s) for s in sources if s is not self.root}
            start = self.averaging(rooted, method)
        else:
            rooted, start = {}, self.baseline_start(baseline)
        freezed = f.get('freezed')
        if baseline == 'freezed' and freezed is None:
            freezed = self.config.baseline_freezed
        self.merge_start = start
        final = self.merge(start, freezed=freezed, scratch=(baseline == 'scratch'))
        # The budgets now trained are what a later --resume without them continues with.
        self.state['flags'].update(kimg=budgets[0], root_kimg=budgets[1])
        self._save_state()
        return write_report(self, final, rooted, baseline, method)

    def check_kimg(self, baseline):
        """0 means 0 (the stage is skipped, said in the log), negative is an error. The rooting
        budget is kept in the pipeline state as resolved, so that ``--resume DIR --kimg 24``
        extends the merge stage only, not rooting too (its default is --kimg)."""
        kimg, root_kimg = self.config.kimg, self._root_kimg()
        if kimg < 0 or root_kimg < 0:
            raise CocktailError('--kimg and --root-kimg must be >= 0')
        if baseline != 'none' and kimg == 0:
            raise CocktailError(f'--kimg 0 with --baseline {baseline}: the baseline would not train at all')
        if self.state['flags'].get('root_kimg') is None:
            self.state['flags']['root_kimg'] = root_kimg
            self._save_state()
        return kimg, root_kimg

    def downstream(self, name):
        # Rooting runs are independent of each other: extending one redoes the average and
        # the merge stage only.
        if name.startswith('stage1-root-'):     # (stage0-root-widened is never extended)
            return ['stage2-average', 'stage3-merge']
        return super().downstream(name)

    def judge(self):
        """The source-identification judge (report.judge_stages), trained once and kept in
        ``judge/``; None with --judge 0 (said in the log)."""
        n = self.config.judge
        if n == 0:
            self.log('--judge 0: no per-class source identification or FID in the report')
            return None
        if n < 10:
            raise CocktailError(f'--judge needs at least 10 images per class (or 0 for none), got {n}')
        directory = self.path('judge')
        inception_path = self.flags.get('judge_inception')
        inception_path = inception_path and os.path.abspath(inception_path)
        if os.path.isfile(os.path.join(directory, 'judge.json')):
            judge = Judge.load(directory)
            if judge.space.inception_path == inception_path:
                return judge
            self.log(f'[judge] FID space changed ({judge.space.name} before): judge retrained')
        names = [f'{s.name}:{k}' if s.G.c_dim else s.name for s in self.sources for k in range(s.num_classes)]
        judge = Judge.train(self.sources, names, n=n, inception_path=inception_path, log=self.log)     # one fixed seed: comparable across runs
        judge.save(directory)
        return judge

    def judge_eval_samples(self):
        # A quarter of the training count per class: enough for the accuracy's and FID's trend.
        return max(self.config.judge // 4, 8)

    def widened_root(self):
        """The root widened to the merged class layout (plugin/widen.py): its own classes compute
        the root exactly, the others start as perturbations of it (symmetry broken, measured):
        every rooting run starts here, so that all rooted models share one label layout."""
        name = 'stage0-root-widened'
        out = self.path(name, 'root.pkl')
        if self.done(name) and os.path.isfile(out):
            return out
        C, r = total_classes(self.sources), self.root
        # Only the root's own classes exact: the others start as perturbations of it (symmetry broken).
        G, G_ema = widen_generator(r.G, C, r.offset, exact=False), widen_generator(r.G_ema, C, r.offset, exact=False)
        D = widen_discriminator(r.D, C, r.offset, exact=False)
        os.makedirs(self.path(name), exist_ok=True)
        save_network_pkl(dict(training_set_kwargs=None, G=G, D=D, G_ema=G_ema, augment_pipe=None), out)
        self.finish(name, output=out, classes=C)
        self.log(f'[{name}] {r.name} widened to {C} classes (its own: {_class_range(r)}) -> {out}')
        return out

    def rooting(self, source):
        """Conditional rooting (the reference's): fine-tune the widened root so that source j's
        classes draw source j's images (generated on the fly by its G_ema). With --root-replay
        (default) the root's own classes are trained on the root's images in the same run, half
        the batch: the rooted model must then tell the two apart through its label path."""
        name = f'stage1-root-{source.name}'
        root, C = self.root, total_classes(self.sources)
        start = self.widened_root()
        kimg = self._root_kimg()
        if kimg == 0:
            self.log(f'[{name}] --root-kimg 0: not rooted; the widened root stands for {source.name} in the average')
            return start
        mix = [0.0] * C
        for k in range(source.offset, source.offset + source.num_classes):
            mix[k] = 1.0 / source.num_classes
        loss_sources = [source.spec()]
        if self.config.root_replay:
            for k in range(root.offset, root.offset + root.num_classes):
                mix[k] = 1.0 / root.num_classes
            loss_sources.append(root.spec())
        ds = _label_dataset(root.G, C, name=f'generated-{source.name}', percentages=mix)
        args = self._stage(name, ds, loss_sources, module_kwargs(root.G), module_kwargs(root.D), kimg, resume=start)
        return self.train(name, args)

    def averaging(self, rooted, method):
        """Merge the widened root and the rooted models (one label layout, class-specific
        embeddings kept: each rooted model trained its source's classes)."""
        name = 'stage2-average'
        out = self.path(name, 'average.pkl')
        if self.done(name):
            self.log(f'[{name}] done before, skipping')
            return out
        t0 = time.time()
        start = load_network_pkl(self.widened_root())
        models = [load_network_pkl(p) for p in rooted.values()]
        # Alias-free sources: every rooted model is a fine-tune of the widened root, so it holds
        # the root's Fourier features; one that does not (a rooting run that did not start from
        # the root) cannot be averaged with it.
        for key in ('G', 'G_ema'):
            mismatch = fourier_mismatch([start[key].state_dict()] + [m[key].state_dict() for m in models],
                                        [f'the widened root ({key})'] + [f'rooted model {p} ({key})'
                                                                         for p in rooted.values()])
            if mismatch:
                raise CocktailError(f'{mismatch}. The cocktail averages the rooted models, fine-tunes of the root')
        params = self.merge_params
        G = merge_modules(start['G'], [m['G'] for m in models], method, **params)
        D = merge_modules(start['D'], [m['D'] for m in models], method, **params)
        save_network_pkl(dict(training_set_kwargs=None, G=G, D=D, G_ema=copy.deepcopy(G), augment_pipe=None), out)
        self.finish(name, output=out, seconds=round(time.time() - t0, 1), method=method, params=params)
        self.log(f'[{name}] {method} of {len(models) + 1} models ({G.c_dim} classes) -> {out}')
        return out

    def baseline_start(self, baseline):
        """Baselines start from the root widened (TransferGAN, Freeze-D) or from scratch."""
        if baseline == 'scratch':
            return None
        out = self.path('stage2-root-widened', 'root.pkl')
        if not os.path.isfile(out):
            C = total_classes(self.sources)
            G = widen_generator(self.root.G_ema, C, self.root.offset, exact=False)     # as the cocktail's root
            D = widen_discriminator(self.root.D, C, self.root.offset, exact=False)
            save_network_pkl(dict(training_set_kwargs=None, G=G, D=D, G_ema=copy.deepcopy(G)), out)
        return out

    def merge(self, start, freezed=None, scratch=False):
        """Class-conditional fine-tuning on the union of the original sources' images."""
        name = 'stage3-merge'
        C = total_classes(self.sources)
        ds = _label_dataset(self.root.G, C, name='generated-union', percentages=self.flags.get('class_percentages'))
        kimg = self.config.kimg
        if kimg == 0:
            self.log(f'[{name}] --kimg 0: no merge fine-tuning; the result is {start}')
            return start
        args = self._stage(name, ds, [s.spec() for s in self.sources], module_kwargs(self.root.G),
                           module_kwargs(self.root.D), kimg, resume=None if scratch else start, freezed=freezed)
        return self.train(name, args)

    def _stage(self, name, dataset, loss_sources, G_kwargs, D_kwargs, kimg, resume=None, freezed=None):
        return self.stage_args(name, G_kwargs, D_kwargs, kimg, dataset=dataset, resume=resume, freezed=freezed,
                               loss_kwargs=dict(class_name=GENERATED_LOSS, sources=loss_sources),
                               aug_default=STAGE_DEFAULT_AUG)

    def _root_kimg(self):
        root_kimg = self.config.root_kimg
        return self.config.kimg if root_kimg is None else root_kimg


def _class_range(source):
    last = source.offset + source.num_classes - 1
    return str(source.offset) if last == source.offset else f'{source.offset}-{last}'


def _label_dataset(G, num_classes, name, percentages=None):
    return dict(class_name='training_ext.common.generated.LabelDataset', resolution=G.img_resolution,
                num_channels=G.img_channels, num_classes=num_classes, class_percentages=percentages, name=name)


def _merge_params(flags, method, n_rooted):
    """The merge parameters given as flags (the methods' declarations name them); one given to
    a method that does not take it is an error. Weights are per rooted model (the root's is the
    rest)."""
    params = merge_params_given(method, flags, MERGE_FLAG_NAMES, skip=MERGE_SKIP, error=CocktailError)
    if 'weights' in params:
        params['weights'] = [float(w) for w in params['weights']]
        if len(params['weights']) != n_rooted:
            raise CocktailError(f'--merge-weights needs {n_rooted} values (one per rooted model)')
    return params
