"""The mining pipeline: (optional sparse selection after) mining, then joint fine-tuning.

stage0: a MinedGenerator holding the sources' G_ema weights (+ the first source's D)
stage1-mine: miners (and the selector) and D train; every generator weight is frozen
stage2-finetune: miners, generators and D train jointly; with --sparse F only the top F
  channels per synthesis layer (scored on the target, see sparse.py) of the generators train
Baselines on the same target: --baseline transfergan (fine-tune the first source) and
--baseline freezed (the same with Freeze-D).
"""
import copy
import json
import os

import torch

from plugin import run_options
from plugin.persistence import constructor_kwargs as module_kwargs
from plugin.pickles import load_network_pkl, load_tensors, save_network_pkl
from plugin.plots import line_plot
from training_ext.common.freezing import mask_buffer_name
from training_ext.common.source_pickles import check_same_resolution, load_source, open_target, source_labels
from training_ext.common.stages import StagePipeline

from .config import MiningConfig
from .miner import MinedGenerator, mined_from_sources
from .sparse import channel_scores, select_channels
from plugin.errors import MiningError

MINING_LOSS = 'training_ext.mining.loss.MiningLoss'
BASELINES = ('none', 'transfergan', 'freezed')


class MiningPipeline(StagePipeline):
    method = 'mining'
    error = MiningError
    config_class = MiningConfig

    def __init__(self,
        flags,                 # Command-line flags; flags['mine'] lists the source pickles, flags['data'] the target.
        pipeline_dir,          # Directory of the stages; created if missing.
        log          = print,  # Callable that prints one progress line.
    ):
        super().__init__(flags, pipeline_dir, log, identity=dict(sources=[str(p) for p in flags['mine']],
                                                                 data=str(flags.get('data'))))

    def run(self):
        f = self.flags
        self.sources = self.load_sources(f.mine)
        self.check_target()
        baseline = self.config.baseline
        if baseline not in BASELINES:
            raise MiningError(f'--baseline for mining must be one of {", ".join(BASELINES)}')
        self.check_numbers(baseline)
        if baseline != 'none':
            final = self.baseline(baseline)
        else:
            init = self.initial_pickle()
            mined = self.mine(init)
            final = self.finetune(mined)
        self.write_selector_report()
        self.log(f'Final pickle: {final}')
        return final

    def check_numbers(self, baseline):
        """Numeric flags: 0 means 0 (a stage skipped, said in the log) or a one-line error."""
        f = self.flags
        mine_kimg, kimg, weight = self.config.mine_kimg, self.config.kimg, self.config.selector_weight
        if mine_kimg < 0 or kimg < 0:
            raise MiningError('--mine-kimg and --kimg must be >= 0')
        if not weight >= 0:
            raise MiningError(f'--selector-weight must be >= 0, got {weight}')
        if f.get('sparse') is not None and not 0 < f.sparse <= 1:
            raise MiningError(f'--sparse must be in (0, 1], got {f.sparse}')
        if baseline != 'none':
            if kimg == 0:
                raise MiningError(f'--kimg 0 with --baseline {baseline}: the baseline would not train at all')
            return
        if mine_kimg == 0 and kimg == 0:
            raise MiningError('--mine-kimg 0 and --kimg 0: nothing to train')
        if weight == 0 and len(f.mine) > 1:
            self.log('--selector-weight 0: the selector is not trained (it keeps choosing the sources uniformly)')

    # -- inputs -----------------------------------------------------------------------------------
    def load_sources(self, paths):
        if not paths:
            raise MiningError('--mine needs at least one source pickle')
        sources = [load_source(path, ('G_ema', 'D'), MiningError) for path in paths]
        check_same_resolution({p: s['G_ema'].img_resolution for p, s in zip(paths, sources)}, MiningError)
        return sources

    def check_target(self):
        open_target(self.flags, self.sources[0]['G_ema'].img_resolution, MiningError, '--mine needs the target images')

    # -- stages -----------------------------------------------------------------------------------
    def _mined_kwargs(self, train):
        gens = [module_kwargs(s['G_ema']) for s in self.sources]        # precision: see network_kwargs
        return dict(class_name='training_ext.mining.miner.MinedGenerator', generators=gens,
                    space=self.config.mine_space, miner_init=self.config.miner_init, train=train)

    def initial_pickle(self):
        out = self.path('stage0-init', 'init.pkl')
        if not os.path.isfile(out):
            M = mined_from_sources([s['G_ema'] for s in self.sources], space=self.config.mine_space,
                                   miner_init=self.config.miner_init, train='miner')
            D = self.sources[0]['D']
            save_network_pkl(dict(training_set_kwargs=None, G=M, D=D, G_ema=copy.deepcopy(M)), out)
        return out

    def _stage(self, name, G_kwargs, D_kwargs, kimg, resume, freezed=None, loss=True):
        return self.stage_args(name, G_kwargs, D_kwargs, kimg, data=self.flags.data, resume=resume,
                               freezed=freezed, loss_kwargs=dict(
                                   class_name=MINING_LOSS,
                                   selector_weight=self.config.selector_weight) if loss else None)

    def mine(self, init):
        kimg = self.config.mine_kimg
        if kimg == 0:
            self.log('[stage1-mine] --mine-kimg 0: no mining stage; fine-tuning starts from the sources '
                     '(identity miners)' if self.config.miner_init == 'identity' else
                     '[stage1-mine] --mine-kimg 0: no mining stage; fine-tuning starts from untrained miners')
            return init
        args = self._stage('stage1-mine', self._mined_kwargs('miner'), module_kwargs(self.sources[0]['D']), kimg,
                           resume=init)
        return self.train('stage1-mine', args)

    def finetune(self, mined):
        f = self.flags
        train = 'sparse' if f.get('sparse') is not None else 'all'
        kimg = self.config.kimg
        if kimg == 0:
            self.log(f'[stage2-finetune] --kimg 0: no fine-tuning stage; the result is {mined}')
            return mined
        init = self.path('stage2-init', 'init.pkl')
        if not self.done('stage2-init'):
            data = load_network_pkl(mined)
            G2 = MinedGenerator(**{k: v for k, v in self._mined_kwargs(train).items() if k != 'class_name'})
            state = {n: t for n, t in data['G'].state_dict().items()}
            own = G2.state_dict()
            for name in own:                           # masks are new in stage 2
                if name.split('.')[-1].startswith('gradmask__'):
                    state[name] = own[name]
            load_tensors(G2, state, what='stage-2 generator')
            info = {}
            if train == 'sparse':
                info = self._select_channels(G2, data['D'], f.sparse)
            save_network_pkl(dict(training_set_kwargs=None, G=G2, D=data['D'], G_ema=copy.deepcopy(G2)), init)
            self.finish('stage2-init', output=init, **info)
        args = self._stage('stage2-finetune', self._mined_kwargs(train), module_kwargs(self.sources[0]['D']),
                           kimg, resume=init)
        return self.train('stage2-finetune', args)

    def _select_channels(self, G, D, fraction):
        try:
            masks = select_channels(channel_scores(G.eval(), D.eval(), seed=run_options.flag(self.flags, 'seed')), fraction)
        except ValueError as e:
            raise MiningError(str(e)) from None
        with torch.no_grad():
            for name, mask in masks.items():
                buf = getattr(G, mask_buffer_name(name))
                buf.copy_(mask.reshape(buf.shape))
        kept = sum(int(m.sum()) for n, m in masks.items() if n.endswith('weight'))
        total = sum(m.numel() for n, m in masks.items() if n.endswith('weight'))
        self.log(f'[stage2-init] sparse selection: {kept} of {total} synthesis channels trainable')
        return dict(channels_kept=kept, channels_total=total, fraction=fraction)

    def baseline(self, kind):
        s = self.sources[0]
        freezed = self.flags.get('freezed')
        if kind == 'freezed' and freezed is None:
            freezed = self.config.baseline_freezed
        G_kwargs = module_kwargs(s['G_ema'])
        args = self._stage(f'baseline-{kind}', G_kwargs, module_kwargs(s['D']), self.config.kimg,
                           resume=os.path.abspath(self.flags.mine[0]), freezed=freezed, loss=False)
        return self.train(f'baseline-{kind}', args)

    # -- outputs ----------------------------------------------------------------------------------
    def write_selector_report(self):
        """Selector choice frequencies over training (several sources): table and plot."""
        if len(self.sources) < 2:
            return None
        series, rows = {}, []
        labels = source_labels(self.flags.mine)       # snapshots sharing a file name: their run dirs
        offset = 0.0
        for stage in ('stage1-mine', 'stage2-finetune'):
            path = self.path(stage, 'stats.jsonl')
            if not os.path.isfile(path):
                continue
            last = 0.0
            with open(path) as f:
                for line in f:
                    rec = json.loads(line)
                    last = _stat(rec, 'Progress/kimg', 0)
                    kimg = offset + last
                    freqs = [_stat(rec, f'Mining/select/{j}') for j in range(len(self.sources))]
                    if any(v is None for v in freqs):
                        continue
                    rows.append((stage, kimg, freqs))
                    for j, v in enumerate(freqs):
                        series.setdefault(labels[j], []).append((kimg, v))
            offset += last
        if not rows:
            return None
        with open(self.path('selector.txt'), 'w') as f:
            f.write('stage              kimg   ' + '  '.join(f'{label:>14s}' for label in labels)
                    + '\n')
            for stage, kimg, freqs in rows:
                f.write(f'{stage:<16s} {kimg:7.1f}   ' + '  '.join(f'{v:14.3f}' for v in freqs) + '\n')
        line_plot(self.path('selector.png'), series, title='Selector: probability of each source',
                  xlabel='kimg', ylabel='p', ylim=(0, 1))
        return self.path('selector.txt')


def _stat(record, key, default=None):
    """A value of a stats.jsonl record: the embedded loop writes numbers, the host's loop
    {num, mean, std} dicts."""
    value = record.get(key, default)
    return value.get('mean', default) if isinstance(value, dict) else value
