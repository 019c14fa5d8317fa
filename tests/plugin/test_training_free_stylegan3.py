"""Training-free reuse on the stylegan3 repo's generators: layer-swap blends and weight merges
of alias-free StyleGAN3 generators (layers ``synthesis.L<idx>_<size>_<ch>`` ordered by their
cutoff, a Fourier input whose freqs/phases must match for a merge) and of its StyleGAN2
(``networks_stylegan2``, stylegan2-ada's tensor names)."""
import math
import warnings

import pytest
import torch
from click.testing import CliRunner

from tests.helpers import REPO, sample_images
from plugin import load_network_pkl, save_network_pkl
from plugin.__main__ import main as cli
from plugin.errors import MergeError
from plugin.hosts.embedded import networks_stylegan2 as sg2
from plugin.hosts.embedded import networks_stylegan3 as sg3
from plugin.layouts import tensor_resolutions
from plugin.pickles import NetworkPickleError
from plugin.training_free import blend_pickles, merge_pickles

pytestmark = pytest.mark.usefixtures('one_thread')
QUIET = dict(log=lambda *a: None)
SG3_FIXTURES = REPO.parent / 'shared' / 'fixtures' / 'stylegan3'


def sg3_G(seed=0, **over):
    """A tiny alias-free StyleGAN3-T generator (16 px, 6 layers: cutoffs 2 .. 8)."""
    torch.manual_seed(seed)
    kw = dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3, mapping_kwargs=dict(num_layers=2),
              channel_base=256, channel_max=16, num_layers=6)
    kw.update(over)
    return sg3.Generator(**kw)


def sg2_G(seed=0):
    torch.manual_seed(seed)
    return sg2.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                         mapping_kwargs=dict(num_layers=2), channel_base=128, channel_max=16)


def small_D():
    torch.manual_seed(99)
    return sg2.Discriminator(c_dim=0, img_resolution=16, img_channels=3, channel_base=128, channel_max=16,
                             epilogue_kwargs=dict(mbstd_group_size=2))


def fine_tune(G, seed, amount=0.1):
    """A stand-in for a fine-tune of ``G``: every weight moved by ``amount`` of its own scale and
    every magnitude_ema by up to +-30% (trained statistics move too); the Fourier features,
    never trained, stay the parent's."""
    H = type(G)(**G._init_kwargs)
    H.load_state_dict(G.state_dict())
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in H.parameters():
            p.add_(torch.randn_like(p) * amount * (p.std() if p.numel() > 1 else 1.0))
        for name, b in H.named_buffers():
            if name.endswith('magnitude_ema'):
                b.mul_(1 + 0.3 * (2 * torch.rand([]) - 1))
    return H


def save(path, G):
    return str(save_network_pkl(dict(training_set_kwargs=None, G=G, D=small_D(), G_ema=G), path))


@pytest.fixture(scope='module')
def family(tmp_path_factory):
    """An alias-free parent, two fine-tunes (B with a user transform of its own), an unrelated
    network (other Fourier features), and a StyleGAN2 (networks_stylegan2) parent with two fine-tunes."""
    tmp = tmp_path_factory.mktemp('sg3family')
    parent = sg3_G(0)
    b = fine_tune(parent, 2)
    with torch.no_grad():
        b.synthesis.input.transform.copy_(torch.tensor([[0.8, -0.6, 0.1], [0.6, 0.8, 0.0], [0, 0, 1]]))
    s2 = sg2_G(0)
    nets = dict(parent=parent, a=fine_tune(parent, 1), b=b, other=sg3_G(5),
                sg2a=fine_tune(s2, 1), sg2b=fine_tune(s2, 2))
    return {name: save(tmp / f'{name}.pkl', G) for name, G in nets.items()}


def G_of(path):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return load_network_pkl(path)['G_ema'].eval()


def state(path):
    return G_of(path).state_dict()


def assert_same_network(path, reference):
    a, b = state(path), state(reference)
    assert a.keys() == b.keys()
    for n in a:
        assert torch.equal(a[n], b[n]), n
    torch.testing.assert_close(sample_images(G_of(path)), sample_images(G_of(reference)), rtol=0, atol=1e-6)


# --- which layers are "up to R" ---------------------------------------------------------------

