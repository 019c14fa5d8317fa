"""The embedded host's training loop: the host's ``training_loop(**kwargs)`` seams, on CPU or CUDA.

Everything is built from ``class_name`` kwargs through the active host (G, D, loss, augment
pipe, dataset, optimisers), so plugin methods swap in their classes without touching the
loop. Beyond the host: it runs on CPU, its randomness depends on the global sample position
(so 1 process with 2 accumulation rounds equals 2 processes), and its snapshots carry a
``training_state`` (kimg, tick, augment p, optimiser states, path-length mean) that a resume
restores.
"""
import copy
import inspect
import json
import os
import time

import numpy as np
import torch

from plugin.easydict import EasyDict
from plugin.images import save_image_grid
# The pickle submodules, not the plugin.pickles package: that one picks the active host, and the
# host registry sits above this loop (the loop is handed its host).
from plugin.pickles.read import NetworkPickleError, PersistentRecord
from plugin.pickles.rebuild import load as load_network_pkl, load_tensors
from plugin.pickles.write import save_network_pkl

from . import distributed as ddist
from . import training_stats
from plugin.errors import TrainingError
from plugin.devices import choose_device
from plugin.files import snapshot_name

DEFAULTS = dict(
    run_dir                = '.',     # Output directory (image grids, snapshots, stats.jsonl); made if missing.
    training_set_kwargs    = {},      # Dataset kwargs (with class_name); its 'path' decides resume_mode 'auto'.
    data_loader_kwargs     = {},      # For torch's DataLoader (pin_memory dropped off CUDA).
    G_kwargs               = {},      # G kwargs (with class_name); the loop adds c_dim, img_resolution, img_channels.
    D_kwargs               = {},      # D kwargs (with class_name); the loop adds the same three.
    G_opt_kwargs           = {},      # G optimiser kwargs (with class_name); lr, betas adjusted for lazy reg.
    D_opt_kwargs           = {},      # D optimiser kwargs, likewise.
    augment_kwargs         = None,    # Augment pipe kwargs (with class_name); None = no augmentation.
    loss_kwargs            = {},      # Loss kwargs (with class_name); the loop adds device, the networks, augment_pipe.
    metrics                = [],      # Accepted for the host's callers; this loop computes no metrics.
    random_seed            = 0,       # Seed of all randomness: data order, z and c, in-loss noise, the image grid.
    num_gpus               = 1,       # Number of processes (world size) sharing each global batch.
    rank                   = 0,       # This process's index; 0 = the one that logs and writes files.
    batch_size             = 4,       # Global batch: images per step over all processes and accumulation rounds.
    batch_gpu              = 4,       # Images per process per round; batch_size = rounds x batch_gpu x num_gpus.
    ema_kimg               = 10,      # Half-life of G_ema's average of G, in kimg; 0 = G_ema copies G every step.
    ema_rampup             = None,    # Caps that half-life at cur_nimg x this (early ramp-up); None = no ramp-up.
    G_reg_interval         = 4,       # Steps between G's lazy path-length phases (Greg); None = in every step's Gboth.
    D_reg_interval         = 16,      # Steps between D's lazy R1 phases (Dreg); None = in every step's Dboth.
    augment_p              = 0,       # Initial augmentation probability; 0 with ada_target None = no augment pipe.
    ada_target             = None,    # ADA's target for the mean sign of D's real scores; None = p stays fixed.
    ada_interval           = 4,       # Steps between ADA's adjustments of p.
    ada_kimg               = 500,     # Kimg over which ADA can move p by 1 (its speed).
    total_kimg             = 25000,   # Length of training in kimg (thousands of real images shown).
    kimg_per_tick          = 4,       # Kimg between ticks (log line, stats, snapshots); the first tick is after step 1.
    image_snapshot_ticks   = 50,      # Ticks between fakes*.png grids (and at the end); None = none.
    network_snapshot_ticks = 50,      # Ticks between network pickles (and at the end); None = none.
    resume_pkl             = None,    # Pickle to resume from (networks, augment p, training state); None = fresh.
    cudnn_benchmark        = True,    # torch.backends.cudnn.benchmark (CUDA only).
    allow_tf32             = False,   # Allow TF32 in matmuls and cuDNN convolutions (CUDA only).
    abort_fn               = None,    # Called after every tick; True stops training there; None = never.
    progress_fn            = None,    # Called after every tick with (cur kimg as int, total_kimg); None = not called.
    # Embedded-host options (the real host's loop does not take these):
    device                 = None,    # Device (for choose_device): None or 'auto' = CUDA if present, else CPU.
    resume_mode            = 'auto',  # 'continue' (restore the training state), 'weights' (counters from 0), or
                                      # 'auto' (continue when the pickle has a state and the same dataset path).
)


