"""Hyper-modulation (arXiv 2112.02219): turn an unconditional generator into a class-conditional one.

    python train_cocktail.py --outdir runs --data labelled.zip --cond 1 --resume uncond.pkl --hyper \\
        [--hyper-rank 8] [--hyper-init source] [--self-init-kimg 0] [--contrastive-weight 0.01] \\
        [--hyper-anchor CLASS] --kimg 200

networks.py: HyperGenerator (frozen standardised base weights, task network, gamma/beta/delta-b
heads per 3x3 synthesis conv of a StyleGAN2, per layer but ToRGB of an alias-free StyleGAN3-T/-R
generator; the label travels inside the ws) and HyperDiscriminator (the source D with a
per-class output head). loss.py: SelfInitLoss and HypermodLoss (StyleGAN2 +
Barlow Twins and the wrong-label term on D). Classes learn on their own weights: frozen head
offsets, task vectors on disjoint coordinates, an optional anchor class (``--hyper-anchor``)
kept exactly the source (defaults.py; issue 17 in BENCHMARKS.md). pipeline.py: init ->
self-initialisation -> conditional training.
The per-sample weight is one op, torch_utils_ext.ops.hypermod_weight (the fused-kernel hot path).

Defaults, measured with bench/bench_hypermod.py:
* ``--hyper-rank 8``. Trainable head weights at StyleGAN2 256 px (13 convs, up to 512
  channels): full heads 339.0 M, rank 4 8.4 M, rank 8 11.2 M (3.3 %), rank 16 16.8 M. Self-
  initialisation of the tiny discs source from the paper's init, 150 Adam steps at lr 0.0025,
  batch 8, mean |hyper - source| of images: full 1.28, rank 4 0.57, rank 8 0.45, rank 16 0.63;
  so low rank is not worse than full at equal budget here, and rank 8 is the best of those
  measured at 3 % of the full heads' size.
* ``--hyper-init source``: the heads' v-independent parts start at (sigma, mu, b - b_hat) and
  their v-dependent parts at zero, so the hyper generator reproduces the source at once (mean
  |hyper - source| 1.5e-7, max 4e-6) where the paper's init starts at 49..408 and is at 0.45
  after 150 steps. Self-initialisation therefore defaults to 0 kimg with this init (running it
  only adds Adam's noise on near-zero L1 gradients: 4e-2..8e-2 after 150 steps at the host
  lr) and to 20 kimg with ``--hyper-init reference``.
"""
