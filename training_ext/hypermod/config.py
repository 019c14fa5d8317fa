"""The hyper-modulation method's options, declared once (see training_ext/common/config.py).

A flag given as 0 is 0: ``--kimg 0`` stops after stage2-init (every class the source),
``--contrastive-weight 0`` drops the Barlow Twins term, ``--hyper-rank 0`` is full-rank heads,
``--self-init-kimg 0`` skips self-initialisation.
"""
import dataclasses

import click

from training_ext.common.config import MethodConfig, PerKey, option

from .networks import INITS


@dataclasses.dataclass(frozen=True)
class HypermodConfig(MethodConfig):
    hyper: bool = option(False, 'Hyper-modulation: make the unconditional --resume PKL class-conditional on --data '
                         '(--cond 1)', flag='--hyper', is_flag=True)
    hyper_rank: int = option(8, 'Rank of the gamma/beta heads; 0 = full', flag='--hyper-rank', type=int,
                             metavar='INT')       # see bench/bench_hypermod.py and the package docstring
    hyper_init: str = option('source', "source: heads start reproducing the source; reference: the paper's",
                             flag='--hyper-init', type=click.Choice(list(INITS)))
    # Self-initialisation kimg by head init: 'source' heads already reproduce the source (measured
    # 1.5e-7 mean |hyper - source|), which self-initialisation can only perturb (Adam's steps on
    # near-zero L1 gradients: 1e-2..8e-2 after 150 steps); the paper's 'reference' init needs it.
    self_init_kimg: float = option(PerKey(source=0, reference=20), 'kimg of self-initialisation (no real data), '
                                   'by --hyper-init', flag='--self-init-kimg', type=float, metavar='KIMG')
    contrastive_weight: float = option(0.01, "Weight of the Barlow Twins term in D's loss", flag='--contrastive-weight',
                                       type=float, metavar='FLOAT')
    hyper_anchor: int = option(None, "The class that is the source's own domain: it stays exactly the source",
                               flag='--hyper-anchor', type=int, metavar='CLASS', default_help='no anchor')
    # Host flags with hyper-modulation's own default.
    kimg: int = option(1000, 'stage2-cond')
    freezed: int = option(1, "the reference freezes D's fromRGB layer")
    # Pipeline options without a flag (bench/exp_hypermod.py --hyper-option NAME=VALUE sets them).
    # R1 every N D steps. 1 (the paper's every step) measured better than the host's lazy 16 at
    # equal kimg and at about equal wall time (BENCHMARKS.md, issue 17: union FID 7.41 vs 9.25
    # at 8 kimg; 8.18 at 542 s vs 9.25 at 509 s).
    r1_interval: int = option(1, 'R1 every N D steps')
    # D's per-class head rows are its only class-specific weights and start identical (the
    # source's output layer); at the equalised lr 1 they moved too slowly for the classes to
    # separate reliably by 8 kimg. Measured (BENCHMARKS.md, issue 17, sessions 7-8; shipped discs
    # run -> discs, rings, stripes, anchored, 8 kimg): 3 met every class >= 0.8 in 4 seeds of 4,
    # 1 in 1 of 3 and 10 in 1 of 2.
    d_head_lr: float = option(3, "learning-rate multiplier of D's per-class head rows")
    mismatch_weight: float = option(1, "weight of real images under a wrong label scored as fakes in D's loss")
    # Issue 17 (BENCHMARKS.md, "making every class appear by 8 kimg"): classes learn on their
    # own weights. The heads' v-independent parts stay the source's (freeze_offsets, with
    # --hyper-init source; the reference init's offsets must learn in self-initialisation); the task
    # vectors of the classes lie on disjoint coordinates (decorrelate), plus one coordinate
    # shared by every class but the anchor at value task_shared (the new classes' common
    # offset, learnt from the whole batch); D scores real images under a wrong label as fakes
    # (mismatch_weight).
    freeze_offsets: bool = option(True, "the heads' class-independent parts stay the source's (source init)")
    freeze_task: bool = option(False, 'the task network (embedding, MLP) frozen too')
    decorrelate: bool = option(True, "each class's task vector on its own coordinates")
    task_norm: float = option(None, "norm of the decorrelated task vectors; None: the MLP's outputs' mean norm")
    task_shared: float = option(8, '> 0: a task coordinate shared by every class but the anchor, at this value')
