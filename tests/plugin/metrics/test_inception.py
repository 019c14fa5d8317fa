"""The Inception FID path with a user-supplied TorchScript detector. The real detector is never
downloaded in tests: a stand-in with the same calling convention (uint8 NCHW RGB in, features
out with return_features=True) is scripted and saved, and the detector checks what it gets."""
import json
import subprocess
import sys

import pytest
import torch

from tests.helpers import REPO
from plugin.metrics.inception import DetectorError, dataset_features, load_detector
from plugin.domains import write_domains_zip


class StandIn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 16, 3)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        if x.dtype != torch.uint8 or x.shape[1] != 3:
            raise RuntimeError('expected uint8 RGB images')
        f = torch.relu(self.conv(x.float() / 255)).mean(dim=[2, 3])
        return f if return_features else torch.softmax(f, dim=1)


@pytest.fixture(scope='module')
def detector_file(tmp_path_factory):
    path = tmp_path_factory.mktemp('det') / 'standin.pt'
    torch.jit.save(torch.jit.script(StandIn()), str(path))
    return str(path)


def test_features_follow_the_host_convention_and_fid_separates_sets(detector_file, tmp_path):
    from plugin.metrics import stats
    det = load_detector(detector_file)
    a = dataset_features(det, str(write_domains_zip(tmp_path / 'a.zip', ['discs'], count=64, resolution=32)))
    b = dataset_features(det, str(write_domains_zip(tmp_path / 'b.zip', ['discs'], count=64, resolution=32, seed=1)))
    c = dataset_features(det, str(write_domains_zip(tmp_path / 'c.zip', ['stripes'], count=64, resolution=32)))
    assert a.shape == (64, 16)
    assert stats.fid(a, a) < 1e-6
    assert stats.fid(a, c) > 5 * stats.fid(a, b)


def test_bad_detector_file_is_a_clear_error(tmp_path):
    bad = tmp_path / 'not.pt'
    bad.write_bytes(b'not torchscript')
    with pytest.raises(DetectorError, match='not a TorchScript detector'):
        load_detector(str(bad))
    with pytest.raises(DetectorError, match='no such file'):
        load_detector(str(tmp_path / 'missing.pt'))


def test_metrics_command_with_inception(detector_file, tmp_path):
    data = str(write_domains_zip(tmp_path / 'd.zip', ['discs'], count=32, resolution=32))
    out = tmp_path / 'm.jsonl'
    cmd = [sys.executable, '-m', 'plugin', 'metrics', str(REPO / 'plugin/assets/sources/discs.pkl'), '--inception',
           detector_file, '--data', data, '--num', '32', '--out', str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    rec = json.loads(out.read_text().splitlines()[-1])
    assert rec['num_fake'] == 32 and rec['num_real'] == 32 and rec['inception_fid'] > 0
    r = subprocess.run(cmd[:5] + [str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode != 0 and 'error' in r.stderr.lower()