def test_alias_free_layers_are_placed_by_their_band_limit():
    G = sg3_G()
    of = tensor_resolutions(G)
    layers = [of(f'synthesis.{n}.weight') for n in G.synthesis.layer_names]
    # 2 x the output cutoff: geometric from 2 x first_cutoff to the image resolution (the last
    # num_critical layers and ToRGB), although every layer here samples at 16 px.
    assert {getattr(G.synthesis, n).out_sampling_rate for n in G.synthesis.layer_names} == {16}
    assert layers == [4, pytest.approx(4 * math.sqrt(2)), 8, pytest.approx(8 * math.sqrt(2)), 16, 16, 16]
    assert of('synthesis.input.freqs') == of('synthesis.input.affine.weight') == 4
    assert of('mapping.fc0.weight') == 'mapping'


# --- blending ---------------------------------------------------------------------------------

def test_blending_a_with_itself_gives_a(family, tmp_path):
    for key in ('a', 'sg2a'):
        blend_pickles(family[key], family[key], tmp_path / 'self.pkl', 8, width=0.7, **QUIET)
        assert_same_network(tmp_path / 'self.pkl', family[key])


def test_swap_res_ends_give_b_and_a(family, tmp_path):
    for a, b in (('a', 'b'), ('sg2a', 'sg2b')):
        blend_pickles(family[a], family[b], tmp_path / 'all_b.pkl', 0, mapping='b', **QUIET)
        assert_same_network(tmp_path / 'all_b.pkl', family[b])
        blend_pickles(family[a], family[b], tmp_path / 'all_a.pkl', 16, **QUIET)
        assert_same_network(tmp_path / 'all_a.pkl', family[a])


@pytest.mark.parametrize('swap_res', [4, 8])
def test_a_hard_swap_takes_each_layer_and_its_buffers_from_the_right_model(family, tmp_path, swap_res):
    out = tmp_path / 'mid.pkl'
    blend_pickles(family['a'], family['b'], out, swap_res, **QUIET)
    got, a, b = state(out), state(family['a']), state(family['b'])
    of = tensor_resolutions(G_of(out))
    from_a = [n for n in got if of(n) == 'mapping' or of(n) <= swap_res]
    assert any('L2_' in n for n in from_a) == (swap_res >= 8)              # 2 x cutoff of L2 is 8
    for n in got:
        assert torch.equal(got[n], (a if n in from_a else b)[n]), n
    # The Fourier input (res 4) is A's: its features and A's transform (B's has a rotation);
    # magnitude_ema travels with its layer: A's below R, B's above.
    assert torch.equal(got['synthesis.input.transform'], a['synthesis.input.transform'])
    ema = [n for n in got if n.endswith('magnitude_ema')]
    assert {n: float(got[n]) for n in ema} == {n: float((a if of(n) <= swap_res else b)[n]) for n in ema}
    assert any(of(n) <= swap_res for n in ema) and any(of(n) > swap_res for n in ema)


def test_a_soft_blend_mixes_layers_but_never_the_fourier_features(family, tmp_path):
    blend_pickles(family['a'], family['other'], tmp_path / 'soft.pkl', 8, width=0.5, **QUIET)
    got, a, o = state(tmp_path / 'soft.pkl'), state(family['a']), state(family['other'])
    for n in ('synthesis.input.freqs', 'synthesis.input.phases', 'synthesis.input.transform'):
        assert torch.equal(got[n], a[n]), n                  # input at 4 < R: A's share > 1/2, taken whole
    names = G_of(family['a']).synthesis.layer_names
    share = [float((got[f'synthesis.{n}.weight'] - a[f'synthesis.{n}.weight']).norm()
                   / (o[f'synthesis.{n}.weight'] - a[f'synthesis.{n}.weight']).norm()) for n in names]
    assert 0 < share[0] < share[2] < share[4] < 1 and all(x < y + 1e-5 for x, y in zip(share, share[1:]))


def test_the_stylegan2_family_blends_by_block(family, tmp_path):
    out = tmp_path / 'sg2.pkl'
    blend_pickles(family['sg2a'], family['sg2b'], out, 8, **QUIET)
    got, a, b = state(out), state(family['sg2a']), state(family['sg2b'])
    assert torch.equal(got['synthesis.b8.conv0.weight'], a['synthesis.b8.conv0.weight'])
    assert torch.equal(got['synthesis.b16.conv0.weight'], b['synthesis.b16.conv0.weight'])


