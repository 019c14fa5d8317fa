"""GAN Cocktail on the stylegan3 repo's networks: widening the root (alias-free StyleGAN3 G and
the repo's StyleGAN2 G, its StyleGAN2 D) keeps the root's classes exact, the averaging stage
merges fine-tunes of the root and refuses models with other Fourier features, and sources that
are unrelated alias-free networks are accepted (only fine-tunes of the root are averaged)."""
import pytest
import torch

from plugin import load_network_pkl, save_network_pkl
from plugin.errors import MergeError
from plugin.hosts.embedded import networks_stylegan2 as sg2
from plugin.widen import widen_discriminator, widen_generator
from training_ext.cocktail.merge import merge_modules
from training_ext.cocktail.pipeline import CocktailPipeline
from training_ext.cocktail.sources import CocktailError, load_sources
from tests.helpers import small_sg3_D, small_sg3_G

pytestmark = pytest.mark.usefixtures('one_thread')


def sg2_G(seed=0, c_dim=0):
    torch.manual_seed(seed)
    return sg2.Generator(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=16, img_channels=3,
                         mapping_kwargs=dict(num_layers=2), channel_base=128, channel_max=16)


def perturbed(module, seed, amount=0.1):
    """A stand-in for a fine-tune: parameters and magnitude_ema moved, Fourier features kept."""
    out = type(module)(**module._init_kwargs)
    out.load_state_dict(module.state_dict())
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():
            p.add_(torch.randn_like(p) * amount * (p.std() if p.numel() > 1 else 1.0))
        for name, b in out.named_buffers():
            if name.endswith('magnitude_ema'):
                b.mul_(1.2)
    return out


def outputs(G, z, c):
    with torch.no_grad():
        return G.eval()(z, c, noise_mode='const')


# --- widening ---------------------------------------------------------------------------------

