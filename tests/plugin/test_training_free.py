"""Training-free reuse: layer-swap blending and weight merges of fine-tunes (plugin.blend,
plugin.merging, plugin.training_free; ``python -m plugin blend|merge``)."""
import io
import warnings

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from tests.helpers import sample_images, small_D_kwargs, small_G_kwargs
from plugin import NetworkPickleError, UnsafePickleError, load_network_pkl, save_network_pkl
from plugin.__main__ import main as cli
from plugin.hosts.embedded.networks import Discriminator, Generator
from plugin.merging import merge_state_dicts
from plugin.pickles import SafeUnpickler, dumps_network_pkl
from plugin.pkl_edit import mean_w
from plugin.training_free import blend_pickles, merge_pickles

QUIET = dict(log=lambda *a: None)


def fine_tune(G, seed, amount=0.1):
    """A stand-in for a fine-tune of ``G``: every weight moved by ``amount`` of its own scale."""
    torch.manual_seed(seed)
    H = Generator(**G._init_kwargs)
    H.load_state_dict(G.state_dict())
    with torch.no_grad():
        for p in H.parameters():
            p.add_(torch.randn_like(p) * amount * (p.std() if p.numel() > 1 else 1.0))
    return H


@pytest.fixture(scope='module')
def family(tmp_path_factory):
    """A parent and two fine-tunes of it, plus an unrelated network, as pickles."""
    tmp = tmp_path_factory.mktemp('family')
    torch.manual_seed(0)
    parent = Generator(**small_G_kwargs())
    D = Discriminator(**small_D_kwargs())
    paths = {}
    for name, G in [('parent', parent), ('a', fine_tune(parent, 1)), ('b', fine_tune(parent, 2)),
                    ('other', Generator(**small_G_kwargs()))]:
        paths[name] = str(save_network_pkl(dict(training_set_kwargs=None, G=G, D=D, G_ema=G), tmp / f'{name}.pkl'))
    return paths


def G_of(path):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return load_network_pkl(path)['G_ema'].eval()


def assert_same_network(path, reference):
    a, b = G_of(path).state_dict(), G_of(reference).state_dict()
    assert a.keys() == b.keys()
    for n in a:
        torch.testing.assert_close(a[n], b[n], rtol=0, atol=1e-6, msg=n)
    torch.testing.assert_close(sample_images(G_of(path)), sample_images(G_of(reference)), rtol=0, atol=1e-5)


# --- blending -------------------------------------------------------------------------------

def test_blending_a_with_itself_gives_a_exactly(family, tmp_path):
    out = tmp_path / 'self.pkl'
    blend_pickles(family['a'], family['a'], out, 8, width=0.7, **QUIET)
    assert torch.equal(sample_images(G_of(out)), sample_images(G_of(family['a'])))


def test_swap_res_ends_give_b_and_a(family, tmp_path):
    res = G_of(family['a']).img_resolution
    blend_pickles(family['a'], family['b'], tmp_path / 'all_b.pkl', 0, mapping='b', **QUIET)
    assert_same_network(tmp_path / 'all_b.pkl', family['b'])
    blend_pickles(family['a'], family['b'], tmp_path / 'all_a.pkl', res, **QUIET)
    assert_same_network(tmp_path / 'all_a.pkl', family['a'])


def test_a_hard_swap_takes_each_block_from_the_right_model(family, tmp_path):
    out = tmp_path / 'mid.pkl'
    blend_pickles(family['a'], family['b'], out, 8, **QUIET)
    got, a, b = (G_of(p).state_dict() for p in (out, family['a'], family['b']))
    assert torch.equal(got['synthesis.b4.conv1.weight'], a['synthesis.b4.conv1.weight'])
    assert torch.equal(got['synthesis.b8.conv0.weight'], a['synthesis.b8.conv0.weight'])
    assert torch.equal(got['synthesis.b16.conv0.weight'], b['synthesis.b16.conv0.weight'])
    assert torch.equal(got['mapping.fc0.weight'], a['mapping.fc0.weight'])
    # A soft blend mixes: the block just above R gets more of B than the one at R.
    blend_pickles(family['a'], family['b'], tmp_path / 'soft.pkl', 8, width=0.5, **QUIET)
    soft = G_of(tmp_path / 'soft.pkl').state_dict()
    share = {r: float((soft[f'synthesis.b{r}.conv1.weight'] - a[f'synthesis.b{r}.conv1.weight']).norm()
                      / (b[f'synthesis.b{r}.conv1.weight'] - a[f'synthesis.b{r}.conv1.weight']).norm()) for r in (4, 8, 16)}
    assert 0 < share[4] < share[8] < share[16] < 1


