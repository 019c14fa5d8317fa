"""The hyper-modulation method's option defaults, in one place (flags' help, pipeline and
loss read them). A flag given as 0 is 0: ``--kimg 0`` stops after stage2-init (every class
the source), ``--contrastive-weight 0`` drops the Barlow Twins term, ``--hyper-rank 0`` is
full-rank heads, ``--self-init-kimg 0`` skips self-initialisation.
"""
DEFAULTS = dict(
    hyper_rank=8,               # see bench/bench_hypermod.py and the package docstring
    hyper_init='source',
    contrastive_weight=0.01,
    mismatch_weight=1,          # weight of real images under a wrong label scored as fakes in D's loss
    kimg=1000,                  # stage2-cond
    freezed=1,                  # the reference freezes D's fromRGB layer
    # R1 every N D steps. 1 (the paper's every step) measured better than the host's lazy 16 at
    # equal kimg and at about equal wall time (BENCHMARKS.md, issue 17: union FID 7.41 vs 9.25
    # at 8 kimg; 8.18 at 542 s vs 9.25 at 509 s).
    r1_interval=1,
    # Issue 17 (BENCHMARKS.md, "making every class appear by 8 kimg"): classes learn on their
    # own weights. The heads' v-independent parts stay the source's (freeze_offsets, with
    # --hyper-init source; the reference init's offsets must learn in self-initialisation); the task
    # vectors of the classes lie on disjoint coordinates (decorrelate), plus one coordinate
    # shared by every class but the anchor at value task_shared (the new classes' common
    # offset, learnt from the whole batch); D scores real images under a wrong label as fakes
    # (mismatch_weight). hyper_anchor: the class that is the source's own domain, kept exactly
    # the source (--hyper-anchor; None: no anchor).
    freeze_offsets=True,
    freeze_task=False,          # True: the task network (embedding, MLP) frozen too
    hyper_anchor=None,
    decorrelate=True,
    task_norm=None,             # norm of the decorrelated task vectors; None: the MLP's outputs' mean norm
    task_shared=8,              # > 0: a task coordinate shared by every class but the anchor, at this value
)
# Self-initialisation kimg by head init: 'source' heads already reproduce the source (measured
# 1.5e-7 mean |hyper - source|), which self-initialisation can only perturb (Adam's steps on
# near-zero L1 gradients: 1e-2..8e-2 after 150 steps); the paper's 'reference' init needs it.
DEFAULT_SELF_INIT_KIMG = dict(source=0, reference=20)


def option(flags, name):
    """The flag's value, or its default when it was not given (None): never ``value or default``."""
    value = flags.get(name)
    return DEFAULTS[name] if value is None else value
