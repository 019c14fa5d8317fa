"""GAN Cocktail: merge arithmetic, function-preserving widening, the pipeline end to end,
stage-wise resume and the errors for sources that cannot be merged."""
import json
import os
import subprocess
import sys

import pytest
import torch

from tests.helpers import REPO, small_D_kwargs, small_G_kwargs
from plugin import load_network_pkl, save_network_pkl
from plugin.hosts.embedded.networks import Discriminator, Generator
from training_ext.cocktail.merge import merge_state_dicts
from training_ext.cocktail.pipeline import CocktailPipeline
from training_ext.cocktail.sources import CocktailError, load_sources
from plugin.widen import widen_discriminator, widen_generator


def make_source(path, seed, c_dim=0, **gkw):
    torch.manual_seed(seed)
    G = Generator(**small_G_kwargs(c_dim=c_dim, **gkw))
    D = Discriminator(**small_D_kwargs(c_dim=c_dim, img_resolution=G.img_resolution))
    save_network_pkl(dict(training_set_kwargs=None, G=G, D=D, G_ema=G), path)
    return str(path)


@pytest.fixture()
def sources(tmp_path):
    """Laid out as the host writes a user's runs: one run directory each, one file name."""
    paths = []
    for i in range(3):
        (tmp_path / f'run{i}').mkdir()
        paths.append(make_source(tmp_path / f'run{i}' / f'network-snapshot-000{i}00.pkl', seed=i))
    for i in range(3):           # same stem everywhere: only the run directory tells them apart
        os.rename(paths[i], tmp_path / f'run{i}' / 'network-snapshot.pkl')
    return [str(tmp_path / f'run{i}' / 'network-snapshot.pkl') for i in range(3)]


def test_mean_is_the_exact_arithmetic_mean():
    torch.manual_seed(0)
    sds = [Generator(**small_G_kwargs()).state_dict() for _ in range(3)]
    merged = merge_state_dicts(sds[0], sds[1:], 'mean')
    for name, value in merged.items():
        if name.endswith(('resample_filter', 'noise_const')):
            assert torch.equal(value, sds[0][name])                 # constants copied from the root
        else:
            torch.testing.assert_close(value, (sds[0][name] + sds[1][name] + sds[2][name]) / 3, rtol=0, atol=1e-6)


def test_other_merge_methods():
    torch.manual_seed(0)
    root, a, b = (torch.randn(50) for _ in range(3))
    sd = lambda t: {'w': t}  # noqa: E731
    mean = merge_state_dicts(sd(root), [sd(a), sd(b)], 'mean')['w']
    ta = merge_state_dicts(sd(root), [sd(a), sd(b)], 'task-arithmetic')['w']
    torch.testing.assert_close(ta, mean)                             # default weights 1/N == mean
    scaled = merge_state_dicts(sd(root), [sd(a), sd(b)], 'task-arithmetic', weights=[1.0, 0.0])['w']
    torch.testing.assert_close(scaled, a)
    ties = merge_state_dicts(sd(root), [sd(a), sd(a)], 'ties', density=1.0)['w']
    torch.testing.assert_close(ties, a)                              # identical deltas survive whole
    sparse = merge_state_dicts(sd(root), [sd(a)], 'ties', density=0.1)['w']
    assert (sparse != root).sum() == 5
    torch.testing.assert_close(merge_state_dicts(sd(root), [sd(a)], 'slerp', t=0.0)['w'], root)
    torch.testing.assert_close(merge_state_dicts(sd(root), [sd(a)], 'slerp', t=1.0)['w'], a, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match='two models'):
        merge_state_dicts(sd(root), [sd(a), sd(b)], 'slerp')
    with pytest.raises(ValueError, match='unknown merge method'):
        merge_state_dicts(sd(root), [sd(a)], 'average')


