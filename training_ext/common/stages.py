"""Multi-stage methods: a directory of training stages that can be resumed stage by stage.

A method (cocktail, mining, ...) is a sequence of stages; each training stage is an
ordinary run of the host's training loop configured through its seams. The pipeline
directory keeps ``pipeline_state.json``; started again on the same directory, finished
stages are skipped and an interrupted training stage continues from its newest snapshot.
"""
import copy
import json
import os
import time

from plugin import launch, run_options
from plugin.easydict import EasyDict, to_plain
from plugin.files import atomic_write_bytes, list_snapshots
from plugin.errors import StageError

STATE_FILE = 'pipeline_state.json'
# Flags of train_cocktail.py that every stage inherits (the host's meaning, per stage).
STAGE_FLAGS = ('gpus', 'snap', 'seed', 'cfg', 'gamma', 'batch', 'aug', 'p', 'target', 'augpipe', 'fp32', 'nhwc',
               'nobench', 'allow_tf32', 'workers', 'device', 'tick', 'ema_kimg', 'batch_gpu', 'mirror', 'subset', 'cond')


class StagePipeline:
    method = 'pipeline'
    error = StageError          # each method's own user-facing error type: raised as is, never re-wrapped
    config_class = None         # the method's options (training_ext.common.config.MethodConfig)

    def __init__(self,
        flags,                 # Command-line flags (dict); ones left None are filled from a resumed state.
        pipeline_dir,          # Directory of the stages and pipeline_state.json; created if missing.
        log          = print,  # Callable that prints one progress line.
        identity     = None,   # What it is for (JSON data); a state for another is refused; None = unchecked.
    ):
        # Stages train with the active host (train_cocktail.py sets it from --host; spawned
        # processes inherit it through $COCKTAIL_HOST).
        self.flags = EasyDict(flags)
        self.dir = pipeline_dir
        self.log = log
        os.makedirs(self.dir, exist_ok=True)
        self.state_path = os.path.join(self.dir, STATE_FILE)
        self.state = self._load_state(identity)

    @property
    def config(self):
        """The method's options: the flags given (a resumed pipeline's own included), else the
        defaults its config declares. Read from the flags each time: stages may set flags."""
        return self.config_class.from_flags(self.flags)

    # -- persistent state -------------------------------------------------------------------------
    def _load_state(self, identity):
        if os.path.isfile(self.state_path):
            with open(self.state_path) as f:
                state = json.load(f)
            if identity is not None and state.get('identity') != identity:
                raise self.error(f'{self.dir} is a {state.get("method")} pipeline for {state.get("identity")}, '
                                 f'not {identity}')
            # A flag not given again (None) keeps the value the pipeline was started with:
            # --resume DIR alone continues the same run; a flag given again overrides it.
            for key, value in (state.get('flags') or {}).items():
                if self.flags.get(key) is None and value is not None and key not in ('resume', 'outdir'):
                    self.flags[key] = value
            return state
        return dict(method=self.method, identity=identity, stages={},
                    flags=to_plain({k: v for k, v in self.flags.items() if k != 'outdir'}))

    def _save_state(self):
        atomic_write_bytes(json.dumps(self.state, indent=2).encode(), self.state_path)

    def done(self, name):
        stage = self.state['stages'].get(name)
        return stage if stage and stage.get('done') else None

    def finish(self, name, **info):
        self.state['stages'][name] = dict(info, done=True)
        self._save_state()

    def downstream(self, name):
        """The stages whose input is stage ``name``'s result: by default every stage that
        finished after it (a method with independent stages says which depend on which)."""
        names = list(self.state['stages'])
        return names[names.index(name) + 1:] if name in names else []

    def reopen(self, name):
        """Stage ``name`` is trained further: it and its downstream stages are no longer done
        (their input changes); downstream directories are moved aside (to
        ``<dir>.before-<name>-<n>``), so that they start again instead of continuing stale
        snapshots. Said in the log."""
        later = self.downstream(name)
        self.state['stages'].pop(name, None)
        for other in later:
            self.state['stages'].pop(other, None)
            old = self.path(other)
            if os.path.isdir(old):
                n = 0
                while os.path.exists(f'{old}.before-{name}-{n}'):
                    n += 1
                os.rename(old, f'{old}.before-{name}-{n}')
                self.log(f'[{other}] redone after {name} is extended; the old one moved to '
                         f'{os.path.basename(old)}.before-{name}-{n}')
            else:
                self.log(f'[{other}] redone after {name} is extended')
        self._save_state()

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    # -- training stages --------------------------------------------------------------------------
    def stage_args(self, name, G_kwargs, D_kwargs, kimg, data=None, dataset=None, loss_kwargs=None, resume=None,
                   freezed=None, aug_default=None):
        """training_loop kwargs for one stage: the user's flags, these networks and data."""
        flags = {k: self.flags.get(k) for k in STAGE_FLAGS}
        flags['aug'] = flags['aug'] or aug_default
        flags['metrics'] = []
        flags['data'] = data
        if dataset is not None:
            flags['training_set_kwargs'] = dataset
            flags['cond'] = dataset.get('num_classes', 0) > 0
        flags['freezed'] = freezed
        try:
            _, args = run_options.build(flags)
        except run_options.UserError as e:
            raise self.error(str(e)) from None
        # stylegan2-ada nests the synthesis options, the stylegan3 repo's configs lay them out flat.
        synthesis = args.G_kwargs.get('synthesis_kwargs', args.G_kwargs)
        fp16 = dict(num_fp16_res=0, conv_clamp=None) if synthesis.get('num_fp16_res', 0) == 0 else {}
        args.G_kwargs = network_kwargs(G_kwargs, fp16)
        args.D_kwargs = network_kwargs(D_kwargs, fp16)
        if freezed is not None:
            args.D_kwargs.setdefault('block_kwargs', EasyDict())['freeze_layers'] = freezed
        mbstd = args.D_kwargs.get('epilogue_kwargs', {}).get('mbstd_group_size', 4)
        if mbstd and args.batch_gpu % min(mbstd, args.batch_gpu):
            raise self.error(f'the per-GPU batch ({args.batch_gpu}) must be a multiple of the discriminator\'s '
                             f'minibatch-stddev group ({mbstd}); change --batch')
        if loss_kwargs:
            args.loss_kwargs = EasyDict(args.loss_kwargs, **loss_kwargs)
        args.total_kimg = kimg
        args.run_dir = self.path(name)
        snaps = list_snapshots(args.run_dir)
        done = self.done(name)
        if done and kimg < done.get('kimg', kimg):
            raise self.error(f'[{name}] finished at {done["kimg"]} kimg; it cannot be shortened to {kimg} kimg '
                             f'(give at least {done["kimg"]}, or start a new pipeline)')
        extend = bool(done) and kimg > done.get('kimg', kimg)
        if snaps and (extend or not done):    # interrupted or extended: continue from its newest snapshot
            args.resume_pkl, args.resume_mode = snaps[-1], 'continue'
            self.log(f'[{name}] continuing from {os.path.basename(snaps[-1])}'
                     + (f' (finished at {done["kimg"]} kimg, extended to {kimg} kimg)' if extend else ''))
        elif extend:
            raise self.error(f'[{name}] finished at {done["kimg"]} kimg but its snapshots are gone from '
                             f'{args.run_dir}: it cannot be extended to {kimg} kimg')
        elif resume is not None:
            args.resume_pkl, args.resume_mode = resume, 'weights'
            args.ada_kimg, args.ema_rampup = 100, None
        return args

    def train(self, name, args):
        """Run a training stage unless it finished before; returns its final snapshot."""
        done = self.done(name)
        if done and args.total_kimg <= done.get('kimg', args.total_kimg):   # (stage_args refused a smaller one)
            self.log(f'[{name}] done before, skipping ({os.path.basename(done["output"])})')
            return done['output']
        if done:
            self.reopen(name)
        self.log(f'[{name}] training {args.total_kimg} kimg -> {args.run_dir}')
        t0 = time.time()
        launch.launch(args, exist_ok=True)
        final = list_snapshots(args.run_dir)[-1]
        self.finish(name, output=final, kimg=args.total_kimg, seconds=round(time.time() - t0, 1))
        return final