def test_unrelated_alias_free_models_get_a_fourier_warning(family, tmp_path):
    said = []
    blend_pickles(family['a'], family['other'], tmp_path / 'x.pkl', 8, log=said.append)
    assert any(s.startswith('warning: ') and 'different Fourier features' in s for s in said), said
    said.clear()
    blend_pickles(family['a'], family['b'], tmp_path / 'y.pkl', 8, log=said.append)
    assert not any('warning' in s for s in said), said


def test_cli_blend_grid_has_a_row_per_swap_resolution(family, tmp_path):
    from PIL import Image
    r = CliRunner().invoke(cli, ['blend', family['a'], family['b'], '--swap-res', '8', '--out', str(tmp_path / 'b.pkl'),
                                 '--grid', str(tmp_path / 'b.png'), '--seeds', '0-1'])
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / 'b.png').size == (2 * 16, 4 * 16)         # rows: swap-res 0, 4, 8, 16


# --- merging ----------------------------------------------------------------------------------

def test_mean_of_fine_tunes_of_one_parent_is_the_arithmetic_mean(family, tmp_path):
    merge_pickles([family['a'], family['b']], tmp_path / 'mean.pkl', 'mean', **QUIET)
    got, a, b = state(tmp_path / 'mean.pkl'), state(family['a']), state(family['b'])
    for n in got:
        if n.endswith(('freqs', 'phases', 'transform', '_filter')):
            assert torch.equal(got[n], a[n]), n                                 # constants: the first input's
        elif n != 'mapping.w_avg':                                             # (w_avg: sampled afresh)
            torch.testing.assert_close(got[n], (a[n] + b[n]) / 2, rtol=0, atol=1e-6, msg=n)
    assert any(n.endswith('magnitude_ema') and not torch.equal(a[n], b[n]) for n in a)   # means of distinct values
    assert torch.isfinite(sample_images(G_of(tmp_path / 'mean.pkl'))).all()


def test_task_arithmetic_of_fine_tunes_is_the_arithmetic(family, tmp_path):
    merge_pickles([family['a'], family['b']], tmp_path / 'ta.pkl', 'task-arithmetic', base=family['parent'],
                  weights=[1.0, 0.5], scale=0.8, **QUIET)
    got, p, a, b = (state(x) for x in (tmp_path / 'ta.pkl', family['parent'], family['a'], family['b']))
    for n in got:
        if not n.endswith(('freqs', 'phases', 'transform', '_filter', 'w_avg')):
            want = p[n] + 0.8 * (1.0 * (a[n] - p[n]) + 0.5 * (b[n] - p[n]))
            torch.testing.assert_close(got[n], want, rtol=1e-5, atol=1e-6, msg=n)
    # One model at weight 1 (TIES keeping everything) gives that model, magnitude_ema included.
    merge_pickles([family['a']], tmp_path / 'one.pkl', 'ties', base=family['parent'], density=1.0, **QUIET)
    one = state(tmp_path / 'one.pkl')
    for n in one:
        if n != 'mapping.w_avg':
            torch.testing.assert_close(one[n], a[n], rtol=1e-5, atol=1e-6, msg=n)


def test_magnitude_ema_is_merged_by_the_methods_linear_part_and_kept_positive(family, tmp_path):
    """DARE drops task-vector entries at random: the weights are dropped, the layers' input
    statistics take the task arithmetic (one number has nothing to sparsify)."""
    merge_pickles([family['a'], family['b']], tmp_path / 'dare.pkl', 'dare', base=family['parent'], drop=0.5,
                  **QUIET)
    got, p, a, b = (state(x) for x in (tmp_path / 'dare.pkl', family['parent'], family['a'], family['b']))
    ema = [n for n in got if n.endswith('magnitude_ema')]
    for n in ema:
        torch.testing.assert_close(got[n], p[n] + 0.5 * (a[n] - p[n]) + 0.5 * (b[n] - p[n]), msg=n)
    w = 'synthesis.L1_36_16.weight'
    assert not torch.allclose(got[w], p[w] + 0.5 * (a[w] - p[w]) + 0.5 * (b[w] - p[w]))
    # Extrapolating far past the parent would make a statistic negative (rsqrt: NaN): kept positive.
    merge_pickles([family['a']], tmp_path / 'far.pkl', 'task-arithmetic', base=family['parent'], weights=[1.0],
                  scale=-40.0, **QUIET)
    far = state(tmp_path / 'far.pkl')
    assert all(float(far[n]) > 0 for n in ema) and any(float(far[n]) <= 1e-6 for n in ema)