def test_unrelated_models_get_a_warning_with_distances(family, tmp_path):
    said = []
    blend_pickles(family['a'], family['other'], tmp_path / 'x.pkl', 8, log=said.append)
    assert any('do not look like fine-tunes of one parent' in s and 'Per block' in s for s in said), said
    said.clear()
    blend_pickles(family['a'], family['b'], tmp_path / 'y.pkl', 8, log=said.append)
    assert not any('warning' in s for s in said), said


# --- merging --------------------------------------------------------------------------------

def test_one_model_with_weight_one_gives_that_model(family, tmp_path):
    merge_pickles([family['a']], tmp_path / 'ta.pkl', 'task-arithmetic', base=family['parent'], weights=[1.0], **QUIET)
    assert_same_network(tmp_path / 'ta.pkl', family['a'])
    merge_pickles([family['a']], tmp_path / 'ties.pkl', 'ties', base=family['parent'], density=1.0, **QUIET)
    assert_same_network(tmp_path / 'ties.pkl', family['a'])


def test_dare_with_drop_zero_is_task_arithmetic_and_drops_otherwise():
    torch.manual_seed(0)
    base, a, b = ({'w': torch.randn(64, 64)} for _ in range(3))
    ta = merge_state_dicts(base, [a, b], 'task-arithmetic', weights=[0.7, 0.4])['w']
    assert torch.equal(merge_state_dicts(base, [a, b], 'dare', drop=0.0, weights=[0.7, 0.4])['w'], ta)
    dropped = merge_state_dicts(base, [a], 'dare', drop=0.5, weights=[1.0])['w'] - base['w']
    delta = a['w'] - base['w']
    kept = dropped != 0
    assert 0.4 < kept.float().mean() < 0.6                                    # about half dropped
    torch.testing.assert_close(dropped[kept], 2 * delta[kept])                 # survivors rescaled by 1/(1-p)
    again = merge_state_dicts(base, [a], 'dare', drop=0.5, weights=[1.0])['w'] - base['w']
    assert torch.equal(again, dropped)                                         # seeded: reproducible


def test_mean_of_fine_tunes_recomputes_w_avg_from_the_merged_mapping(family, tmp_path):
    out = tmp_path / 'mean.pkl'
    merge_pickles([family['a'], family['b']], out, 'mean', **QUIET)
    merged, a, b = G_of(out), G_of(family['a']), G_of(family['b'])
    for name in ('synthesis.b8.conv0.weight', 'mapping.fc1.weight'):
        torch.testing.assert_close(merged.state_dict()[name], (a.state_dict()[name] + b.state_dict()[name]) / 2)
    sampled = mean_w(merged, merged.state_dict())
    torch.testing.assert_close(merged.mapping.w_avg, sampled)
    averaged = (a.mapping.w_avg + b.mapping.w_avg) / 2
    assert not torch.allclose(merged.mapping.w_avg, averaged, atol=1e-4)       # not the inputs' average
    # The inputs' own w_avg are the running means of their mappings: the sampled mean is the
    # same quantity, so the merged one is close to what a training run would have tracked.
    assert (merged.mapping.w_avg - sampled).abs().max() < 1e-6


def test_task_arithmetic_defaults_to_the_mean_task_vector(family, tmp_path):
    merge_pickles([family['a'], family['b']], tmp_path / 'ta.pkl', 'task-arithmetic', base=family['parent'], **QUIET)
    merge_pickles([family['a'], family['b']], tmp_path / 'mean.pkl', 'mean', **QUIET)
    ta, mean = G_of(tmp_path / 'ta.pkl').state_dict(), G_of(tmp_path / 'mean.pkl').state_dict()
    for n in ta:
        torch.testing.assert_close(ta[n], mean[n], rtol=1e-5, atol=1e-6)