def pipeline_dir(flags, desc, error=StageError):
    """``--resume DIR`` when it is a pipeline directory, else a new numbered one in --outdir;
    a bad --resume raises ``error`` (the method's own error class)."""
    resume = flags.get('resume')
    if resume:
        if not os.path.isfile(os.path.join(resume, STATE_FILE)):
            raise error(f'--resume {resume}: not a pipeline directory (no {STATE_FILE})')
        return resume
    return launch.next_run_dir(flags['outdir'], desc)


def read_pipeline_state(path):
    """The pipeline_state.json of directory ``path`` as a dict, or None when there is none."""
    state = os.path.join(str(path), STATE_FILE) if path else None
    if state is None or not os.path.isfile(state):
        return None
    with open(state) as f:
        return json.load(f)


def resume_source_or_pipeline(resume, method, error, missing):
    """For methods whose --resume names the source pickle: (source, directory, state) when
    ``resume`` is a ``method`` pipeline directory to continue, else (source pickle, None, None).
    ``missing`` is the message when no --resume is given; other problems raise ``error``."""
    if not resume:
        raise error(missing)
    resume = str(resume)
    if os.path.isdir(resume):
        state = read_pipeline_state(resume)
        if state is None:
            raise error(f'--resume {resume}: a directory but not a pipeline directory (no {STATE_FILE}); '
                        'give the source pickle to start a new pipeline')
        if state.get('method') != method:
            raise error(f'--resume {resume}: a {state.get("method")} pipeline, not a {method} one')
        return (state.get('identity') or {}).get('source'), resume, state
    if not os.path.isfile(resume):
        raise error(f'--resume {resume}: no such source pickle or pipeline directory')
    return resume, None, None


