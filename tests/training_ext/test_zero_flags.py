"""Zero means zero: a numeric flag given as 0 is honoured (a stage skipped and said so, a
weight of 0 passed on) or refused with a one-line error; it never silently becomes the
default (the old ``value or default``)."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO, make_source, run_mining
from plugin import load_network_pkl, run_options
from training_ext.bypass.config import BypassConfig
from training_ext.bypass.pipeline import BypassError, BypassPipeline
from plugin.domains import write_domains_zip
from training_ext.hypermod.config import HypermodConfig
from training_ext.hypermod.pipeline import HypermodPipeline
from training_ext.cocktail.config import CocktailConfig
from training_ext.mining.config import MiningConfig
from training_ext.mining.miner import Miner
from training_ext.mining.pipeline import MiningError



pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('zero')
    return dict(tmp=tmp, a=make_source(tmp / 'a.pkl', 0), b=make_source(tmp / 'b.pkl', 1),
                target=str(write_domains_zip(tmp / 'discs16.zip', ['discs'], count=16, resolution=16)),
                labelled=str(write_domains_zip(tmp / 'dr16.zip', ['discs', 'rings'], count=16, resolution=16)))


def test_option_helpers_keep_a_given_zero():
    for config in (CocktailConfig, MiningConfig, BypassConfig, HypermodConfig):
        for field in dataclasses.fields(config):
            assert getattr(config.from_flags({field.name: 0}), field.name) == 0, (config.__name__, field.name)
            assert config.from_flags({field.name: None}) == config(), 'a flag not given keeps the default'
    assert run_options.flag({'seed': 0}, 'seed') == 0 and run_options.flag({}, 'snap') == 50
    assert MiningConfig.from_flags({}).selector_weight == 1.0
    assert BypassConfig.from_flags({}).get('batch', 'partial') == 32
    assert BypassConfig.from_flags({'batch': 0}).get('batch', 'partial') == 0


def test_method_flags_are_generated_from_their_config_with_its_defaults():
    from click.testing import CliRunner

    import train_cocktail
    text = CliRunner().invoke(train_cocktail.main, ['--help'], terminal_width=400).output
    assert '--selector-weight FLOAT' in text or '--selector-weight' in text
    for config in (CocktailConfig, MiningConfig, BypassConfig, HypermodConfig):
        for field in config.flag_fields():
            assert field.metadata['flag'] in text, field.metadata['flag']
    assert 'Weight of the selector loss (several sources); 0: untrained [default: 1]' in text
    assert '[default: wgangp (latent), ns (partial)]' in text
    assert '[default: --kimg]' in text
    assert '[default: 0 (source), 20 (reference)]' in text
    assert HypermodConfig.from_flags({}).get('self_init_kimg', 'reference') == 20
    assert HypermodConfig.from_flags({'self_init_kimg': 0}).get('self_init_kimg', 'reference') == 0


def test_mining_zero_selector_weight_reaches_the_loss_and_zero_kimg_skips_the_stage(world):
    pipe, final, logs = run_mining(world, 'sw0', mine=[world['a'], world['b']], selector_weight=0, mine_kimg=0)
    assert 'stage1-mine' not in pipe.state['stages'], '--mine-kimg 0 must not train a mining stage'
    assert any('--mine-kimg 0' in line for line in logs) and any('--selector-weight 0' in line for line in logs)
    options = json.loads(open(pipe.path('stage2-finetune', 'training_options.json')).read())
    assert options['loss_kwargs']['selector_weight'] == 0
    assert final == pipe.state['stages']['stage2-finetune']['output']


def test_mining_zero_kimg_stops_after_mining(world):
    pipe, final, logs = run_mining(world, 'k0', kimg=0)
    assert final == pipe.state['stages']['stage1-mine']['output'] and 'stage2-finetune' not in pipe.state['stages']
    assert any('--kimg 0' in line for line in logs)


@pytest.mark.parametrize('over,match', [
    (dict(mine_kimg=0, kimg=0), 'nothing to train'),
    (dict(selector_weight=-1.0), '--selector-weight'),
    (dict(sparse=0.0), '--sparse must be in'),
    (dict(baseline='transfergan', kimg=0), 'would not train'),
])
def test_mining_zero_or_negative_refused_with_one_line(world, over, match):
    with pytest.raises(MiningError, match=match):
        run_mining(world, f'bad-{len(os.listdir(world["tmp"]))}', **over)


def test_miner_hidden_zero_is_refused():
    with pytest.raises(ValueError, match='hidden'):
        Miner(4, 4, hidden=0)


def test_hypermod_zero_kimg_and_zero_contrastive_weight(world):
    logs = []
    flags = dict(data=world['labelled'], cond=True, outdir=str(world['tmp']), cfg='tiny', batch=8, kimg=0,
                 contrastive_weight=0, hyper_rank=0, seed=0, device='cpu')
    pipe = HypermodPipeline(flags, str(world['tmp'] / 'h0'), world['a'], log=logs.append)
    final = pipe.run()
    assert final == pipe.state['stages']['stage2-init']['output'] and 'stage2-cond' not in pipe.state['stages']
    assert any('--kimg 0' in line for line in logs)
    assert load_network_pkl(final)['G']._init_kwargs['rank'] == 0        # --hyper-rank 0: full heads


def test_bypass_zero_encoder_and_gan_kimg(world):
    logs = []
    flags = dict(bypass='w', data=world['target'], outdir=str(world['tmp']), batch=8, encoder_kimg=0, kimg=0,
                 tick=0.1, snap=1, seed=0, device='cpu')
    pipe = BypassPipeline(flags, str(world['tmp'] / 'b0'), world['a'], log=logs.append)
    final = pipe.run()
    assert pipe.state['stages']['stage1-encoder']['kimg'] == 0 and pipe.state['stages']['stage3-gan']['kimg'] == 0
    assert any('--kimg 0' in line for line in logs) and os.path.isfile(final)
    for over in (dict(batch=0), dict(tick=0.0), dict(snap=0)):
        bad = dict(flags, kimg=0.01, **over)
        with pytest.raises(BypassError):
            BypassPipeline(bad, str(world['tmp'] / f'bad-{next(iter(over))}'), world['a'], log=lambda *a: None).run()


def cli(*argv):
    return subprocess.run([sys.executable, 'train_cocktail.py', *map(str, argv)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS='1'))


def test_a_method_flag_given_as_zero_without_its_method_is_refused(world):
    r = cli('--outdir', world['tmp'], '--data', world['target'], '--selector-weight', 0, '--dry-run')
    assert r.returncode == 1 and r.stderr.strip() == 'error: --selector-weight needs --mine', r.stderr


def test_ema_kimg_zero_is_no_averaging_and_negative_is_refused(world):
    _, args = run_options.build(dict(data=world['target'], cfg='tiny', device='cpu', ema_kimg=0.0))
    assert args.ema_kimg == 0
    _, default = run_options.build(dict(data=world['target'], cfg='tiny', device='cpu'))
    assert default.ema_kimg == 16 * 10 / 32             # the config's own half-life when not given
    with pytest.raises(run_options.UserError, match='--ema-kimg must be non-negative'):
        run_options.build(dict(data=world['target'], cfg='tiny', device='cpu', ema_kimg=-1.0))
