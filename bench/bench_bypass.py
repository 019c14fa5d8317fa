"""Mind2Mind bypass vs full fine-tuning: one training iteration of each, side by side.

    python bench/bench_bypass.py [--repeats 3] [--configs auto64,tiny64,auto128]

Same G and D (the host's --cfg at that resolution, random weights: speed does not depend on
them), same batch, same process. Baseline iteration: the host loss's Gmain and Dmain phases
with their Adam steps (what every fine-tuning iteration costs; the lazy regularisers come
on top). Bypass iterations (training_ext.bypass.latent_gan.LatentGANTrainer.iteration):
  w      the latent MLP GAN on W (WGAN-GP: 5 critic steps + 1 generator step)
  w/1    the same with one critic step (per-update cost)
  R=16   G's mapping + blocks <= 16 px and D's blocks from 16 px (non-saturating + R1)
  R=32   likewise at 32 px
Prints seconds per iteration (median, alternating runs) and speed-up = full / bypass.
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from plugin import run_options  # noqa: E402
from plugin.hosts.embedded.loss import StyleGAN2Loss  # noqa: E402
from plugin.hosts.embedded.networks import Discriminator, Generator  # noqa: E402
from plugin.persistence import constructor_kwargs  # noqa: E402
from training_ext.bypass.latent_gan import LatentGANTrainer  # noqa: E402
from training_ext.bypass.networks import LatentCritic, LatentGenerator, SplitDiscriminator  # noqa: E402
from training_ext.bypass.pipeline import LowGenerator  # noqa: E402
from training_ext.bypass.split import g_feature_channels  # noqa: E402
from plugin.domains import write_domains_zip  # noqa: E402

CONFIGS = {'auto64': ('auto', 64, 8), 'tiny64': ('tiny', 64, 16), 'auto128': ('auto', 128, 4),
           'tiny128': ('tiny', 128, 16)}


def networks(cfg, res, tmp):
    data = write_domains_zip(os.path.join(tmp, f'd{res}.zip'), ['discs'], 4, res)
    _, args = run_options.build(dict(data=data, cfg=cfg, device='cpu'))
    torch.manual_seed(0)
    G = Generator(c_dim=0, img_resolution=res, img_channels=3, **{k: v for k, v in args.G_kwargs.items()
                                                                   if k != 'class_name'})
    D = Discriminator(c_dim=0, img_resolution=res, img_channels=3, **{k: v for k, v in args.D_kwargs.items()
                                                                       if k != 'class_name'})
    return G.train(), D.train(), args


def full_iteration(G, D, args, batch):
    loss = StyleGAN2Loss('cpu', G.mapping, G.synthesis, D, r1_gamma=args.loss_kwargs.r1_gamma)
    opt_G = torch.optim.Adam(G.parameters(), lr=0.0025, betas=(0.0, 0.99))
    opt_D = torch.optim.Adam(D.parameters(), lr=0.0025, betas=(0.0, 0.99))
    reals = torch.randn([batch, 3, G.img_resolution, G.img_resolution])

    def step():
        for phase, opt, net in (('Gmain', opt_G, G), ('Dmain', opt_D, D)):
            opt.zero_grad(set_to_none=True)
            net.requires_grad_(True)
            loss.accumulate_gradients(phase, reals, torch.zeros([batch, 0]), torch.randn([batch, G.z_dim]),
                                      torch.zeros([batch, 0]), sync=True, gain=1)
            opt.step()
    return step


def latent_iteration(G, batch, n_critic):
    shape = [G.w_dim]
    gen, critic = LatentGenerator(z_dim=128, latent_shape=shape), LatentCritic(latent_shape=shape)
    trainer = LatentGANTrainer(gen, critic, gen.parameters(), critic.parameters(), torch.randn([1000] + shape), 128,
                               'cpu', loss='wgangp', batch=batch, n_critic=n_critic)
    return trainer.iteration


def partial_iteration(G, D, res, batch):
    import copy
    G, D = copy.deepcopy(G), copy.deepcopy(D)
    g_channels, has_img = g_feature_channels(G.synthesis, res)
    S = SplitDiscriminator(D_kwargs=constructor_kwargs(D), res=res, g_channels=g_channels, has_img=has_img)
    S.D.load_state_dict(D.state_dict())
    low = LowGenerator(G, res)
    reals = torch.randn([64, g_channels + (3 if has_img else 0), res, res])
    trainer = LatentGANTrainer(low, S, low.trainable_parameters(), S.trainable_parameters(), reals, G.z_dim, 'cpu',
                               loss='ns', batch=batch, critic=S.critic)
    return trainer.iteration


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--configs', default='auto64,tiny64,auto128')
    a = ap.parse_args()
    import tempfile
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; median of {a.repeats} after a warm-up')
    print(f'{"config":8s} {"batch":>5s}  {"mode":6s} {"s/iter":>9s}  {"full s/iter":>11s}  {"speed-up":>8s}')
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.configs.split(','):
            cfg, res, batch = CONFIGS[name]
            G, D, args = networks(cfg, res, tmp)
            runs = {'full': full_iteration(G, D, args, batch), 'w': latent_iteration(G, batch, 5),
                    'w/1': latent_iteration(G, batch, 1)}
            for r in (16, 32):
                if r < res:
                    runs[f'R={r}'] = partial_iteration(G, D, r, batch)
            times = {k: [] for k in runs}
            for k, fn in runs.items():
                fn()                                      # warm-up
            for _ in range(a.repeats):                    # alternate, so machine drift hits all alike
                for k, fn in runs.items():
                    times[k].append(timed(fn))
            full = statistics.median(times['full'])
            for k in runs:
                if k == 'full':
                    continue
                t = statistics.median(times[k])
                print(f'{name:8s} {batch:5d}  {k:6s} {t:9.4f}  {full:11.3f}  {full / t:7.1f}x', flush=True)


if __name__ == '__main__':
    main()
