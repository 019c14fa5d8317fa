"""Command line: ``python -m plugin inspect|generate``, with clean one-line errors."""
import json

from PIL import Image

from tests.helpers import REPO, run_plugin_cli


def test_inspect_text(fixtures_dir):
    r = run_plugin_cli('inspect', fixtures_dir / 'uncond64' / 'network-snapshot.pkl')
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert 'G_ema: Generator' in out and '64x64x3  z_dim 64  w_dim 64  num_ws 10  c_dim 0 (unconditional)' in out
    assert 'fp16 blocks: 32, 64' in out and 'architecture resnet' in out
    assert 'augment_pipe: AugmentPipe' in out and 'p = 0.25' in out


def test_inspect_json_conditional(fixtures_dir):
    r = run_plugin_cli('inspect', '--json', fixtures_dir / 'cond32' / 'network-snapshot.pkl')
    info = json.loads(r.stdout)
    g, d = info['entries']['G'], info['entries']['D']
    assert g['conditional'] and g['c_dim'] == 4 and g['num_ws'] == 8 and g['fp16_resolutions'] == []
    assert d['cmap_dim'] == 64 and d['architecture'] == 'resnet'
    assert g['parameters'] == 268403


def test_inspect_errors_are_one_line(tmp_path):
    bad = tmp_path / 'bad.pkl'
    bad.write_bytes(b'not a pickle at all')
    for target in (bad, tmp_path / 'missing.pkl'):
        r = run_plugin_cli('inspect', target)
        assert r.returncode == 1
        assert r.stderr.count('\n') == 1 and r.stderr.startswith('error: '), r.stderr
        assert 'Traceback' not in r.stderr


def test_generate_writes_images(fixtures_dir, tmp_path):
    r = run_plugin_cli('generate', fixtures_dir / 'cond32' / 'network-snapshot.pkl', '--seeds', '0-3,9',
                       '--class', '2', '--outdir', tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.glob('seed*.png')) == [f'seed{s:04d}.png' for s in (0, 1, 2, 3, 9)]
    assert Image.open(tmp_path / 'seed0000.png').size == (32, 32)
    assert Image.open(tmp_path / 'grid.png').size == (96, 64)


def test_generate_requires_a_class_for_conditional(fixtures_dir, tmp_path):
    r = run_plugin_cli('generate', fixtures_dir / 'cond32' / 'network-snapshot.pkl', '--outdir', tmp_path)
    assert r.returncode == 2 and 'conditional' in r.stderr


def test_domains_command_writes_a_dataset(tmp_path):
    r = run_plugin_cli('domains', '--domains', 'discs,rings', '--count', 3, '--resolution', 16,
                       '--out', tmp_path / 'd.zip')
    assert r.returncode == 0, r.stderr
    from plugin.hosts.embedded.dataset import ImageFolderDataset
    ds = ImageFolderDataset(tmp_path / 'd.zip', use_labels=True)
    assert len(ds) == 6 and ds.label_dim == 2 and ds.resolution == 16
    r = run_plugin_cli('domains', '--domains', 'clouds', '--out', tmp_path / 'x.zip')
    assert r.returncode == 1 and 'unknown domain' in r.stderr


def test_shipped_sources_are_host_layout_pickles():
    for name, c_dim in (('discs', 0), ('squares', 0), ('rings', 0), ('discs-triangles', 2)):
        r = run_plugin_cli('inspect', '--json', REPO / 'plugin' / 'assets' / 'sources' / f'{name}.pkl')
        info = json.loads(r.stdout)
        g = info['entries']['G_ema']
        assert g['resolution'] == 32 and g['c_dim'] == c_dim and {'G', 'D', 'G_ema'} <= set(info['keys'])
