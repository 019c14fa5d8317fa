"""The bypass pipeline (Mind2Mind): encoder, encode once, train past the frozen layers.

stage1-encoder  the autoencoder constraint, on generated data only: an image encoder
                (--bypass w|wplus) or a feature adapter at R (--bypass R); then frozen
stage2-encode   the target set encoded once into a cache (reused while it matches)
stage3-gan      the small GAN on the cached encodings; frozen modules are never called
result          network-snapshot-*.pkl: G / G_ema sample G(z, c) like a host generator

In latent modes the trained part is the latent MLP GAN and the result G is
``BypassGenerator`` (frozen synthesis o latent generator). In partial mode the trained
part is the source G's blocks up to R (the mapping stays the source's: it also feeds the
frozen blocks above R) and D's blocks from R down; the result G is a plain host Generator
whose mapping and blocks above R are the source's, bit for bit, so the upper blocks see
exactly the styles they saw in the source.
"""
import copy
import json
import os
import time

import torch

from plugin import run_options
from plugin.hosts import active_host
from plugin.layouts import is_alias_free
from plugin.devices import choose_device
from plugin.files import snapshot_name
from plugin.images import save_image_grid
from plugin.persistence import constructor_kwargs
from plugin.pickles import load_tensors, load_tensors_file, save_network_pkl, save_tensors
from plugin.plots import line_plot
from training_ext.common.source_pickles import load_source
from training_ext.common.stages import StagePipeline

from . import autoencoder, latent_cache
from .config import BypassConfig
from .encoders import ImageEncoder
from .latent_gan import LOSSES, LatentGANTrainer
from .networks import BypassDiscriminator, BypassGenerator, LatentCritic, SplitDiscriminator
from .split import check_split_resolution, g_feature_channels, synthesis_low
from plugin.errors import BypassError

LATENT_Z_DIM = 128


def parse_mode(value):
    """'w', 'wplus', or a resolution (int)."""
    v = str(value).strip().lower()
    if v in ('w', 'wplus'):
        return v
    if v.isdigit():
        return int(v)
    raise BypassError(f'--bypass must be w, wplus or a resolution such as 16, got {value!r}')


class LowGenerator(torch.nn.Module):
    """Training view of a host generator in partial mode: z -> features at R (blocks <= R only).

    Only the blocks up to R train (their convolutions, and their style affines, which adapt the
    styles they draw from w). The mapping network stays the source's, frozen and without w_avg
    updates, because it is shared with the frozen blocks above R: trained, it would feed them
    styles that drift from those the adapter was fitted with, so the "frozen" upper blocks
    would see new inputs."""

    def __init__(self,
        G,    # Source generator: its blocks up to res train, its mapping stays frozen.
        res,  # Split resolution R: the output is the features at R.
    ):
        super().__init__()
        self.G, self.res = G, res

    def forward(self, z):
        mapping = self.G.mapping
        training = mapping.training
        with torch.no_grad():
            mapping.eval()                         # no w_avg update (the host's mapping tracks it in training)
            ws = mapping(z, torch.zeros([z.shape[0], self.G.c_dim], device=z.device))
            mapping.train(training)
        return synthesis_low(self.G.synthesis, ws, self.res, noise_mode='random', force_fp32=True)

    def trainable_parameters(self):
        return [p for b in _low_blocks(self.G, self.res) for p in b.parameters()]


def _own_kwargs(module):
    return {k: v for k, v in constructor_kwargs(module).items() if k != 'class_name'}


def _low_blocks(G, res):
    return [getattr(G.synthesis, f'b{r}') for r in G.synthesis.block_resolutions if r <= res]


