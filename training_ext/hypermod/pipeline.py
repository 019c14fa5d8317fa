"""The hyper-modulation pipeline: unconditional source -> class-conditional generator.

stage0-init: a HyperGenerator built from the source's G_ema (heads initialised to reproduce
  it, see networks.py) and a HyperDiscriminator from the source's D (every class's score
  starts as the source D's score; fromRGB frozen, or --freezed N layers). Before it, the
  source D's mean score on each class's reals is logged with the class it suggests for
  --hyper-anchor (source_domain.py)
stage1-selfinit (--self-init-kimg; default 0 with the default 'source' head init, which
  already reproduces the source, 20 with the paper's 'reference' init): no real data; a
  LabelDataset of class 0 only and SelfInitLoss train task network and heads so that the
  hyper generator reproduces the source block by block
stage2-init: after self-initialisation (or with the 'reference' init), class 0's embedding
  is copied to every class, so that every class starts as the source; with untrained
  'source' heads (which ignore the embeddings) the embeddings stay distinct, so that classes
  separate from the first step. The measured distance to the source per class is logged and
  kept in pipeline_state.json (self_init_error).
  With ``decorrelate`` (the default) the classes' task vectors are then put on disjoint
  coordinates (TaskNetwork.decorrelate_classes), plus the coordinate shared by every class
  but the anchor (``task_shared``).
stage2-cond: conditional training on the labelled target (--data, --cond 1) with the
  StyleGAN2 loss plus the contrastive and the mismatch terms on D (HypermodLoss). Only the
  class-dependent parts of the heads learn (``freeze_offsets``); ``--hyper-anchor K`` keeps
  class K (the source's own domain) exactly the source.
"""
import copy
import os

import torch

from plugin import run_options
from plugin.persistence import constructor_kwargs as module_kwargs
from plugin.pickles import load_network_pkl, save_network_pkl
from training_ext.common.source_pickles import load_source, open_target
from training_ext.common.stages import StagePipeline

from .config import HypermodConfig
from .networks import discriminator_from_source, hyper_from_source
from .source_domain import anchor_advice, class_scores
from plugin.errors import HypermodError

SELF_INIT_LOSS = 'training_ext.hypermod.loss.SelfInitLoss'
HYPERMOD_LOSS = 'training_ext.hypermod.loss.HypermodLoss'