def test_widening_an_unconditional_pair_preserves_outputs_for_every_class():
    torch.manual_seed(1)
    G = Generator(**small_G_kwargs()).eval()
    D = Discriminator(**small_D_kwargs()).eval()
    G3, D3 = widen_generator(G, 3).eval(), widen_discriminator(D, 3).eval()
    assert G3.c_dim == D3.c_dim == 3
    z = torch.randn(4, 16)
    with torch.no_grad():
        img = G(z, None, noise_mode='const')
        logits = D(img, None)
        for k in range(3):
            c = torch.eye(3)[[k] * 4]
            torch.testing.assert_close(G3(z, c, noise_mode='const'), img, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(D3(img, c), logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('c_dim', [0, 2])
def test_widening_not_exact_keeps_the_own_classes_and_perturbs_the_others(c_dim):
    """The cocktail's root: its own classes (at the offset) compute exactly what it computed, the
    other classes start measurably different (symmetry broken), in G and in D."""
    torch.manual_seed(3)
    G = Generator(**small_G_kwargs(c_dim=c_dim)).eval()
    D = Discriminator(**small_D_kwargs(c_dim=c_dim)).eval()
    G4, D4 = widen_generator(G, 4, 1, exact=False).eval(), widen_discriminator(D, 4, 1, exact=False).eval()
    z = torch.randn(8, 16)
    own = range(1, 1 + max(c_dim, 1))
    with torch.no_grad():
        for k in own:
            c_old = torch.eye(c_dim)[[k - 1] * 8] if c_dim else None
            img = G(z, c_old, noise_mode='const')
            torch.testing.assert_close(G4(z, torch.eye(4)[[k] * 8], noise_mode='const'), img, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(D4(img, torch.eye(4)[[k] * 8]), D(img, c_old), rtol=1e-5, atol=1e-5)
        gaps = [float((G4(z, torch.eye(4)[[k] * 8], noise_mode='const') -
                       G4(z, torch.eye(4)[[j] * 8], noise_mode='const')).abs().mean())
                for k in range(4) for j in range(k) if not (k in own and j in own)]
    assert min(gaps) > 1e-3, gaps


def test_widening_a_conditional_model_keeps_its_classes_at_the_offset():
    torch.manual_seed(2)
    G = Generator(**small_G_kwargs(c_dim=2)).eval()
    D = Discriminator(**small_D_kwargs(c_dim=2)).eval()
    G5, D5 = widen_generator(G, 5, offset=3).eval(), widen_discriminator(D, 5, offset=3).eval()
    z = torch.randn(4, 16)
    with torch.no_grad():
        for k in range(2):
            c_old, c_new = torch.eye(2)[[k] * 4], torch.eye(5)[[3 + k] * 4]
            img = G(z, c_old, noise_mode='const')
            torch.testing.assert_close(G5(z, c_new, noise_mode='const'), img, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(D5(img, c_new), D(img, c_old), rtol=1e-5, atol=1e-5)


def run_pipeline(tmp_path, sources, **over):
    flags = dict(cocktail=sources, outdir=str(tmp_path), cfg='tiny', batch=8, root_kimg=0.032, kimg=0.032,
                 tick=0.016, snap=1, seed=0, workers=None, device='cpu', judge=0)
    flags.update(over)
    logs = []
    report = CocktailPipeline(flags, str(tmp_path / 'pipe'), log=logs.append).run()
    return report, logs


def test_pipeline_end_to_end(tmp_path, sources):
    before = {p: open(p, 'rb').read() for p in sources}
    report, logs = run_pipeline(tmp_path, sources, judge=40)
    # Sources untouched; rooting pulled every model towards the root.
    assert all(open(p, 'rb').read() == b for p, b in before.items())
    # Every non-root source rooted on its own, named by its run directory, each named once.
    assert set(report['stages']) == {'stage0-root-widened', 'stage1-root-run1', 'stage1-root-run2', 'stage2-average',
                                     'stage3-merge'}
    assert [s['name'] for s in report['sources']] == ['run0', 'run1', 'run2'] and report['root'] == 'run0'
    assert any('mean of 3 models' in line for line in logs)
    text = (tmp_path / 'pipe' / 'report.txt').read_text()
    named = [line.split()[2] for line in text.splitlines() if line.startswith('  class ')]
    assert named == ['run0', 'run1', 'run2']
    assert text.count('(root)') == 1
    before_d, after_d = report['distance_before_rooting']['G'], report['distance_after_rooting']['G']
    assert set(after_d) == {'run0 - run1', 'run0 - run2', 'run1 - run2'}
    for pair in ('run0 - run1', 'run0 - run2'):
        assert after_d[pair] < before_d[pair]
    # The widened root: class 0 (the root's) is the root, the others already differ from it.
    root, widened = load_network_pkl(sources[0])['G_ema'], load_network_pkl(pipe_file(tmp_path, 'stage0-root-widened',
                                                                                      'root.pkl'))['G_ema']
    z = torch.randn(4, root.z_dim)
    with torch.no_grad():
        own = root(z, None, noise_mode='const')
        torch.testing.assert_close(widened(z, torch.eye(3)[[0] * 4], noise_mode='const'), own, rtol=1e-4, atol=1e-4)
        assert (widened(z, torch.eye(3)[[1] * 4], noise_mode='const') - own).abs().mean() > 1e-3
    merged = load_network_pkl(report['merged_pickle'])
    G = merged['G_ema']
    assert G.c_dim == 3 and merged['D'].c_dim == 3
    for k in range(3):
        img = G(torch.randn(2, G.z_dim), torch.eye(3)[[k, k]])
        assert img.shape == (2, 3, 16, 16) and torch.isfinite(img).all()
    pipe = tmp_path / 'pipe'
    assert (pipe / 'merge_grid.png').is_file() and (pipe / 'report.txt').is_file()
    # Per-class source identification and FID at the end of each stage, plotted against kimg.
    judge = report['judge']
    assert judge['class_names'] == ['run0', 'run1', 'run2'] and 0 <= judge['heldout_accuracy'] <= 1
    assert [r['stage'] for r in judge['rows']][:3] == ['stage1-root-run1', 'stage1-root-run2', 'merge start']
    assert judge['rows'][-1]['stage'] == 'stage3-merge' and judge['rows'][-1]['kimg'] == 0.032
    assert all(len(r['accuracy']) == len(r['fid']) == 3 for r in judge['rows'])
    assert (pipe / 'judge_accuracy.png').is_file() and (pipe / 'judge_fid.png').is_file()
    assert 'held-out accuracy' in text
    assert json.loads((pipe / 'report.json').read_text())['num_classes'] == 3


def pipe_file(tmp_path, *parts):
    return str(tmp_path.joinpath('pipe', *parts))


def test_resume_skips_finished_stages(tmp_path, sources, monkeypatch):
    import training_ext.cocktail.pipeline as pipeline_mod

    def killed(*args, **kwargs):
        raise KeyboardInterrupt('killed during merge fine-tuning')
    real_merge = pipeline_mod.CocktailPipeline.merge
    monkeypatch.setattr(pipeline_mod.CocktailPipeline, 'merge', killed)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(tmp_path, sources)
    rooted = tmp_path / 'pipe' / 'stage1-root-run1'
    mtimes = {p: p.stat().st_mtime_ns for p in rooted.iterdir()}
    monkeypatch.setattr(pipeline_mod.CocktailPipeline, 'merge', real_merge)
    report, logs = run_pipeline(tmp_path, sources)
    assert any('[stage1-root-run1] done before, skipping' in line for line in logs)
    assert any('[stage2-average] done before, skipping' in line for line in logs)
    assert {p: p.stat().st_mtime_ns for p in rooted.iterdir()} == mtimes
    assert os.path.isfile(report['merged_pickle'])


def _trained_nimg(pkl):
    return load_network_pkl(pkl)['training_state']['cur_nimg']


def test_a_larger_budget_extends_a_finished_pipeline(tmp_path, sources):
    report, _ = run_pipeline(tmp_path, sources[:2])
    merge_dir = tmp_path / 'pipe' / 'stage3-merge'
    assert _trained_nimg(report['merged_pickle']) == 32
    # --kimg given again, larger: the merge stage goes on from its snapshot; rooting stays.
    report, logs = run_pipeline(tmp_path, sources[:2], kimg=0.064, root_kimg=None)
    assert any('[stage1-root-run1] done before, skipping' in line for line in logs)
    assert any('[stage3-merge] continuing from' in line and 'extended to 0.064 kimg' in line for line in logs)
    assert _trained_nimg(report['merged_pickle']) == 64 and report['stages']['stage3-merge']['kimg'] == 0.064
    assert os.path.dirname(report['merged_pickle']) == str(merge_dir)
    # The same budget again: nothing to do.
    report, logs = run_pipeline(tmp_path, sources[:2], kimg=None, root_kimg=None)
    assert any('[stage3-merge] done before, skipping' in line for line in logs)
    # A smaller one cannot be honoured: one-line error.
    with pytest.raises(CocktailError, match=r'\[stage3-merge\] finished at 0.064 kimg; it cannot be shortened'):
        run_pipeline(tmp_path, sources[:2], kimg=0.032)
    # A larger rooting budget: rooting goes on, the average and the merge stage are redone.
    report, logs = run_pipeline(tmp_path, sources[:2], kimg=None, root_kimg=0.064)
    assert any('[stage1-root-run1] continuing from' in line for line in logs)
    assert any('[stage3-merge] redone after stage1-root-run1' in line for line in logs)
    assert _trained_nimg(report['stages']['stage1-root-run1']['output']) == 64
    assert _trained_nimg(report['merged_pickle']) == 64          # a fresh merge run of 0.064 kimg
    assert (tmp_path / 'pipe' / 'stage3-merge.before-stage1-root-run1-0').is_dir()


def test_zero_kimg_skips_a_stage_and_says_so(tmp_path, sources):
    report, logs = run_pipeline(tmp_path, sources[:2], root_kimg=0, kimg=0)
    assert any('--root-kimg 0: not rooted' in line for line in logs)
    assert any('--kimg 0: no merge fine-tuning' in line for line in logs)
    assert set(report['stages']) == {'stage0-root-widened', 'stage2-average'}
    assert report['merged_pickle'].endswith('average.pkl')
    with pytest.raises(CocktailError, match='>= 0'):
        run_pipeline(tmp_path, sources[:2], kimg=-1)


def test_baseline_transfergan_skips_rooting(tmp_path, sources):
    report, _ = run_pipeline(tmp_path, sources[:2], baseline='transfergan')
    assert set(report['stages']) == {'stage3-merge'} and report['baseline'] == 'transfergan'
    assert load_network_pkl(report['merged_pickle'])['G_ema'].c_dim == 2


def test_mixed_conditional_and_unconditional_sources(tmp_path):
    a = make_source(tmp_path / 'u.pkl', seed=0)
    b = make_source(tmp_path / 'c.pkl', seed=1, c_dim=2)
    srcs = load_sources([a, b])
    assert [s.offset for s in srcs] == [0, 1] and [s.num_classes for s in srcs] == [1, 2]


def test_bad_sources(tmp_path, sources):
    with pytest.raises(CocktailError, match='at least two'):
        load_sources(sources[:1])
    other = make_source(tmp_path / 'wide.pkl', seed=5, synthesis_kwargs=dict(channel_base=256, channel_max=32,
                                                                             architecture='skip'))
    with pytest.raises(CocktailError, match=r'another G architecture.*b16\.conv0\.weight \(8, 16, 3, 3\) vs \(16, 32'):
        load_sources([sources[0], other])
    big = make_source(tmp_path / 'big.pkl', seed=6, img_resolution=32)
    with pytest.raises(CocktailError, match='different resolutions'):
        load_sources([sources[0], big])
    junk = tmp_path / 'junk.pkl'
    junk.write_bytes(b'\x80\x04garbage')
    with pytest.raises(CocktailError, match='junk.pkl'):
        load_sources([sources[0], str(junk)])


def test_cli_errors_are_one_line(tmp_path, sources):
    r = subprocess.run([sys.executable, 'train_cocktail.py', '--outdir', str(tmp_path), '--cocktail', sources[0]],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.strip().count('\n') == 0 and 'at least two' in r.stderr
    r = subprocess.run([sys.executable, 'train_cocktail.py', '--outdir', str(tmp_path), '--data', 'x.zip',
                        '--merge-method', 'ties'], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and 'needs --cocktail' in r.stderr


def test_source_labels():
    from training_ext.common.source_pickles import source_labels
    assert source_labels(['a/discs.pkl', 'b/rings.pkl']) == ['discs', 'rings']
    snaps = ['x/00001-blobs32-auto1/network-snapshot-000100.pkl', 'x/00002-cats/network-snapshot-000100.pkl']
    assert source_labels(snaps) == ['00001-blobs32-auto1', '00002-cats']
    # The host's snapshot name is never a label, even when the numbers differ.
    snaps = ['x/00001-blobs32-auto1/network-snapshot-000100.pkl', 'x/00002-cats/network-snapshot-000200.pkl']
    assert source_labels(snaps) == ['00001-blobs32-auto1', '00002-cats']
    # A distinctive stem stays; a colliding one falls back to its directory, then an index.
    assert source_labels(['r1/a.pkl', 'r1/b.pkl', 'r2/b.pkl']) == ['a', 'r1', 'r2']
    assert source_labels(['r/n.pkl', 'r/n.pkl', 'q/m.pkl']) == ['source0', 'source1', 'm']
    assert source_labels(['r/n.pkl', 'n/x.pkl', 'm/x.pkl']) == ['n-0', 'n-1', 'm']     # never equal
    assert source_labels(['a.pkl', 'b.pkl'], ['cats', 'dog s']) == ['cats', 'dog_s']
    with pytest.raises(ValueError, match='needs 2 names'):
        source_labels(['a.pkl', 'b.pkl'], ['cats'])
    with pytest.raises(ValueError, match='unique'):
        source_labels(['a.pkl', 'b.pkl'], ['cats', 'cats'])


def test_class_names_label_the_sources(tmp_path, sources):
    srcs = load_sources(sources, ['cats', 'dogs', 'cars'])
    assert [s.name for s in srcs] == ['cats', 'dogs', 'cars'] and [s.index for s in srcs] == [0, 1, 2]
    with pytest.raises(CocktailError, match='needs 3 names'):
        load_sources(sources, ['cats', 'dogs'])


def test_a_source_twice_is_an_error(tmp_path, sources):
    with pytest.raises(CocktailError, match='given twice'):
        load_sources([sources[0], sources[1], sources[0]])
    copy = tmp_path / 'copy.pkl'
    copy.write_bytes(open(sources[1], 'rb').read())
    with pytest.raises(CocktailError, match=r'identical weights'):
        load_sources([sources[0], sources[1], str(copy)])


def test_merge_flags_come_from_the_methods_and_are_never_ignored(tmp_path, sources):
    """The cocktail's merge flags are generated from plugin.merging's declarations (defaults from
    the methods), reach the average, and a flag the method does not take fails before any
    training instead of being dropped."""
    from click.testing import CliRunner
    import train_cocktail
    help_text = CliRunner().invoke(train_cocktail.main, ['--help']).output
    assert '--dare-drop' in help_text and '[ties: 0.2]' in help_text
    with pytest.raises(CocktailError, match='--ties-density: merge method mean does not take it'):
        run_pipeline(tmp_path, sources, ties_density=0.5)
    assert not (tmp_path / 'pipe' / 'stage1-root-run1').exists()
    with pytest.raises(CocktailError, match='--merge-scale: --baseline transfergan does not average'):
        run_pipeline(tmp_path, sources, baseline='transfergan', merge_scale=0.5)
    report, logs = run_pipeline(tmp_path, sources, merge_method='ties', ties_density=0.5, root_kimg=0, kimg=0)
    state = json.loads((tmp_path / 'pipe' / 'pipeline_state.json').read_text())
    assert state['stages']['stage2-average']['params'] == {'density': 0.5}