class BypassPipeline(StagePipeline):
    method = 'bypass'
    error = BypassError
    config_class = BypassConfig

    def __init__(self,
        flags,                 # Command-line flags; flags['bypass'] is the mode ('w', 'wplus' or R).
        pipeline_dir,          # Directory of the stages; created if missing.
        source,                # Path of the source pickle (must hold G_ema and D).
        log          = print,  # Callable that prints one progress line.
    ):
        self.mode = parse_mode(flags['bypass'])
        super().__init__(flags, pipeline_dir, log,
                         identity=dict(source=str(source), data=str(flags.get('data')), bypass=str(self.mode)))
        self.source_path = source
        self.device = choose_device(flags.get('device'))
        self.seed = int(run_options.flag(flags, 'seed'))

    # -- inputs -----------------------------------------------------------------------------------
    def load_inputs(self):
        src = load_source(self.source_path, ('G_ema', 'D'), BypassError)
        self.G_src = src['G_ema'].eval().requires_grad_(False).to(self.device)
        self.D_src = src['D'].eval().requires_grad_(False).to(self.device)
        if self.G_src.c_dim:
            raise BypassError(f'{self.source_path} is conditional; --bypass transfers unconditional generators')
        if not self.flags.get('data'):
            raise BypassError('--bypass needs the target images: --data PATH')
        ds = active_host().construct_class_by_name('training.dataset.ImageFolderDataset', path=str(self.flags.data),
                                                   use_labels=False)
        n, res = len(ds), ds.resolution
        ds.close()
        if res != self.G_src.img_resolution:
            raise BypassError(f'the target images are {res}px but {self.source_path} generates '
                              f'{self.G_src.img_resolution}px')
        if isinstance(self.mode, int) and is_alias_free(self.G_src):
            raise BypassError(f'--bypass {self.mode} splits a StyleGAN2 generator between its resolution blocks; '
                              f'{self.source_path} is alias-free (StyleGAN3), whose layers all run above the '
                              'first sampling rate with no block to split at: use --bypass w or wplus')
        if isinstance(self.mode, int):
            try:
                check_split_resolution(self.G_src.img_resolution, self.mode)
            except ValueError as e:
                raise BypassError(str(e)) from None
        self.num_targets = n

    def run(self):
        self.load_inputs()
        encoder, encode, decode = self.encoder_stage()
        latents = self.encode_stage(encoder, encode, decode)
        return self.gan_stage(latents)

    # -- stage 1: the autoencoder constraint ------------------------------------------------------
    def build_encoder(self):
        """(encoder module to fingerprint, training task, and the result-D parts)."""
        if isinstance(self.mode, str):
            E = ImageEncoder(D_kwargs=constructor_kwargs(self.D_src), w_dim=self.G_src.w_dim,
                             num_ws=self.G_src.num_ws, mode=self.mode)
            load_tensors(E.backbone, dict(self.D_src.state_dict()), what='encoder backbone')
            E = E.to(self.device)
            return E, autoencoder.LatentTask(self.G_src, E)
        g_channels, has_img = g_feature_channels(self.G_src.synthesis, self.mode)
        S = SplitDiscriminator(D_kwargs=constructor_kwargs(self.D_src), res=self.mode, g_channels=g_channels,
                               has_img=has_img, img_channels=self.G_src.img_channels)
        load_tensors(S.D, dict(self.D_src.state_dict()), what='split discriminator')
        S = S.to(self.device)
        self.has_img = has_img
        return S, autoencoder.FeatureTask(self.G_src, S, has_img)

    def encoder_stage(self):
        name = 'stage1-encoder'
        module, task = self.build_encoder()
        self.split_D = module if isinstance(module, SplitDiscriminator) else None
        state_path = self.path(name, 'encoder.pt')
        if self.done(name):
            module.load_state_dict(load_tensors_file(state_path))
            self.log(f'[{name}] done before, reusing {state_path}')
        else:
            kimg = self.config.encoder_kimg
            if kimg < 0:
                raise BypassError(f'--encoder-kimg must be >= 0, got {kimg}')
            self.log(f'[{name}] training the {"encoder" if self.split_D is None else "adapter"} on {kimg} kimg '
                     'of generated images')
            t0 = time.time()
            autoencoder.set_stats(task, self.G_src.z_dim, self.device, seed=self.seed)
            before = autoencoder.evaluate(task, self.G_src.z_dim, self.device)
            history = autoencoder.train(task, self.G_src.z_dim, self.device, kimg, seed=self.seed, log=self.log)
            targets = next(latent_cache.iterate_images(str(self.flags.data), batch=16))
            after = autoencoder.evaluate(task, self.G_src.z_dim, self.device, targets=targets)
            save_tensors(module.state_dict(), state_path)
            with open(self.path(name, 'history.json'), 'w') as f:
                json.dump(history, f, indent=1)
            self.log(f'[{name}] reconstruction: generated latent {before["latent_mse"]:.4f} -> '
                     f'{after["latent_mse"]:.4f}, image {before["image_mse"]:.4f} -> {after["image_mse"]:.4f}; '
                     f'target images {after["target_image_mse"]:.4f}')
            self.finish(name, output=state_path, kimg=kimg, seconds=round(time.time() - t0, 1), before=before,
                        after=after)
        if self.split_D is not None:
            self.split_D.freeze_adapter()
        module.eval().requires_grad_(False)
        encode = task.encode

        def decode(encodings, seed=0):
            g = torch.Generator().manual_seed(seed)
            z = torch.randn([encodings.shape[0], self.G_src.z_dim], generator=g).to(self.device)
            _, _, ws = task.sample(z)
            return task.decode(encodings.to(self.device), ws)
        self.task = task
        return module, encode, decode

    # -- stage 2: encode the target set once ------------------------------------------------------
    def encode_stage(self, encoder, encode, decode):
        name = 'stage2-encode'
        cache = self.path(name, 'latents.pt')
        os.makedirs(self.path(name), exist_ok=True)
        latents, rebuilt = latent_cache.load_or_build(cache, encoder, encode, str(self.flags.data), self.device,
                                                      xflip=bool(self.flags.get('mirror')),
                                                      max_images=self.flags.get('subset'), log=self.log)
        if rebuilt or not os.path.isfile(self.path(name, 'reconstruction.png')):
            with torch.no_grad():
                reals = next(latent_cache.iterate_images(str(self.flags.data), batch=8))
                recon = decode(latents[:len(reals)])
            save_image_grid(torch.cat([reals, recon.cpu()]), self.path(name, 'reconstruction.png'),
                            grid_size=(len(reals), 2))
        self.finish(name, output=cache, count=len(latents), shape=list(latents.shape[1:]))
        return latents

    # -- stage 3: the GAN past the frozen layers ---------------------------------------------------
    def build_trainer(self, latents):
        partial = self.split_D is not None
        mode = 'partial' if partial else 'latent'
        loss = self.config.get('latent_loss', mode)
        if loss not in LOSSES:
            raise BypassError(f'--latent-loss must be one of {", ".join(LOSSES)}')
        batch = self.config.get('batch', mode)
        if batch < 1:
            raise BypassError(f'--batch must be at least 1, got {batch}')
        gamma = self.config.gamma
        if partial:
            G = copy.deepcopy(self.G_src).train()
            self.result_G = G
            low = LowGenerator(G, self.mode).to(self.device)
            D = self.split_D.train()
            return LatentGANTrainer(low, D, low.trainable_parameters(), D.trainable_parameters(), latents,
                                    G.z_dim, self.device, loss=loss, batch=batch, seed=self.seed,
                                    critic=D.critic, r1_gamma=gamma)
        shape = list(latents.shape[1:])
        self.result_G = BypassGenerator(source_kwargs=constructor_kwargs(self.G_src),
                                        latent_kwargs=dict(z_dim=LATENT_Z_DIM, mode=self.mode)).to(self.device)
        load_tensors(self.result_G.synthesis, dict(self.G_src.synthesis.state_dict()), what='synthesis')
        critic = LatentCritic(latent_shape=shape).to(self.device)
        gen = self.result_G.mapping.net
        for net in (gen, critic):
            net.latent_mean.copy_(latents.mean(0))
            net.latent_std.copy_(latents.std(0).clamp_min(1e-4))
        self.critic = critic
        return LatentGANTrainer(gen, critic, gen.parameters(), critic.parameters(), latents, LATENT_Z_DIM,
                                self.device, loss=loss, batch=batch, seed=self.seed,
                                r1_gamma=gamma)

    def result_networks(self, trainer):
        """(G, G_ema, D) of the result pickle, on the CPU."""
        if self.split_D is not None:
            G = copy.deepcopy(self.result_G).eval()
            G_ema = copy.deepcopy(trainer.G_ema.G).eval()
            D = copy.deepcopy(self.split_D).eval()
        else:
            G = copy.deepcopy(self.result_G).eval()
            G_ema = copy.deepcopy(self.result_G).eval()
            G_ema.mapping.net.load_state_dict(trainer.G_ema.state_dict())
            for g in (G, G_ema):
                g.mapping.update_w_avg(seed=self.seed)
            E = self.task.encoder
            D = BypassDiscriminator(encoder_kwargs=_own_kwargs(E), critic_kwargs=_own_kwargs(self.critic))
            D.encoder.load_state_dict(E.state_dict())
            D.critic.load_state_dict(self.critic.state_dict())
        return [m.cpu().requires_grad_(False) for m in (G, G_ema, D)]

    def gan_stage(self, latents):
        name = 'stage3-gan'
        done = self.done(name)
        if done:
            self.log(f'[{name}] done before ({os.path.basename(done["output"])})')
            return done['output']
        f = self.flags
        trainer = self.build_trainer(latents)
        kimg = self.config.get('kimg', 'partial' if self.split_D is not None else 'latent')
        tick_kimg = f.get('tick')
        if tick_kimg is None:
            tick_kimg = max(kimg * self.config.tick_fraction, 0.001)
        snap = self.config.snap
        if kimg < 0 or not tick_kimg > 0 or snap < 1:
            raise BypassError(f'--kimg must be >= 0, --tick positive and --snap at least 1 (got {kimg}, {tick_kimg}, '
                              f'{snap})')
        if kimg == 0:
            self.log(f'[{name}] --kimg 0: the bypass GAN is not trained (snapshot of its initial state)')
        state_path = self.path(name, 'state.pt')
        os.makedirs(self.path(name), exist_ok=True)
        if os.path.isfile(state_path):
            trainer.load_state_dict(load_tensors_file(state_path))
            self.log(f'[{name}] continuing at kimg {trainer.nimg / 1000:.1f}')
        stats_path = self.path(name, 'stats.jsonl')
        grid_z = torch.randn([32, trainer.z_dim], generator=torch.Generator().manual_seed(self.seed))
        self.log(f'[{name}] training {kimg} kimg ({trainer.loss}, batch {trainer.batch}, '
                 f'{trainer.n_critic} critic step(s) per generator step) on {len(latents)} encodings')
        total, tick_nimg = int(kimg * 1000), max(int(tick_kimg * 1000), 1)
        tick, t_tick, t_nimg, final = 0, time.time(), trainer.nimg, None
        next_tick = (trainer.nimg // tick_nimg + 1) * tick_nimg
        while final is None:
            if trainer.nimg < total:
                trainer.iteration()
            finished = trainer.nimg >= total
            if trainer.nimg >= next_tick or finished:
                tick += 1
                rec = dict(trainer.last, kimg=trainer.nimg / 1000,
                           sec_per_kimg=(time.time() - t_tick) / max(trainer.nimg - t_nimg, 1) * 1000,
                           latent_fd=trainer.latent_fd(n=min(1000, max(len(latents), 64))))
                with open(stats_path, 'a') as fh:
                    fh.write(json.dumps(rec) + '\n')
                self.log(f'  kimg {rec["kimg"]:8.1f}  loss_D {rec.get("loss_D", 0):8.4f}  loss_G '
                         f'{rec.get("loss_G", 0):8.4f}  latent FD {rec["latent_fd"]:8.3f}  '
                         f'sec/kimg {rec["sec_per_kimg"]:.3f}')
                next_tick = (trainer.nimg // tick_nimg + 1) * tick_nimg
                if finished or tick % snap == 0:
                    path = self.snapshot(trainer, grid_z)
                    save_tensors(trainer.state_dict(), state_path)
                    final = path if finished else None
                t_tick, t_nimg = time.time(), trainer.nimg
        self.plot_losses(stats_path)
        self.finish(name, output=final, kimg=kimg)
        self.log(f'Final pickle: {final}')
        return final

    def snapshot(self, trainer, grid_z):
        G, G_ema, D = self.result_networks(trainer)
        kimg = trainer.nimg // 1000
        with torch.no_grad():                          # not a training step: the image grid only
            save_image_grid(G_ema(grid_z, torch.zeros([len(grid_z), G_ema.c_dim]), noise_mode='const'),
                            self.path('stage3-gan', f'fakes{kimg:06d}.png'))
        path = self.path('stage3-gan', snapshot_name(trainer.nimg))
        save_network_pkl(dict(G=G, D=D, G_ema=G_ema, augment_pipe=None, training_set_kwargs=None), path)
        return path

    def plot_losses(self, stats_path):
        series = {}
        with open(stats_path) as fh:
            for line in fh:
                rec = json.loads(line)
                for key in ('loss_D', 'loss_G', 'latent_fd'):
                    if key in rec:
                        series.setdefault(key, []).append((rec['kimg'], rec[key]))
        if series.get('loss_D'):
            line_plot(self.path('stage3-gan', 'losses.png'), {k: v for k, v in series.items() if k != 'latent_fd'},
                      title='Bypass GAN losses', xlabel='kimg')
        if series.get('latent_fd'):
            line_plot(self.path('stage3-gan', 'latent_fd.png'), {'latent FD': series['latent_fd']},
                      title='Frechet distance of G_ema encodings to the target encodings', xlabel='kimg')
