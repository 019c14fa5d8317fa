"""Hyper-modulation on the stylegan3 repo's generators, from sources laid out as a user's runs:
its StyleGAN2 (``--cfg stylegan2`` there) and its alias-free StyleGAN3-T and -R generators
train into class-conditional generators, called with that repo's ``update_emas`` convention
through the hyper mapping. In an alias-free source every layer but ToRGB is hyper-modulated
(HyperAliasFreeLayer: the layer's own weight, filters, gains and magnitude EMA); the Fourier
input and ToRGB stay the source's. Issue 20: 32 px stylegan3-t (and -r) sources on the CPU."""
import copy
import math

import pytest
import torch

from plugin import load_network_pkl, save_network_pkl
from plugin.domains import write_domains_zip
from plugin.hosts.embedded import networks_stylegan2 as sg2
from plugin.layouts import is_alias_free_synthesis, takes_update_emas
from training_ext.hypermod.loss import self_init_distance
from training_ext.hypermod.networks import (HyperAliasFreeLayer, HyperGenerator, discriminator_from_source,
                                            hyper_from_source, hyper_layers)
from training_ext.hypermod.pipeline import HypermodPipeline
from tests.helpers import run_plugin_cli, small_sg3_D, small_sg3_G
from tests.helpers.hypermod import class_images, frozen_state, g_steps, one_hot, steps_on_new_classes

pytestmark = pytest.mark.usefixtures('one_thread')

RES = 32
# The stylegan3 repo's -r: 1x1 convs and radial down filters (its train.py also doubles the
# channels, which changes nothing here).
DESIGNS = {'t': {}, 'r': dict(conv_kernel=1, use_radial_filters=True)}