def source_names(paths, names=None):
    """The sources' labels joined for a run directory's description (see source_labels:
    snapshots that share a file name are told apart by their run directories)."""
    from .source_pickles import source_labels
    return '-'.join(source_labels(paths, names, StageError))


def network_kwargs(kwargs, fp16_override):
    """Generator/discriminator kwargs for a stage: what the loop supplies removed, and the
    stage's precision applied (to synthesis_kwargs for a generator, at top level for D, and
    to every generator a wrapper holds)."""
    kw = EasyDict(copy.deepcopy(dict(kwargs)))
    for key in ('c_dim', 'img_resolution', 'img_channels'):
        kw.pop(key, None)
    return _with_precision(kw, fp16_override)


def _with_precision(kw, fp16_override):
    # A wrapper holds host networks' kwargs under 'generators' (mining), 'generator' or
    # 'discriminator' (hyper-modulation); they are built by the wrapper, so they keep their
    # c_dim and resolution, and get the stage's precision.
    name = kw.get('class_name', '')
    if 'synthesis_kwargs' in kw:
        kw.synthesis_kwargs = EasyDict(kw.synthesis_kwargs, **fp16_override)
    elif name.endswith('.Generator') or (name.endswith('Discriminator') and 'discriminator' not in kw):
        kw.update(fp16_override)        # D, and the stylegan3 repo's generators (synthesis options flat)
    if 'generators' in kw:
        kw.generators = [_with_precision(EasyDict(g), fp16_override) for g in kw.generators]
    for key in ('generator', 'discriminator'):
        if key in kw:
            kw[key] = _with_precision(EasyDict(kw[key]), fp16_override)
    return kw