def test_the_result_keeps_the_inputs_records(family, tmp_path):
    """Written as the first input's records with new tensors: class names, kwargs and module
    source unchanged (a host snapshot stays a host snapshot)."""
    out = tmp_path / 'm.pkl'
    merge_pickles([family['a'], family['b']], out, 'mean', **QUIET)
    before = SafeUnpickler(open(family['a'], 'rb')).load()
    after = SafeUnpickler(open(out, 'rb')).load()
    for key in ('G', 'G_ema', 'D'):
        assert after[key].meta['module_src'] == before[key].meta['module_src']
        assert after[key].init_kwargs == before[key].init_kwargs


# --- errors and the command line ------------------------------------------------------------

def test_errors_are_one_line(family, tmp_path):
    other_arch = tmp_path / 'wide.pkl'
    G = Generator(**small_G_kwargs(synthesis_kwargs=dict(channel_base=256, channel_max=32, conv_clamp=256,
                                                         architecture='skip')))
    save_network_pkl(dict(G=G, D=Discriminator(**small_D_kwargs()), G_ema=G), other_arch)
    with pytest.raises(NetworkPickleError, match=r'different architectures: .*synthesis\.b'):
        blend_pickles(family['a'], other_arch, tmp_path / 'x.pkl', 8, **QUIET)
    bigger = tmp_path / 'big.pkl'
    G32 = Generator(**small_G_kwargs(img_resolution=32))
    save_network_pkl(dict(G=G32, D=Discriminator(**small_D_kwargs(img_resolution=32)), G_ema=G32), bigger)
    with pytest.raises(NetworkPickleError, match='32px, but .* is 16px'):
        merge_pickles([family['a'], bigger], tmp_path / 'x.pkl', 'mean', **QUIET)
    with pytest.raises(NetworkPickleError, match='give the parent with --base'):
        merge_pickles([family['a'], family['b']], tmp_path / 'x.pkl', 'dare', **QUIET)
    with pytest.raises(ValueError, match="'mean' does not take density"):
        merge_pickles([family['a'], family['b']], tmp_path / 'x.pkl', 'mean', density=0.5, **QUIET)
    with pytest.raises(NetworkPickleError, match='must be one of 0, 4, 8, 16'):
        blend_pickles(family['a'], family['b'], tmp_path / 'x.pkl', 12, **QUIET)
    hostile = tmp_path / 'hostile.pkl'
    data = SafeUnpickler(io.BytesIO(dumps_network_pkl(dict(G=G, D=None, G_ema=G)))).load()
    data['G_ema'].state['_init_kwargs']['mapping_kwargs']['class_name'] = 'os.system'
    save_network_pkl(data, hostile)
    with pytest.raises(UnsafePickleError):
        merge_pickles([family['a'], hostile], tmp_path / 'x.pkl', 'mean', **QUIET)
    assert not (tmp_path / 'x.pkl').exists()
    r = CliRunner().invoke(cli, ['merge', family['a'], family['b'], '--method', 'ties', '--out', str(tmp_path / 'x.pkl')])
    assert r.exit_code != 0 and r.output.strip().count('\n') == 0 and 'error: ' in r.output


def test_cli_writes_pickles_and_sweep_grids(family, tmp_path):
    r = CliRunner().invoke(cli, ['blend', family['a'], family['b'], '--swap-res', '8', '--out', str(tmp_path / 'b.pkl'),
                                 '--grid', str(tmp_path / 'b.png'), '--seeds', '0-2', '--gif', str(tmp_path / 'b.gif')])
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / 'b.png').size == (3 * 16, 4 * 16)                # rows: swap-res 0, 4, 8, 16
    gif = Image.open(tmp_path / 'b.gif')
    assert gif.size == (3 * 16, 16) and gif.n_frames > 20
    r = CliRunner().invoke(cli, ['merge', family['a'], family['b'], '--method', 'task-arithmetic', '--base',
                                 family['parent'], '--scale', '0', '--out', str(tmp_path / 'm.pkl'),
                                 '--grid', str(tmp_path / 'm.png'), '--seeds', '0-2'])
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / 'm.png').size == (3 * 16, 9 * 16)                # 3 inputs + 6 scales
    assert_same_network(tmp_path / 'm.pkl', family['parent'])                    # --scale 0 means 0