def test_different_fourier_features_are_a_one_line_error(family, tmp_path):
    with pytest.raises(MergeError, match=r'other\.pkl has other Fourier features .*a\.pkl.*fine-tunes of one parent'):
        merge_pickles([family['a'], family['other']], tmp_path / 'x.pkl', 'mean', **QUIET)
    with pytest.raises(MergeError, match='other Fourier features'):
        merge_pickles([family['a']], tmp_path / 'x.pkl', 'task-arithmetic', base=family['other'], **QUIET)
    assert not (tmp_path / 'x.pkl').exists()
    r = CliRunner().invoke(cli, ['merge', family['a'], family['other'], '--method', 'slerp', '--out',
                                 str(tmp_path / 'x.pkl')])
    assert r.exit_code != 0 and r.output.strip().count('\n') == 0, r.output
    assert r.output.startswith('error: ') and 'Fourier features' in r.output and 'one parent' in r.output


def test_another_alias_free_design_is_an_error_even_with_equal_shapes(family, tmp_path):
    """output_scale (and the cutoff schedule) change no tensor shape: the design is compared."""
    scaled = save(tmp_path / 'scaled.pkl', sg3_G(0, output_scale=0.5))
    with pytest.raises(NetworkPickleError, match='different alias-free designs: output_scale: 0.25 vs 0.5'):
        merge_pickles([family['parent'], scaled], tmp_path / 'x.pkl', 'mean', **QUIET)
    wide = save(tmp_path / 'wide.pkl', sg3_G(0, channel_base=512, channel_max=32))
    with pytest.raises(NetworkPickleError, match='different architectures'):
        blend_pickles(family['parent'], wide, tmp_path / 'x.pkl', 8, **QUIET)


# --- pickles written by the stylegan3 repo ----------------------------------------------------

@pytest.fixture(scope='module')
def sg3_fixtures():
    if not (SG3_FIXTURES / 't32' / 'network-snapshot.pkl').is_file():
        pytest.skip(f'stylegan3 host fixtures not found at {SG3_FIXTURES} (a clone without ../shared)')
    return SG3_FIXTURES


def test_host_pickles_blend_and_merge_with_a_fine_tune(sg3_fixtures, tmp_path):
    for config in ('t32', 'sg2cond32'):
        src = str(sg3_fixtures / config / 'network-snapshot.pkl')
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            data = load_network_pkl(src)
        tuned = fine_tune(data['G_ema'], 7)
        tuned_pkl = str(save_network_pkl(dict(data, G=tuned, G_ema=tuned), tmp_path / f'{config}-tuned.pkl'))
        blend_pickles(src, tuned_pkl, tmp_path / 'blend.pkl', 32, **QUIET)            # every layer from A
        got, ref = state(tmp_path / 'blend.pkl'), data['G_ema'].state_dict()
        assert all(torch.equal(got[n], ref[n]) for n in ref)
        merge_pickles([src, tuned_pkl], tmp_path / 'mean.pkl', 'mean', **QUIET)
        got, tuned_sd = state(tmp_path / 'mean.pkl'), tuned.state_dict()
        name = 'synthesis.L5_52_32.weight' if config == 't32' else 'synthesis.b16.conv0.weight'
        torch.testing.assert_close(got[name], (ref[name] + tuned_sd[name]) / 2)
    with pytest.raises(NetworkPickleError, match='different'):
        merge_pickles([str(sg3_fixtures / 't32' / 'network-snapshot.pkl'),
                       str(sg3_fixtures / 'r32cond' / 'network-snapshot.pkl')], tmp_path / 'x.pkl', 'mean', **QUIET)