def training_loop(host, **kwargs):
    """The host's ``training_loop(**kwargs)``; ``host`` (the EmbeddedHost that runs it) builds
    every class_name and rebuilds resumed pickles: ``EmbeddedHost().training_loop(**kwargs)``."""
    unknown = sorted(set(kwargs) - set(DEFAULTS))
    if unknown:
        raise TypeError(f'training_loop got unknown options: {", ".join(unknown)}')
    run = TrainingRun(EasyDict({**DEFAULTS, **kwargs}), host)
    return run.run()


class TrainingRun:
    def __init__(self,
        opts,   # The loop options: DEFAULTS updated by the caller's (EasyDict); a continued resume edits two.
        host,   # The EmbeddedHost: builds every class_name and rebuilds resumed pickles.
    ):
        self.o = opts
        self.host = host
        self.rank = opts.rank
        self.is_main = opts.rank == 0
        self.device = choose_device(opts.device)
        if self.device.type == 'cuda' and self.device.index is None:
            self.device = torch.device('cuda', opts.rank)
        self.cur_nimg = 0
        self.cur_tick = 0
        self.batch_idx = 0
        self.stats_jsonl = None

    # -- logging ----------------------------------------------------------------------------------
    def log(self, *parts):
        if self.is_main:
            print(*parts, flush=True)

    # -- setup ------------------------------------------------------------------------------------
    def setup_torch(self):
        o = self.o
        np.random.seed(ddist.seed_for(o.random_seed, o.rank))
        torch.manual_seed(ddist.seed_for(o.random_seed, o.rank))
        if self.device.type == 'cuda':
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = o.cudnn_benchmark
            torch.backends.cuda.matmul.allow_tf32 = o.allow_tf32
            torch.backends.cudnn.allow_tf32 = o.allow_tf32

    def build_data(self):
        o = self.o
        self.training_set = self.host.construct_class_by_name(**o.training_set_kwargs)
        try:                                 # validates: a non-empty set, batch = rounds x batch_gpu x gpus
            self.sampler = ddist.GlobalBatchSampler(len(self.training_set), o.batch_size, o.batch_gpu, o.rank,
                                                    o.num_gpus, o.random_seed)
        except ValueError as e:
            raise TrainingError(str(e)) from None
        self.log(f'Dataset: {self.training_set.name}, {len(self.training_set)} images, '
                 f'{self.training_set.resolution}px, labels {self.training_set.label_shape}')

    def start_data_iterator(self):
        o = self.o
        self.sampler.start = self.batch_idx
        kw = dict(o.data_loader_kwargs)
        if self.device.type != 'cuda':
            kw.pop('pin_memory', None)
        if not kw.get('num_workers'):
            kw.pop('prefetch_factor', None)
        loader = torch.utils.data.DataLoader(self.training_set, batch_sampler=self.sampler, **kw)
        self.data_iter = iter(loader)

    def build_networks(self):
        o = self.o
        common = dict(c_dim=self.training_set.label_dim, img_resolution=self.training_set.resolution,
                      img_channels=self.training_set.num_channels)
        G_kwargs, D_kwargs = dict(o.G_kwargs), dict(o.D_kwargs)
        self.G = self.host.construct_class_by_name(**G_kwargs, **common).train().requires_grad_(False).to(self.device)
        self.D = self.host.construct_class_by_name(**D_kwargs, **common).train().requires_grad_(False).to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval()
        n_g = sum(p.numel() for p in self.G.parameters())
        n_d = sum(p.numel() for p in self.D.parameters())
        self.log(f'Networks: G {n_g:,} parameters, D {n_d:,} parameters, device {self.device}')

    def build_augment(self):
        o = self.o
        self.augment_pipe = None
        self.ada_stats = None
        if o.augment_kwargs is not None and (o.augment_p > 0 or o.ada_target is not None):
            self.augment_pipe = self.host.construct_class_by_name(**o.augment_kwargs)
            self.augment_pipe = self.augment_pipe.train().requires_grad_(False).to(self.device)
            self.augment_pipe.p.copy_(torch.as_tensor(float(o.augment_p)))
            if o.ada_target is not None:
                self.ada_stats = training_stats.Collector(regex='Loss/signs/real')

    def build_phases(self):
        o = self.o
        self.loss = self.host.construct_class_by_name(device=self.device, G_mapping=self.G.mapping,
                                                      G_synthesis=self.G.synthesis, D=self.D,
                                                      augment_pipe=self.augment_pipe, **o.loss_kwargs)
        self.phases = []
        for name, module, opt_kwargs, interval in [('G', self.G, o.G_opt_kwargs, o.G_reg_interval),
                                                   ('D', self.D, o.D_opt_kwargs, o.D_reg_interval)]:
            opt_kwargs = dict(opt_kwargs)
            if 'betas' in opt_kwargs:       # train.py's [0, 0.99]: a current torch.optim.Adam wants floats
                opt_kwargs['betas'] = [float(beta) for beta in opt_kwargs['betas']]
            if interval is None:
                opt = self.host.construct_class_by_name(params=module.parameters(), **opt_kwargs)
                self.phases.append(EasyDict(name=name + 'both', module=module, opt=opt, interval=1))
                continue
            # Lazy regularisation: the regulariser runs every `interval` steps with its gradient
            # scaled by `interval`; lr and betas are adjusted so that the optimiser's step
            # statistics match a run that regularises every step.
            ratio = interval / (interval + 1)
            if 'lr' in opt_kwargs:
                opt_kwargs['lr'] = opt_kwargs['lr'] * ratio
            if 'betas' in opt_kwargs:
                opt_kwargs['betas'] = [beta ** ratio for beta in opt_kwargs['betas']]
            opt = self.host.construct_class_by_name(params=module.parameters(), **opt_kwargs)
            self.phases.append(EasyDict(name=name + 'main', module=module, opt=opt, interval=1))
            self.phases.append(EasyDict(name=name + 'reg', module=module, opt=opt, interval=interval))
        self.optimizers = {'G': self.phases[0].opt, 'D': self.phases[-1].opt}
        # The stylegan3 repo's loop also hands its loss the progress (for the blur schedule);
        # a loss written for stylegan2-ada's loop does not take it.
        self.loss_takes_nimg = 'cur_nimg' in inspect.signature(self.loss.accumulate_gradients).parameters

    # -- resume -----------------------------------------------------------------------------------
    def resume(self):
        o = self.o
        if o.resume_pkl is None:
            return
        self.log(f'Resuming from "{o.resume_pkl}"')
        data = load_network_pkl(o.resume_pkl, self.host)
        for key, module in (('G', self.G), ('D', self.D), ('G_ema', self.G_ema)):
            src = data.get(key)
            if not isinstance(src, torch.nn.Module):
                raise TrainingError(f'--resume {o.resume_pkl}: no {key} network in the pickle')
            src = self._widened(key, src, module)
            try:
                load_tensors(module, {n: t for n, t in src.state_dict().items()}, what=f'--resume {key}')
            except NetworkPickleError as e:
                raise TrainingError(f'{e} (the resume pickle is of another architecture: check --cfg, --cond and '
                                    'the dataset resolution)') from None
        self._restore_augment_p(data.get('augment_pipe'))
        state = data.get('training_state')
        if self._continues(data, state):
            self._restore_training_state(state)
            self.log(f'Continuing the run at kimg {self.cur_nimg / 1000:.1f}, tick {self.cur_tick}')
        else:
            self.log('Resumed weights only (transfer); counters start at 0')

    def _widened(self, key, src, module):
        """A pickle with fewer classes than this run (an unconditional source resumed with
        --cond 1) is widened first, so that every class starts as the source network."""
        theirs, ours = getattr(src, 'c_dim', None), getattr(module, 'c_dim', None)
        if theirs is None or ours is None or theirs >= ours:
            return src
        from plugin.widen import widen_discriminator, widen_generator
        widen = widen_generator if key != 'D' else widen_discriminator
        if key == 'G':
            self.log(f'Widening the resumed networks from {theirs} to {ours} classes (every class starts as the '
                     'source)')
        return widen(src, ours)

    def _restore_augment_p(self, pipe):
        if self.augment_pipe is None or pipe is None:
            return
        p = pipe.p if isinstance(pipe, torch.nn.Module) else None
        if isinstance(pipe, PersistentRecord):      # host's AugmentPipe: its p survives as data
            p = (pipe.state.get('_buffers') or {}).get('p')
        if isinstance(p, torch.Tensor) and self.o.ada_target is not None:
            self.augment_pipe.p.copy_(p.to(self.device))

    def _continues(self, data, state):
        mode = self.o.resume_mode
        if mode == 'weights' or not isinstance(state, dict):
            if mode == 'continue':
                raise TrainingError(f'--resume {self.o.resume_pkl}: no training state in this pickle to continue from')
            return False
        if mode == 'continue':
            return True
        # auto: continue when the pickle was written by a run on the same data.
        theirs = (data.get('training_set_kwargs') or {}).get('path')
        ours = self.o.training_set_kwargs.get('path')
        return theirs is not None and ours is not None and os.path.abspath(theirs) == os.path.abspath(ours)

    def _restore_training_state(self, state):
        # A continuation keeps the original run's schedule (the host's transfer tweaks,
        # ada_kimg=100 and no EMA ramp-up, are for starting from someone else's weights).
        for key in ('ema_rampup', 'ada_kimg'):
            if key in state:
                self.o[key] = state[key]
        self.cur_nimg = int(state['cur_nimg'])
        self.cur_tick = int(state['cur_tick'])
        self.batch_idx = int(state['batch_idx'])
        if self.augment_pipe is not None and 'augment_p' in state:
            self.augment_pipe.p.copy_(torch.as_tensor(float(state['augment_p'])))
        if hasattr(self.loss, 'pl_mean') and 'pl_mean' in state:
            self.loss.pl_mean.copy_(torch.as_tensor(float(state['pl_mean'])))
        for name, opt in self.optimizers.items():
            if name in state.get('optimizers', {}):
                opt.load_state_dict(state['optimizers'][name])

    def training_state(self):
        return dict(cur_nimg=self.cur_nimg, cur_tick=self.cur_tick, batch_idx=self.batch_idx,
                    augment_p=float(self.augment_pipe.p) if self.augment_pipe is not None else None,
                    pl_mean=float(self.loss.pl_mean) if hasattr(self.loss, 'pl_mean') else None,
                    optimizers={k: _cpu(opt.state_dict()) for k, opt in self.optimizers.items()},
                    random_seed=self.o.random_seed, batch_size=self.o.batch_size,
                    ema_rampup=self.o.ema_rampup, ada_kimg=self.o.ada_kimg)

    # -- one training step ------------------------------------------------------------------------
    def next_batch(self):
        imgs, labels = next(self.data_iter)
        imgs = imgs.to(self.device).to(torch.float32) / 127.5 - 1
        return imgs.split(self.o.batch_gpu), labels.to(self.device).split(self.o.batch_gpu)

    def _chunk_inputs(self, phase_idx, chunk):
        """z, c and all in-loss randomness depend on (seed, step, phase, global chunk) only."""
        seed = ddist.seed_for(self.o.random_seed, self.batch_idx, phase_idx, chunk)
        torch.manual_seed(seed)
        rng = np.random.RandomState(seed)
        z = torch.randn([self.o.batch_gpu, self.G.z_dim], device=self.device)
        c = [self.training_set.get_label(rng.randint(len(self.training_set))) for _ in range(self.o.batch_gpu)]
        c = torch.from_numpy(np.stack(c)).to(self.device)
        return z, c

    def train_step(self):
        o = self.o
        real_imgs, real_cs = self.next_batch()
        world = o.num_gpus
        for phase_idx, phase in enumerate(self.phases):
            if self.batch_idx % phase.interval != 0:
                continue
            phase.opt.zero_grad(set_to_none=True)
            phase.module.requires_grad_(True)
            progress = dict(cur_nimg=self.cur_nimg) if self.loss_takes_nimg else {}
            for k, (real_img, real_c) in enumerate(zip(real_imgs, real_cs)):
                gen_z, gen_c = self._chunk_inputs(phase_idx, k * world + o.rank)
                self.loss.accumulate_gradients(phase=phase.name, real_img=real_img, real_c=real_c, gen_z=gen_z,
                                               gen_c=gen_c, sync=(k == len(real_imgs) - 1), gain=phase.interval,
                                               **progress)
            phase.module.requires_grad_(False)
            self._finish_gradients(phase.module, rounds=len(real_imgs))
            phase.opt.step()
        self.update_ema()
        self.cur_nimg += o.batch_size
        self.batch_idx += 1
        self.update_ada()

    def _finish_gradients(self, module, rounds):
        # Mean over the whole global batch: over accumulation rounds here, over processes below.
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        for g in grads:
            if rounds > 1:
                g /= rounds
            torch.nan_to_num(g, nan=0, posinf=1e5, neginf=-1e5, out=g)
        ddist.all_reduce_mean_(grads)

    def update_ema(self):
        o = self.o
        ema_nimg = o.ema_kimg * 1000
        if o.ema_rampup is not None:
            ema_nimg = min(ema_nimg, self.cur_nimg * o.ema_rampup)
        beta = 0.5 ** (o.batch_size / max(ema_nimg, 1e-8))
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
                p_ema.copy_(p.lerp(p_ema, beta))
            for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
                b_ema.copy_(b)

    def update_ada(self):
        o = self.o
        if self.ada_stats is None or self.batch_idx % o.ada_interval != 0:
            return
        self.ada_stats.update()
        signs = self.ada_stats['Loss/signs/real']
        if np.isnan(signs):
            return
        adjust = np.sign(signs - o.ada_target) * (o.batch_size * o.ada_interval) / (o.ada_kimg * 1000)
        self.augment_pipe.p.copy_((self.augment_pipe.p + adjust).clamp(min=0))

    # -- outputs ----------------------------------------------------------------------------------
    def setup_grid(self):
        """A fixed grid of latents (and labels, one class per row when labelled) for fakes*.png."""
        res = self.training_set.resolution
        gw, gh = int(np.clip(1024 // res, 4, 16)), int(np.clip(768 // res, 4, 12))
        rng = np.random.RandomState(ddist.seed_for(self.o.random_seed, 123))
        n = len(self.training_set)
        if self.training_set.has_labels and self.training_set.has_onehot_labels:
            classes = self.training_set.label_dim
            by_class = {}
            for i in rng.permutation(n)[: min(n, 5000)]:
                by_class.setdefault(int(np.argmax(self.training_set.get_label(i))), []).append(int(i))
            rows = [by_class.get(r % classes) or [0] for r in range(gh)]
            idx = [rows[r][col % len(rows[r])] for r in range(gh) for col in range(gw)]
        else:
            idx = [int(i) for i in rng.randint(n, size=gw * gh)]
        self.grid_size = (gw, gh)
        self.grid_real = np.stack([self.training_set[i][0] for i in idx])
        self.grid_c = torch.from_numpy(np.stack([self.training_set.get_label(i) for i in idx])).to(self.device)
        self.grid_z = torch.from_numpy(rng.randn(gw * gh, self.G.z_dim).astype(np.float32)).to(self.device)

    def save_fakes(self, name):
        with torch.no_grad():
            imgs = [self.G_ema(z, c, noise_mode='const').cpu() for z, c in
                    zip(self.grid_z.split(self.o.batch_gpu), self.grid_c.split(self.o.batch_gpu))]
        save_image_grid(torch.cat(imgs), os.path.join(self.o.run_dir, name), drange=(-1, 1), grid_size=self.grid_size)

    def save_snapshot(self):
        path = os.path.join(self.o.run_dir, snapshot_name(self.cur_nimg))
        data = dict(training_set_kwargs=dict(self.o.training_set_kwargs), G=self.G, D=self.D, G_ema=self.G_ema,
                    augment_pipe=self.augment_pipe, training_state=self.training_state())
        save_network_pkl(data, path)
        return path

    # -- the loop ---------------------------------------------------------------------------------
    def setup(self):
        self.setup_torch()
        self.build_data()
        self.build_networks()
        self.build_augment()
        self.build_phases()
        self.resume()
        ddist.broadcast_([*self.G.parameters(), *self.D.parameters(), *self.G_ema.parameters()])
        self.setup_grid()
        self.start_data_iterator()
        if self.is_main:
            os.makedirs(self.o.run_dir, exist_ok=True)
            reals, drange = self.grid_real, (0, 255)
            preview = getattr(self.loss, 'real_images_for_grid', None)
            if preview is not None:          # a loss that makes its own "real" images shows them
                reals, drange = torch.cat([preview(c).cpu() for c in self.grid_c.split(self.o.batch_gpu)]), (-1, 1)
            save_image_grid(reals, os.path.join(self.o.run_dir, 'reals.png'), drange=drange,
                            grid_size=self.grid_size)
            self.save_fakes('fakes_init.png')
            self.stats_jsonl = open(os.path.join(self.o.run_dir, 'stats.jsonl'), 'at')
        self.tick_stats = training_stats.Collector(regex='.*')

    def run(self):
        o = self.o
        self.setup()
        self.log(f'Training for {o.total_kimg} kimg...')
        start_time = tick_start_time = time.time()
        tick_start_nimg = self.cur_nimg
        done = self.cur_nimg >= o.total_kimg * 1000
        last_snapshot = None
        while not done:
            self.train_step()
            done = self.cur_nimg >= o.total_kimg * 1000
            if not done and self.cur_tick != 0 and self.cur_nimg < tick_start_nimg + o.kimg_per_tick * 1000:
                continue
            tick_end_time = time.time()
            self.report_tick(start_time, tick_start_time, tick_end_time, tick_start_nimg)
            if o.image_snapshot_ticks is not None and (done or self.cur_tick % o.image_snapshot_ticks == 0):
                if self.is_main:
                    self.save_fakes(f'fakes{self.cur_nimg // 1000:06d}.png')
            if o.network_snapshot_ticks is not None and (done or self.cur_tick % o.network_snapshot_ticks == 0):
                if self.is_main:
                    last_snapshot = self.save_snapshot()
                ddist.barrier()
            if o.progress_fn is not None:
                o.progress_fn(self.cur_nimg // 1000, o.total_kimg)
            if o.abort_fn is not None and o.abort_fn():
                done = True
                self.log('Aborting...')
            self.cur_tick += 1
            tick_start_nimg = self.cur_nimg
            tick_start_time = time.time()
        if self.is_main and self.stats_jsonl is not None:
            self.stats_jsonl.close()
        self.tick_stats.close()
        if self.ada_stats is not None:
            self.ada_stats.close()
        self.log('Exiting...')
        return last_snapshot

    def report_tick(self, start_time, tick_start_time, tick_end_time, tick_start_nimg):
        stats = self.tick_stats.update()
        kimg = self.cur_nimg / 1000
        tick_kimg = (self.cur_nimg - tick_start_nimg) / 1000
        sec_per_kimg = (tick_end_time - tick_start_time) / max(tick_kimg, 1e-8)
        fields = [f'tick {self.cur_tick:<4d}', f'kimg {kimg:<8.1f}', f'time {_fmt_time(tick_end_time - start_time):<10s}',
                  f'sec/kimg {sec_per_kimg:<7.2f}']
        if self.augment_pipe is not None:
            fields.append(f'augment {float(self.augment_pipe.p):.3f}')
        for key, label in (('Loss/G/loss', 'G'), ('Loss/D/loss', 'D'), ('Loss/r1_penalty', 'r1'),
                           ('Loss/pl_penalty', 'pl')):
            if key in stats:
                fields.append(f'{label} {stats[key]:.3f}')
        self.log('  '.join(fields))
        if self.stats_jsonl is not None:
            record = dict(stats, **{'Progress/tick': self.cur_tick, 'Progress/kimg': kimg,
                                    'Timing/sec_per_kimg': sec_per_kimg,
                                    'Progress/augment': float(self.augment_pipe.p) if self.augment_pipe else 0.0,
                                    'timestamp': time.time()})
            self.stats_jsonl.write(json.dumps(record) + '\n')
            self.stats_jsonl.flush()


def _cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def _fmt_time(seconds):
    s = int(round(seconds))
    if s < 60:
        return f'{s}s'
    if s < 3600:
        return f'{s // 60}m {s % 60:02d}s'
    return f'{s // 3600}h {(s // 60) % 60:02d}m'