class HypermodPipeline(StagePipeline):
    method = 'hypermod'
    error = HypermodError
    config_class = HypermodConfig

    def __init__(self,
        flags,                 # Command-line flags (dict): --data, --cond, the method's options, ...
        pipeline_dir,          # Directory of the stages and pipeline_state.json; created if missing.
        source,                # Path of the unconditional source pickle (G_ema and D): StyleGAN2 or alias-free.
        log          = print,  # Callable that prints one progress line.
    ):
        self.source_path = os.path.abspath(source)
        super().__init__(flags, pipeline_dir, log,
                         identity=dict(source=self.source_path, data=os.path.abspath(str(flags.get('data')))))

    def run(self):
        self.source = load_source(self.source_path, ('G_ema', 'D'), HypermodError)
        G = self.source['G_ema']
        if G.c_dim != 0:
            raise HypermodError(f'the source {self.source_path} is conditional (c_dim {G.c_dim}); hyper-modulation '
                                'turns an unconditional generator into a conditional one')
        self.num_classes = self.check_target()
        init = self.initial_pickle()
        kimg = self.config.get('self_init_kimg', self.G_kwargs['init'])
        if kimg < 0 or self.config.kimg < 0:
            raise HypermodError('--self-init-kimg and --kimg must be >= 0')
        start = self.self_initialise(init, kimg)
        final = self.conditional(start)
        self.log(f'Final pickle: {final}')
        return final

    # -- inputs -----------------------------------------------------------------------------------
    def check_target(self):
        """The number of classes of the labelled target (--data, --cond 1)."""
        ds = open_target(self.flags, self.source['G_ema'].img_resolution, HypermodError,
                         '--hyper needs the labelled target images (with --cond 1)', 'the source generates',
                         use_labels=True)
        if not ds.has_labels:
            raise HypermodError(f'--data {self.flags.data} has no class labels (dataset.json): hyper-modulation needs '
                                'a labelled target')
        if not self.flags.get('cond'):
            raise HypermodError('--hyper trains a class-conditional model: pass --cond 1')
        num_classes = ds.label_dim
        try:
            self.advise_anchor(ds)
        finally:
            ds.close()
        return num_classes

    def advise_anchor(self, ds):
        """Log how the source D scores each class's reals, and which class to anchor (or that the
        anchor given is not the best-scored class); measured once, kept in pipeline_state.json."""
        scores = self.state.get('source_class_scores')
        if scores is None or len(scores) != ds.label_dim:
            scores = class_scores(self.source['D'], ds)
            self.state['source_class_scores'] = scores
            self._save_state()
        self.log('[stage0-init] ' + anchor_advice(scores, self.config.hyper_anchor))

    # -- networks ---------------------------------------------------------------------------------
    def _hyper_options(self):
        rank = self.config.hyper_rank
        if rank < 0:
            raise HypermodError(f'--hyper-rank must be 0 (full heads) or positive, got {rank}')
        init, anchor = self.config.hyper_init, self.config.hyper_anchor
        # The paper's 'reference' heads learn the source's offsets in self-initialisation: they
        # cannot be frozen (the networks' kwargs hold for every stage).
        freeze = bool(self.config.freeze_offsets) and init == 'source'
        if anchor is not None and not (0 <= anchor < self.num_classes):
            raise HypermodError(f'the anchor class must be in 0..{self.num_classes - 1}, got {anchor}')
        if anchor is not None and (init != 'source' or not freeze):
            raise HypermodError("an anchor class needs --hyper-init source and frozen offsets")
        return dict(rank=rank, init=init, freeze_offsets=freeze, freeze_task=bool(self.config.freeze_task), anchor=anchor,
                    decorrelate=bool(self.config.decorrelate))

    def initial_pickle(self):
        out = self.path('stage0-init', 'init.pkl')
        if not os.path.isfile(out):
            freezed = self.config.freezed
            G = hyper_from_source(self.source['G_ema'], self.num_classes, **self._hyper_options())
            lr = self.config.d_head_lr
            if not lr > 0:
                raise HypermodError(f"the learning-rate multiplier of D's head must be > 0, got {lr}")
            D = discriminator_from_source(self.source['D'], self.num_classes, freezed, head_lr_multiplier=lr)
            save_network_pkl(dict(training_set_kwargs=None, G=G, D=D, G_ema=copy.deepcopy(G)), out)
        # Every stage builds the networks of the initial pickle (a resumed pipeline too, whatever
        # its flags say now), from their constructor kwargs.
        data = load_network_pkl(out)
        self.G_kwargs, self.D_kwargs = module_kwargs(data['G']), module_kwargs(data['D'])
        return out

    # -- stages -----------------------------------------------------------------------------------
    def _stage(self, name, kimg, resume, **kwargs):
        return self.stage_args(name, self.G_kwargs, self.D_kwargs, kimg, resume=resume, **kwargs)

    def self_initialise(self, init, kimg):
        """Self-initialisation (when kimg > 0), then class 0's embedding to every class (unless the
        heads are still the source's, which ignore the embeddings)."""
        trained = init
        if kimg > 0:
            G = self.source['G_ema']
            dataset = dict(class_name='training_ext.common.generated.LabelDataset', resolution=G.img_resolution,
                           num_channels=G.img_channels, num_classes=self.num_classes,
                           class_percentages=[1] + [0] * (self.num_classes - 1), name='self-init-class0')
            args = self._stage('stage1-selfinit', kimg, init, dataset=dataset, aug_default='noaug',
                               loss_kwargs=dict(class_name=SELF_INIT_LOSS, source=self.source_path))
            trained = self.train('stage1-selfinit', args)
        out = self.path('stage2-init', 'init.pkl')
        if not self.done('stage2-init'):
            data = load_network_pkl(trained)
            H = data['G']                       # the trained weights, not their running average
            if kimg > 0 or self.G_kwargs['init'] != 'source':
                H.copy_class(0)                 # the heads read v: class 0's (self-initialised) embedding for all
            else:
                # Source-init heads ignore v until they train, so every class already is the
                # source. Their embeddings stay distinct: with one shared embedding the first
                # steps would change every class alike (the heads' gradient is g (x) v, the
                # embeddings' zero while the heads' v-weights are zero), and classes would only
                # drift apart slowly, a second-order effect. Distinct, they separate from step 1.
                self.log('[stage2-init] source-init heads, no self-initialisation: class embeddings kept distinct '
                         '(every class still computes the source)')
                if hasattr(H.synthesis.task, 'basis'):
                    H.synthesis.task.decorrelate_classes(self.config.task_norm, self.config.task_shared)
                    self.log('[stage2-init] task vectors of the classes put on disjoint coordinates')
            errors = self_init_error(H, self.source['G_ema'], seed=run_options.flag(self.flags, 'seed'))
            self.log(f'[stage2-init] after {kimg:g} kimg of self-initialisation: mean |hyper - source| per class '
                     '(images in [-1, 1]): ' + ', '.join(f'{e:.2e}' for e in errors))
            save_network_pkl(dict(training_set_kwargs=None, G=H, D=data['D'], G_ema=copy.deepcopy(H)), out)
            self.finish('stage2-init', output=out, self_init_kimg=kimg, self_init_error=errors)
        return out

    def conditional(self, start):
        f = self.flags
        kimg = self.config.kimg
        if kimg == 0:
            self.log(f'[stage2-cond] --kimg 0: no conditional training; the result is {start} (every class the source)')
            return start
        loss = dict(class_name=HYPERMOD_LOSS, contrastive_weight=self.config.contrastive_weight,
                    mismatch_weight=self.config.mismatch_weight)
        if loss['contrastive_weight'] == 0:
            self.log('[stage2-cond] --contrastive-weight 0: D trains without the Barlow Twins term')
        args = self._stage('stage2-cond', kimg, start, data=f.data, loss_kwargs=loss)
        interval = self.config.r1_interval     # a pipeline option (bench/exp_hypermod.py), not a flag
        if interval < 1:
            raise HypermodError(f'the R1 interval must be at least 1, got {interval}')
        args.D_reg_interval = interval
        return self.train('stage2-cond', args)


@torch.no_grad()
def self_init_error(H, G, num=64, seed=0):
    """Mean absolute difference of images between the hyper generator (each class) and the
    source, for the same z and constant noise."""
    H, G = H.eval(), G.eval()
    device = next(G.parameters()).device
    z = torch.randn([num, G.z_dim], generator=torch.Generator().manual_seed(seed)).to(device)
    ref = G(z, torch.zeros([num, 0], device=device), noise_mode='const')
    errors = []
    for k in range(H.num_classes):
        c = torch.zeros([num, H.num_classes], device=device)
        c[:, k] = 1
        errors.append(float((H(z, c, noise_mode='const') - ref).abs().mean()))
    return errors