def trained_looking(G, seed=0):
    """G with what a trained alias-free generator has and a fresh one lacks (zero biases, unit
    magnitude EMAs, an identity input transform), so that the tests see them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in G.synthesis.layer_names:
            layer = getattr(G.synthesis, name)
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=g) * 0.2)
            layer.magnitude_ema.fill_(0.3 + 1.5 * float(torch.rand([], generator=g)))
        cos, sin = math.cos(0.3), math.sin(0.3)          # a user transform: rotation and translation
        G.synthesis.input.transform.copy_(torch.tensor([[cos, -sin, 0.1], [sin, cos, -0.2], [0, 0, 1]]))
    return G


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('hyper_sg3')
    for run in ('00000-sg2-repo', '00001-sg3t', '00002-sg3r'):
        (tmp / run).mkdir()
    torch.manual_seed(0)
    G = sg2.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                      mapping_kwargs=dict(num_layers=2), channel_base=128, channel_max=16)
    sg2_source = tmp / '00000-sg2-repo' / 'network-snapshot-000040.pkl'
    save_network_pkl(dict(training_set_kwargs=None, G=G, D=small_sg3_D(0), G_ema=G), sg2_source)
    world = dict(tmp=tmp, sg2=str(sg2_source),
                 labelled16=write_domains_zip(tmp / 'dr16.zip', ['discs', 'rings'], count=16, resolution=16),
                 labelled=write_domains_zip(tmp / 'dr32.zip', ['discs', 'rings'], count=16, resolution=RES))
    for design, run in (('t', '00001-sg3t'), ('r', '00002-sg3r')):
        G = trained_looking(small_sg3_G(0, img_resolution=RES, **DESIGNS[design]))
        path = tmp / run / 'network-snapshot-000000.pkl'
        save_network_pkl(dict(training_set_kwargs=None, G=G, D=small_sg3_D(0, img_resolution=RES), G_ema=G), path)
        world[design] = str(path)
    return world


def source(world, design):
    data = load_network_pkl(world[design])
    return data['G_ema'].eval(), data['D']


def run(world, source_path, name, **over):
    flags = dict(data=world['labelled'], cond=True, outdir=str(world['tmp']), batch=8, hyper_rank=4, kimg=0.05,
                 tick=0.05, snap=1, seed=0, device='cpu')
    flags.update(over)
    pipe = HypermodPipeline(flags, str(world['tmp'] / name), source_path, log=lambda *a: None)
    return pipe, pipe.run()


def test_the_stylegan3_repos_stylegan2_trains_into_a_conditional_generator(world):
    pipe, final = run(world, world['sg2'], 'sg2', data=world['labelled16'])
    H = load_network_pkl(final)['G_ema']
    assert takes_update_emas(H.mapping), 'the hyper mapping must follow the source mapping\'s convention'
    start = load_network_pkl(pipe.state['stages']['stage2-init']['output'])['G_ema']
    changed = [n for n, p in H.named_parameters() if not torch.equal(p, dict(start.named_parameters())[n])]
    assert changed, 'the conditional stage did not train'
    z = torch.randn([4, H.z_dim])
    with torch.no_grad():
        a, b = (H(z, torch.eye(2)[[k] * 4], noise_mode='const') for k in (0, 1))
    assert a.shape == (4, 3, 16, 16) and torch.isfinite(a).all() and not torch.equal(a, b)


def max_class_diffs(H, G, z):
    """max |H(z, class k) - G(z)| for every class k (constant noise)."""
    with torch.no_grad():
        ref = G(z, None, noise_mode='const')
        return [float((class_images(H, z, k) - ref).abs().max()) for k in range(H.num_classes)]


# The layers of these sources reach |x| 2.5..4.6 (measured): a clamp at 2 is active.
@pytest.mark.parametrize('design', [*DESIGNS, 't-clamp2'])
def test_source_init_reproduces_the_alias_free_source_for_every_class(design):
    """(a) Every layer but ToRGB is hyper-modulated; with the 'source' head init the hyper G is
    the source for every class (its input transform, biases, magnitude EMAs and clamp included),
    and with update_emas it moves the magnitude EMAs as the source does."""
    kwargs = dict(conv_clamp=2) if design == 't-clamp2' else DESIGNS[design]
    G = trained_looking(small_sg3_G(0, img_resolution=RES, **kwargs)).eval()
    H = hyper_from_source(G, 3, rank=8).eval()
    layers = dict(hyper_layers(H.synthesis.net))
    assert sorted(layers) == sorted(n for n in G.synthesis.layer_names if not getattr(G.synthesis, n).is_torgb)
    assert all(type(m) is HyperAliasFreeLayer for m in layers.values())
    assert type(getattr(H.synthesis.net, G.synthesis.layer_names[-1])) is type(getattr(G.synthesis,
                                                                                      G.synthesis.layer_names[-1]))
    z = torch.randn(8, G.z_dim, generator=torch.Generator().manual_seed(1))
    diffs = max_class_diffs(H, G, z)
    print(f'stylegan3-{design}: max |hyper - source| per class at construction: '
          + ', '.join(f'{d:.1e}' for d in diffs))
    assert max(diffs) < 1e-5

    G2, H2 = copy.deepcopy(G), copy.deepcopy(H)
    with torch.no_grad():
        ref = G2(z, None, noise_mode='const', update_emas=True)
        out = H2(z, one_hot([2] * 8, 3), noise_mode='const', update_emas=True)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    for name in G.synthesis.layer_names:
        ema = getattr(H2.synthesis.net, name).magnitude_ema
        torch.testing.assert_close(ema, getattr(G2.synthesis, name).magnitude_ema, rtol=1e-5, atol=0)
        assert ema != getattr(G.synthesis, name).magnitude_ema, f'{name}: update_emas did not move the EMA'


def test_source_init_reproduces_the_stylegan3_repos_t32_fixture(sg3_fixtures_dir):
    """(a) on the stylegan3-t network the real stylegan3 repo wrote (32 px, 14 layers)."""
    G = load_network_pkl(sg3_fixtures_dir / 't32' / 'network-snapshot.pkl')['G_ema'].eval()
    H = hyper_from_source(G, 2, rank=8).eval()
    diffs = max_class_diffs(H, G, torch.randn(8, G.z_dim, generator=torch.Generator().manual_seed(1)))
    print('t32 fixture: max |hyper - source| per class: ' + ', '.join(f'{d:.1e}' for d in diffs))
    assert max(diffs) < 1e-5


@pytest.mark.parametrize('design,anchor,decorrelate', [('t', None, True), ('t', 0, True), ('t', 0, False),
                                                        ('r', None, True)])
def test_alias_free_classes_learn_on_their_own_weights(world, design, anchor, decorrelate):
    """(b) As test_hypermod's StyleGAN2 test: with the defaults (frozen offsets, decorrelated
    task vectors), G steps on classes 1 and 2 leave class 0 exactly as it was and change 1 and
    2; with an anchor class 0 stays the source whatever the batch holds, decorrelated or not
    (its task vector is zero either way)."""
    G_src, D_src = source(world, design)
    torch.manual_seed(0)
    G = hyper_from_source(G_src, 3, rank=4, freeze_offsets=True, decorrelate=decorrelate, anchor=anchor)
    if decorrelate:
        G.synthesis.task.decorrelate_classes()
    D = discriminator_from_source(D_src, 3)
    G, z, ref, kept, moved = steps_on_new_classes(G, D, G_src)
    print(f'stylegan3-{design}, anchor {anchor}, decorrelate {decorrelate}: max |class 0 after - before| '
          f'{kept:.1e}; mean |class k - source| for 1, 2: ' + ', '.join(f'{m:.1e}' for m in moved))
    # Decorrelated, class 0's task vector is zeroed by a mask: exact. Without, the anchor's is
    # MLP(c @ E) - MLP(E[anchor]): zero up to the rounding of two matmul shapes (measured 1.5e-7).
    assert kept == 0 if decorrelate else kept < 1e-5
    assert min(moved) > 1e-4
    if anchor is not None:
        G = g_steps(G, D, classes=[0, 1, 2])
        assert float((class_images(G, z, 0) - ref).abs().max()) < 1e-5


def test_frozen_source_weights_stay_frozen_and_the_result_pickle_generates_per_class(world, tmp_path):
    """(c) The source's weights are buffers (no gradient) in the hyper layers; they, ToRGB, the
    Fourier input, the affines, the mapping and the magnitude EMAs (G steps do not update
    them) are bit-identical after G steps, while the heads have moved. (d) The result's pickle
    loads through plugin.pickles and generates what the network did, per class."""
    G_src, D_src = source(world, 't')
    G = hyper_from_source(G_src, 2, rank=4, freeze_offsets=True, decorrelate=True)
    G.synthesis.task.decorrelate_classes()
    for name, layer in hyper_layers(G.synthesis.net):
        assert not hasattr(layer, 'weight') and not hasattr(layer, 'bias'), name
        for buf in ('base_weight', 'weight_mean', 'weight_std', 'base_bias'):
            t = getattr(layer, buf)
            assert not t.requires_grad and f'synthesis.net.{name}.{buf}' in dict(G.named_buffers())
    start, heads = frozen_state(G), {n: p.detach().clone() for n, p in G.named_parameters() if '.gamma.' in n}
    assert any('magnitude_ema' in n for n in start) and any('synthesis.net.input.' in n for n in start)
    G = g_steps(G, discriminator_from_source(D_src, 2), classes=[0, 1], steps=2)
    end = frozen_state(G)
    assert start.keys() == end.keys() and [n for n in start if not torch.equal(start[n], end[n])] == []
    assert any(not torch.equal(p, heads[n]) for n, p in G.named_parameters() if n in heads), 'the heads did not train'

    save_network_pkl(dict(training_set_kwargs=None, G=G, D=None, G_ema=G), tmp_path / 'hyper.pkl')
    H = load_network_pkl(tmp_path / 'hyper.pkl')['G_ema'].eval()
    assert type(H) is HyperGenerator and is_alias_free_synthesis(H.synthesis.net) and H.c_dim == 2
    z = torch.randn(4, G.z_dim)
    imgs = [class_images(H, z, k) for k in range(2)]
    for k in range(2):
        assert torch.equal(imgs[k], class_images(G, z, k))
    assert imgs[0].shape == (4, 3, RES, RES) and not torch.allclose(imgs[0], imgs[1])


def test_self_initialisation_compares_alias_free_layers(world):
    """The paper's init needs self-initialisation: its distance to the source, summed over the
    alias-free layers' outputs, is ~0 for the source init, large for the paper's init, and its
    gradient reaches the heads."""
    G_src, _ = source(world, 't')
    z, c = torch.randn(4, G_src.z_dim), one_hot([0] * 4, 2)
    H = hyper_from_source(G_src, 2, rank=4)
    with torch.no_grad():
        assert float(self_init_distance(H.mapping, H.synthesis, G_src, z, c)) < 1e-4
    H = hyper_from_source(G_src, 2, rank=4, init='reference')
    loss = self_init_distance(H.mapping, H.synthesis, G_src, z, c)
    loss.backward()
    layer = hyper_layers(H.synthesis.net)[0][1]
    assert float(loss.detach()) > 1e-2 and layer.beta.offset.grad.abs().sum() > 0


@pytest.mark.parametrize('design', DESIGNS)
def test_an_alias_free_run_trains_into_a_conditional_alias_free_generator(world, design):
    """(e) The pipeline from a run's snapshot of a 32 px stylegan3-t (-r) source: a tiny
    conditional stage leaves an alias-free conditional generator whose classes differ, and
    whose frozen parts (the source's weights, ToRGB, the Fourier input) are the stage's start.
    ``python -m plugin generate --class 1`` samples it."""
    pipe, final = run(world, world[design], f'sg3{design}')
    data = load_network_pkl(final)
    H = data['G_ema'].eval()
    assert type(H) is HyperGenerator and is_alias_free_synthesis(H.synthesis.net) and H.c_dim == 2
    assert takes_update_emas(H.mapping)
    start = load_network_pkl(pipe.state['stages']['stage2-init']['output'])['G']
    a = {n: t for n, t in frozen_state(start).items() if not n.endswith('magnitude_ema')}   # those move in Dmain
    b = frozen_state(data['G'])
    assert [n for n in a if not torch.equal(a[n], b[n])] == []
    changed = [n for n, p in data['G'].named_parameters() if n not in a and not torch.equal(p, start.state_dict()[n])]
    assert any('.gamma.' in n or '.beta.' in n for n in changed), 'the heads did not train'
    z = torch.randn(4, H.z_dim, generator=torch.Generator().manual_seed(2))
    a, b = (class_images(H, z, k) for k in (0, 1))
    print(f'stylegan3-{design} after 0.05 kimg: mean |class 0 - class 1| {(a - b).abs().mean():.2e} '
          f'(mean |image| {a.abs().mean():.2e})')     # measured (-t): 6.1e-05 (5.1e-02)
    assert a.shape == (4, 3, RES, RES) and torch.isfinite(a).all() and (a - b).abs().mean() > 1e-5
    if design == 't':
        out = world['tmp'] / 'gen-sg3t'
        r = run_plugin_cli('generate', final, '--seeds', '0-1', '--class', '1', '--outdir', out)
        assert r.returncode == 0, r.stderr
        assert len(list(out.glob('seed*.png'))) == 2