@pytest.mark.parametrize('make_G', [small_sg3_G, sg2_G], ids=['stylegan3', 'networks_stylegan2'])
def test_widening_an_unconditional_root_preserves_it_for_every_class(make_G):
    G, D = perturbed(make_G(1), 2).eval(), small_sg3_D(1).eval()
    G3, D3 = widen_generator(G, 3).eval(), widen_discriminator(D, 3).eval()
    assert G3.c_dim == D3.c_dim == 3 and type(G3) is type(G)
    if hasattr(G.synthesis, 'input'):          # the Fourier features and statistics are the root's
        for name in ('synthesis.input.freqs', 'synthesis.input.phases', 'synthesis.L2_36_16.magnitude_ema'):
            assert torch.equal(G3.state_dict()[name], G.state_dict()[name])
    z = torch.randn(4, 16)
    img = outputs(G, z, None)
    for k in range(3):
        c = torch.eye(3)[[k] * 4]
        torch.testing.assert_close(outputs(G3, z, c), img, rtol=1e-5, atol=1e-5)
        with torch.no_grad():
            torch.testing.assert_close(D3(img, c), D(img, None), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('make_G', [small_sg3_G, sg2_G], ids=['stylegan3', 'networks_stylegan2'])
@pytest.mark.parametrize('c_dim', [0, 2])
def test_the_cocktails_widening_keeps_the_roots_classes_and_perturbs_the_others(make_G, c_dim):
    G, D = perturbed(make_G(3, c_dim=c_dim), 4).eval(), small_sg3_D(3, c_dim=c_dim).eval()
    G4, D4 = widen_generator(G, 4, 1, exact=False).eval(), widen_discriminator(D, 4, 1, exact=False).eval()
    z = torch.randn(8, 16)
    own = range(1, 1 + max(c_dim, 1))
    for k in own:
        c_old = torch.eye(c_dim)[[k - 1] * 8] if c_dim else None
        img = outputs(G, z, c_old)
        torch.testing.assert_close(outputs(G4, z, torch.eye(4)[[k] * 8]), img, rtol=1e-5, atol=1e-5)
        with torch.no_grad():
            torch.testing.assert_close(D4(img, torch.eye(4)[[k] * 8]), D(img, c_old), rtol=1e-5, atol=1e-5)
    gaps = [float((outputs(G4, z, torch.eye(4)[[k] * 8]) - outputs(G4, z, torch.eye(4)[[j] * 8])).abs().mean())
            for k in range(4) for j in range(k) if not (k in own and j in own)]
    assert min(gaps) > 1e-3, gaps


# --- averaging --------------------------------------------------------------------------------

def test_averaging_fine_tunes_of_the_widened_root_is_the_arithmetic_mean():
    root = widen_generator(small_sg3_G(0), 3, 0, exact=False)
    tunes = [perturbed(root, s) for s in (1, 2)]
    merged = merge_modules(root, tunes, 'mean').state_dict()
    sds = [root.state_dict()] + [t.state_dict() for t in tunes]
    for n, v in merged.items():
        if n.endswith(('freqs', 'phases', 'transform', '_filter')):
            assert torch.equal(v, sds[0][n]), n
        else:                                           # weights, w_avg and magnitude_ema: the mean
            torch.testing.assert_close(v, sum(sd[n] for sd in sds) / 3, rtol=0, atol=1e-6, msg=n)
    with pytest.raises(MergeError, match='model 1 has other Fourier features'):
        merge_modules(root, [widen_generator(small_sg3_G(7), 3, 0, exact=False)], 'mean')


# --- the pipeline -----------------------------------------------------------------------------

@pytest.fixture()
def sources(tmp_path):
    """Two unrelated alias-free sources (each its own Fourier features) with the repo's D."""
    paths = []
    for i in range(2):
        G = small_sg3_G(10 + i)
        paths.append(str(save_network_pkl(dict(training_set_kwargs=None, G=G, D=small_sg3_D(i), G_ema=G),
                                          tmp_path / f'src{i}.pkl')))
    return paths


def run_pipeline(tmp_path, sources, **over):
    flags = dict(cocktail=sources, outdir=str(tmp_path), cfg='tiny', batch=8, root_kimg=0, kimg=0, tick=0.016,
                 snap=1, seed=0, workers=None, device='cpu', judge=0)
    flags.update(over)
    logs = []
    return CocktailPipeline(flags, str(tmp_path / 'pipe'), log=logs.append).run(), logs


def test_unrelated_alias_free_sources_are_accepted_and_only_the_root_is_averaged(tmp_path, sources):
    """Sources with other Fourier features are not refused: no stage averages a source, only
    fine-tunes of the widened root (with --root-kimg 0 the root stands for every source)."""
    report, logs = run_pipeline(tmp_path, sources)
    assert any('other Fourier features than the root' in line and 'never averaged' in line for line in logs), logs
    widened = load_network_pkl(report['stages']['stage0-root-widened']['output'])['G']
    merged = load_network_pkl(report['merged_pickle'])['G']
    assert merged.c_dim == 2
    for n, v in merged.state_dict().items():
        torch.testing.assert_close(v, widened.state_dict()[n], rtol=0, atol=1e-6, msg=n)


def test_the_averaging_stage_refuses_a_model_that_is_no_fine_tune_of_the_root(tmp_path, sources, monkeypatch):
    """A rooted model with other Fourier features (a rooting run that did not start from the
    widened root) is a one-line error before anything is averaged."""
    def unrelated_rooting(self, source):
        G = widen_generator(small_sg3_G(20), 2, 0, exact=False)
        D = widen_discriminator(small_sg3_D(0), 2, 0, exact=False)
        return str(save_network_pkl(dict(training_set_kwargs=None, G=G, D=D, G_ema=G), tmp_path / 'rooted.pkl'))
    monkeypatch.setattr(CocktailPipeline, 'rooting', unrelated_rooting)
    with pytest.raises(CocktailError) as e:
        run_pipeline(tmp_path, sources)
    text = str(e.value)
    assert '\n' not in text and 'other Fourier features' in text and 'fine-tunes of the root' in text
    assert not (tmp_path / 'pipe' / 'stage2-average' / 'average.pkl').exists()


def test_sources_of_another_alias_free_design_are_refused(tmp_path, sources):
    G = small_sg3_G(12, output_scale=0.5)
    other = str(save_network_pkl(dict(training_set_kwargs=None, G=G, D=small_sg3_D(0), G_ema=G), tmp_path / 'o.pkl'))
    with pytest.raises(CocktailError, match='another alias-free G design .*output_scale: 0.25 vs 0.5'):
        load_sources([sources[0], other])


def test_a_host_written_stylegan3_r_root_widens_keeping_its_classes():
    """The stylegan3 repo's own -R pickle (conditional, radial filters) as a cocktail root."""
    from tests.helpers import REPO
    pkl = REPO.parent / 'shared' / 'fixtures' / 'stylegan3' / 'r32cond' / 'network-snapshot.pkl'
    if not pkl.is_file():
        pytest.skip(f'stylegan3 host fixtures not found at {pkl.parent.parent} (a clone without ../shared)')
    data = load_network_pkl(pkl)
    G, D = data['G_ema'].eval(), data['D'].eval()
    G5, D5 = widen_generator(G, 5, 2, exact=False).eval(), widen_discriminator(D, 5, 2, exact=False).eval()
    z = torch.randn(4, G.z_dim)
    for k in range(G.c_dim):
        c_old, c_new = torch.eye(G.c_dim)[[k] * 4], torch.eye(5)[[2 + k] * 4]
        img = outputs(G, z, c_old)
        torch.testing.assert_close(outputs(G5, z, c_new), img, rtol=1e-4, atol=1e-4)
        with torch.no_grad():
            torch.testing.assert_close(D5(img, c_new), D(img, c_old), rtol=1e-4, atol=1e-4)


def test_rooting_and_merge_fine_tuning_train_on_stylegan3_t_sources(tmp_path):
    """The whole cocktail with real training stages (--root-kimg and --kimg > 0) on two tiny
    stylegan3-t sources laid out as a user's runs: the result is a conditional alias-free G
    with the root's Fourier features that reloads and generates, and every stage trained."""
    from tests.helpers import make_sg3_source
    paths = []
    for i, name in enumerate(('cats', 'dogs')):
        run_dir = tmp_path / f'0000{i}-{name}'
        run_dir.mkdir()
        paths.append(make_sg3_source(run_dir / 'network-snapshot-000040.pkl', seed=30 + i))
    report, logs = run_pipeline(tmp_path, paths, root_kimg=0.032, kimg=0.032)
    stages = report['stages']
    G_of = {name: load_network_pkl(stages[name]['output'])['G_ema'] for name in stages
            if stages[name].get('output', '').endswith('.pkl')}
    assert any(n.startswith('stage1-root-') for n in G_of) and 'stage3-merge' in G_of, sorted(stages)
    merged = load_network_pkl(report['merged_pickle'])['G_ema'].eval()
    root = load_network_pkl(paths[0])['G_ema']
    assert merged.c_dim == 2 and type(merged).__name__ == 'Generator' and hasattr(merged.synthesis, 'input')
    for name in ('synthesis.input.freqs', 'synthesis.input.phases'):
        assert torch.equal(merged.state_dict()[name], root.state_dict()[name]), name
    img = outputs(merged, torch.randn(4, 16), torch.eye(2)[[0, 1, 0, 1]])
    assert img.shape == (4, 3, 16, 16) and torch.isfinite(img).all()

    def changed(a, b):
        sa, sb = G_of[a].state_dict(), G_of[b].state_dict()
        return [n for n in sa if 'weight' in n and not torch.equal(sa[n], sb[n])]
    rooted = next(n for n in G_of if n.startswith('stage1-root-'))
    assert changed('stage0-root-widened', rooted), 'the rooting stage did not train'
    assert changed('stage0-root-widened', 'stage2-average'), 'the average is the untrained root'
    assert changed('stage2-average', 'stage3-merge'), 'the merge fine-tuning did not train'
