"""The shipped feature network and generator evaluation on the procedural domains."""
import json
import os
import subprocess
import sys

import pytest
import torch

from tests.helpers import REPO
from plugin.metrics import fid
from plugin.metrics.evaluate import domain_features, evaluate
from plugin.metrics.feature_net import DOMAIN_NAMES, domain_batch, load

SOURCES = REPO / 'plugin' / 'assets' / 'sources'


@pytest.fixture(scope='module')
def net():
    return load()


def test_classifier_is_accurate_on_real_domain_images(net):
    for d, name in enumerate(DOMAIN_NAMES):
        x, y = domain_batch([(d, i) for i in range(200)], seed=777)     # renders it never saw
        acc = (net(x).argmax(1) == y).float().mean().item()
        assert acc > 0.95, f'{name}: {acc:.3f}'


def test_fid_in_feature_space_separates_domains(net):
    discs_a = domain_features(net, 'discs', 400)
    discs_b = torch.cat([net.features(domain_batch([(DOMAIN_NAMES.index('discs'), i) for i in range(400)],
                                                   seed=99)[0])]).numpy()
    rings = domain_features(net, 'rings', 400)
    same, other = fid(discs_a, discs_b), fid(discs_a, rings)
    assert same < 0.5 and other > 20 * same


def test_evaluate_a_shipped_source_and_repeat_exactly():
    from plugin import load_network_pkl
    G = load_network_pkl(SOURCES / 'rings.pkl')['G_ema']
    a = evaluate(G, ['rings'], n=200)
    b = evaluate(G, ['rings'], n=200)
    assert a == b
    row = a['per_class'][0]
    assert row['accuracy'] > 0.9 and row['domain'] == 'rings'
    with pytest.raises(ValueError, match='one domain'):
        evaluate(G, ['rings', 'discs'], n=10)


def test_metrics_command(tmp_path):
    out = tmp_path / 'm.jsonl'
    r = subprocess.run([sys.executable, '-m', 'plugin', 'metrics', str(SOURCES / 'discs-triangles.pkl'),
                        '--domains', 'discs,triangles', '--num', '100', '--out', str(out)], cwd=REPO,
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert r.returncode == 0, r.stderr
    assert 'FID over the union' in r.stdout
    rec = json.loads(out.read_text().splitlines()[-1])
    assert [row['domain'] for row in rec['per_class']] == ['discs', 'triangles']
