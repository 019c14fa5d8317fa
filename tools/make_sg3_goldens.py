"""Our own stylegan3 goldens (tests/goldens/stylegan3/<name>.npz), computed by a real stylegan3
checkout, for configurations that the three shared fixtures (t32, r32cond, sg2cond32) do not
cover: other resolutions, channel counts, class counts, z/w widths, mapping depths, fp16 flags,
and alias-free layer designs that train.py never builds (layer count, critical layers, margin,
stopbands, filter size, nonlinearity oversampling, radial filters with 3x3 convs, clamping,
output scale).

    python tools/make_sg3_goldens.py --host PATH [--host-commit SHA] [--out DIR] [--configs a,b]

PATH is a stylegan3 checkout (NVlabs/stylegan3). This script holds none of its code: it puts
the checkout on sys.path, imports its modules and runs them, as the shared fixtures' generator
did (../shared/fixtures/stylegan3/README.md: same construction, seeds, perturbation and
inputs). Only numbers leave it: pickles of the host's modules embed its source, so none is
written. Each npz (compressed, no pickled objects) holds

* ``G/<name>``, ``D/<name>``: the state_dict tensors of G and D under the host's names;
* ``inputs/z``, ``inputs/c`` and, for the alias-free G, ``inputs/transform`` (the inverse
  image transform that gen_images.py writes into ``synthesis.input.transform``);
* ``outputs/*``: what the host computed from them (``meta['calls']`` says how);
* ``meta``: one JSON document (its UTF-8 bytes, uint8): provenance, G's and D's class and init kwargs exactly as the
  host's persistence records them, the settings, seeds, calls and, for the alias-free G, the
  design the host derived for every layer (``tests.helpers.goldens.sg3_synthesis_design``).

The checks: tests/plugin/hosts/test_stylegan3_own_goldens.py.
"""
import argparse
import copy
import datetime
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FORMAT = 'cocktail stylegan3 own golden v1'
HOST_REPO = 'NVlabs/stylegan3'

# The fixtures' seeds (README "Weights"); there is no G_ema here, so no 2001.
SEEDS = dict(G_init=1000, D_init=1001, G_perturb=2000, D_perturb=2002, magnitude_ema_calibration=2003)
G_PARAM_STD, W_AVG_STD, D_PARAM_STD = 0.05, 0.1, 0.05
# gen_images.py --translate=-0.2,0.3 --rotate=-20 (other values than the fixtures' 0.25,-0.125 / 10).
TRANSLATE, ROTATE = (-0.2, 0.3), -20.0

# Each config: train.py's options (cfg, cbase, cmax, map_depth, fp32, mbstd_group) as its main()
# turns them into G_kwargs/D_kwargs, then extra kwargs that train.py has no option for (appended
# after its statements, so they come last in init_kwargs). batch: samples per call (2 at 64 px
# keeps the npz small; D's minibatch-stddev groups are min(group, batch)); img_psi07: also store
# the truncated image (the stylegan2 G always: it has no transform image).
def config(exercises, **settings):
    """One config: ``settings`` over the defaults (stylegan3-t, RGB, unconditional, z = w = 32,
    --fp32, mbstd group 4, batch 4, no extras)."""
    defaults = dict(cfg='stylegan3-t', img_channels=3, c_dim=0, z_dim=32, w_dim=32, map_depth=None, fp32=True,
                    mbstd_group=4, batch=4, img_psi07=False, G_extra={}, D_extra={})
    return dict(exercises=exercises, **dict(defaults, **settings))


CONFIGS = {
    't16c5': config(
        'stylegan3-t exactly as train.py builds it, at 16 px (every layer sampled at the image rate from the '
        'first on: up/down factor 2 throughout) with 5 classes; channels 16..8; D with a 5-class label '
        'mapping, mbstd group 4',
        resolution=16, c_dim=5, cbase=128, cmax=16, img_psi07=True),
    'r64': config(
        'stylegan3-r as train.py builds it without --fp32 (num_fp16_res 4 flagged, conv_clamp 256) at 64 px, '
        'unconditional: sampling rates 16..64, radial jinc filters in 12 layers, 1x1 convs, doubled '
        'channels 16..4',
        cfg='stylegan3-r', resolution=64, cbase=128, cmax=8, fp32=False, batch=2),
    't64z32w48': config(
        'stylegan3-t at 64 px, grayscale, z 32 / w 48, mapping depth 3, and a layer design train.py never '
        'builds: 8 layers, 3 critically sampled, margin 4, last stopband 2**0.5 relative; D mbstd group 2',
        resolution=64, img_channels=1, w_dim=48, cbase=256, cmax=16, map_depth=3, mbstd_group=2, batch=2,
        G_extra=dict(num_layers=8, num_critical=3, margin_size=4, last_stopband_rel=2 ** 0.5)),
    't32c3x': config(
        'an alias-free G at 32 px with 3 classes off every default: 6 layers, 1 critically sampled (then '
        'ToRGB), odd margin 3, first cutoff 1.5 and stopband 2**1.7 (first rate 8), filter_size 4, '
        'lrelu_upsampling 4 (up factors 4 and 8, down 4), radial down filters with 3x3 convs, conv_clamp 1 '
        '(the clamp is active), output_scale 0.5',
        resolution=32, c_dim=3, z_dim=24, w_dim=24, cbase=128, cmax=16,
        G_extra=dict(num_layers=6, num_critical=1, margin_size=3, first_cutoff=1.5, first_stopband=2 ** 1.7,
                     filter_size=4, lrelu_upsampling=4, use_radial_filters=True, conv_clamp=1.0,
                     output_scale=0.5)),
    'sg2c3': config(
        "the stylegan3 repo's --cfg stylegan2 at 64 px with 3 classes, without --fp32 (fp16 flagged on 4 "
        'resolutions, run in fp32 off CUDA; conv_clamp 256), mapping depth 4 (--map-depth), fused modconv '
        "'inference_only', noise const; D with mbstd group 2 and 2 stddev channels, cmap_dim 8",
        cfg='stylegan2', resolution=64, c_dim=3, cbase=256, cmax=8, map_depth=4, fp32=False, mbstd_group=2,
        batch=2, img_psi07=True, D_extra=dict(cmap_dim=8, epilogue_kwargs=dict(mbstd_num_channels=2))),
}


def import_host(path):
    """The checkout's dnnlib, its gen_images.make_transform, and torch (single-threaded)."""
    sys.path.insert(0, str(REPO))
    from tests.helpers import PKG_RESOURCES_STAND_IN
    exec(PKG_RESOURCES_STAND_IN, {})            # the host's ops import pkg_resources
    sys.path.insert(0, str(path))
    import dnnlib
    import torch
    from gen_images import make_transform
    torch.set_num_threads(1)                    # the fixtures' runtime
    return dnnlib, make_transform, torch


def train_py_kwargs(dnnlib, cfg):
    """G_kwargs and D_kwargs as the stylegan3 repo's train.py assembles them (same statements,
    same order: the order of init_kwargs), z_dim/w_dim in place of its 512, then our extras."""
    G = dnnlib.EasyDict(class_name=None, z_dim=cfg['z_dim'], w_dim=cfg['w_dim'], mapping_kwargs=dnnlib.EasyDict())
    D = dnnlib.EasyDict(class_name='training.networks_stylegan2.Discriminator', block_kwargs=dnnlib.EasyDict(),
                        mapping_kwargs=dnnlib.EasyDict(), epilogue_kwargs=dnnlib.EasyDict())
    G.channel_base = D.channel_base = cfg['cbase']
    G.channel_max = D.channel_max = cfg['cmax']
    G.mapping_kwargs.num_layers = (8 if cfg['cfg'] == 'stylegan2' else 2) if cfg['map_depth'] is None \
        else cfg['map_depth']
    D.block_kwargs.freeze_layers = 0
    D.epilogue_kwargs.mbstd_group_size = cfg['mbstd_group']
    if cfg['cfg'] == 'stylegan2':
        G.class_name = 'training.networks_stylegan2.Generator'
        G.fused_modconv_default = 'inference_only'
    else:
        G.class_name = 'training.networks_stylegan3.Generator'
        G.magnitude_ema_beta = 0.5 ** (32 / (20 * 1e3))         # --batch=32, as the fixtures
        if cfg['cfg'] == 'stylegan3-r':
            G.conv_kernel = 1
            G.channel_base *= 2
            G.channel_max *= 2
            G.use_radial_filters = True
    if cfg['fp32']:
        G.num_fp16_res = D.num_fp16_res = 0
        G.conv_clamp = D.conv_clamp = None
    for kwargs, extra in ((G, cfg['G_extra']), (D, cfg['D_extra'])):
        for key, value in extra.items():
            if isinstance(value, dict):
                kwargs[key].update(value)
            else:
                kwargs[key] = value
    return G, D


def perturb(torch, module, seed, std):
    """Every parameter plus ``std * randn`` (named_parameters() order) under ``seed``."""
    torch.manual_seed(seed)
    for p in module.parameters():
        p.add_(torch.randn_like(p) * std)


def one_hot(torch, n, c_dim):
    """Row i = one-hot(i % c_dim); [n, 0] when unconditional."""
    c = torch.zeros([n, c_dim])
    if c_dim:
        c[torch.arange(n), torch.arange(n) % c_dim] = 1
    return c


def calibrate_magnitude_ema(torch, G):
    """Fixtures' step 3: one pass of the host's own update path with beta 0 sets each layer's
    magnitude_ema to the mean square of its input for a calibration batch."""
    torch.manual_seed(SEEDS['magnitude_ema_calibration'])
    z = torch.randn([8, G.z_dim])
    ws = G.mapping(z, one_hot(torch, 8, G.c_dim), truncation_psi=1)
    layers = [getattr(G.synthesis, name) for name in G.synthesis.layer_names]
    betas = [layer.magnitude_ema_beta for layer in layers]
    for layer in layers:
        layer.magnitude_ema_beta = 0.0
    G.synthesis(ws, update_emas=True)
    for layer, beta in zip(layers, betas):
        layer.magnitude_ema_beta = beta


def none_buffers(module):
    """Buffers registered as None (the ToRGB filters): absent from state_dict, part of the layout."""
    return [f'{owner}.{name}'.lstrip('.') for owner, m in module.named_modules()
            for name, b in m._buffers.items() if b is None]


def class_record(module, class_name):
    return dict(class_name=class_name, init_args=list(module.init_args), init_kwargs=module.init_kwargs,
                none_buffers=none_buffers(module))


CALLS = {
    'ws_psi1': 'G.mapping(z, c, truncation_psi=1)',
    'ws_psi07': 'G.mapping(z, c, truncation_psi=0.7)',
    'ws_psi05_cutoff': 'G.mapping(z, c, truncation_psi=0.5, truncation_cutoff=G.num_ws // 2)',
    'img': "G(z, c, truncation_psi=1, noise_mode='const')",
    'img_psi07': "G(z, c, truncation_psi=0.7, noise_mode='const')",
    'img_transform': "deepcopy(G): synthesis.input.transform.copy_(transform); synthesis(ws_psi1, noise_mode='const')"
                     ' (alias-free only)',
    'd': 'D(img, c)',
    'd_psi07': 'D(img_psi07, c)',
    'd_transform': 'D(img_transform, c)',
}


def generate(name, cfg, dnnlib, make_transform, torch, provenance):
    """(arrays, meta) of one config."""
    from tests.helpers.goldens import sg3_synthesis_design
    G_kwargs, D_kwargs = train_py_kwargs(dnnlib, cfg)
    common = dict(c_dim=cfg['c_dim'], img_resolution=cfg['resolution'], img_channels=cfg['img_channels'])
    record_kwargs = copy.deepcopy(dict(G_kwargs=G_kwargs, D_kwargs=D_kwargs, common_kwargs=common))
    torch.manual_seed(SEEDS['G_init'])
    G = dnnlib.util.construct_class_by_name(**G_kwargs, **common)
    torch.manual_seed(SEEDS['D_init'])
    D = dnnlib.util.construct_class_by_name(**D_kwargs, **common)
    alias_free = G_kwargs.class_name.endswith('networks_stylegan3.Generator')
    with torch.no_grad():
        perturb(torch, G, SEEDS['G_perturb'], G_PARAM_STD)
        G.mapping.w_avg.copy_(torch.randn_like(G.mapping.w_avg) * W_AVG_STD)
        if alias_free:
            calibrate_magnitude_ema(torch, G)
        perturb(torch, D, SEEDS['D_perturb'], D_PARAM_STD)
    G.eval().requires_grad_(False)
    D.eval().requires_grad_(False)

    n = cfg['batch']
    z = torch.from_numpy(np.concatenate([np.random.RandomState(s).randn(1, G.z_dim) for s in range(n)])
                         .astype(np.float32))
    c = one_hot(torch, n, G.c_dim)
    arrays = {'inputs/z': z, 'inputs/c': c}
    out = {}
    with torch.no_grad():
        out['ws_psi1'] = G.mapping(z, c, truncation_psi=1)
        out['ws_psi07'] = G.mapping(z, c, truncation_psi=0.7)
        out['ws_psi05_cutoff'] = G.mapping(z, c, truncation_psi=0.5, truncation_cutoff=G.num_ws // 2)
        out['img'] = G(z, c, truncation_psi=1, noise_mode='const')
        if cfg['img_psi07'] or not alias_free:
            out['img_psi07'] = G(z, c, truncation_psi=0.7, noise_mode='const')
        if alias_free:
            transform = torch.from_numpy(np.linalg.inv(make_transform(TRANSLATE, ROTATE)).astype(np.float32))
            arrays['inputs/transform'] = transform
            moved = copy.deepcopy(G)
            moved.synthesis.input.transform.copy_(transform)
            out['img_transform'] = moved.synthesis(out['ws_psi1'], noise_mode='const')
        for key in [k for k in out if k.startswith('img')]:
            out['d' + key[3:]] = D(out[key], c)
    arrays.update({f'outputs/{k}': v for k, v in out.items()})
    arrays.update({f'G/{k}': v for k, v in G.state_dict().items()})
    arrays.update({f'D/{k}': v for k, v in D.state_dict().items()})
    arrays = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in arrays.items()}

    meta = dict(
        format=FORMAT, name=name, exercises=cfg['exercises'], **provenance,
        settings={k: v for k, v in cfg.items() if k != 'exercises'},
        train_py_kwargs=record_kwargs,
        construction='dnnlib.util.construct_class_by_name(**G_kwargs, **common_kwargs) under torch.manual_seed('
                     'seeds.G_init), the same for D under seeds.D_init',
        seeds=SEEDS,
        perturbation=dict(
            G_param_std=G_PARAM_STD, G_w_avg_std=W_AVG_STD, D_param_std=D_PARAM_STD,
            steps='as ../shared/fixtures/stylegan3/README.md "Weights" steps 1, 2, 3 (alias-free only) and 5; '
                  'no G_ema: the goldens are of G',
        ),
        inputs=dict(z='row s = np.random.RandomState(s).randn(1, z_dim).astype(float32), s = 0..batch-1',
                    c='row s = one-hot(s % c_dim); [batch, 0] when c_dim = 0',
                    transform=f'float32(np.linalg.inv(gen_images.make_transform({TRANSLATE}, {ROTATE})))'),
        calls={k: CALLS[k] for k in out},
        mode='eval, torch.no_grad(), CPU, one batch per call',
        num_ws=int(G.num_ws),
        G=class_record(G, G_kwargs.class_name), D=class_record(D, D_kwargs.class_name),
        state_dict_order=dict(G=list(G.state_dict()), D=list(D.state_dict())),
        parameters=dict(G=[k for k, _ in G.named_parameters()], D=[k for k, _ in D.named_parameters()]),
    )
    if alias_free:
        meta['sg3_synthesis'] = sg3_synthesis_design(G.synthesis)
    return arrays, meta


def save(path, arrays, meta):
    """A compressed npz, meta as the UTF-8 bytes of its JSON (uint8): loads with allow_pickle=False."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(meta, separators=(',', ':'))
    np.savez_compressed(path, meta=np.frombuffer(text.encode(), dtype=np.uint8), **arrays)


def host_commit(path, given):
    if given:
        return given
    r = subprocess.run(['git', '-C', str(path), 'rev-parse', 'HEAD'], capture_output=True, text=True)
    top = subprocess.run(['git', '-C', str(path), 'rev-parse', '--show-toplevel'], capture_output=True, text=True)
    # Only the checkout's own repository names its commit (not a repository it sits inside).
    if r.returncode == 0 and Path(top.stdout.strip()).resolve() == Path(path).resolve():
        return r.stdout.strip()
    return 'unknown (pass --host-commit)'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--host', required=True, help='a stylegan3 checkout (NVlabs/stylegan3)')
    parser.add_argument('--host-commit', help="the checkout's commit (default: git rev-parse HEAD there)")
    parser.add_argument('--out', default=str(REPO / 'tests' / 'goldens' / 'stylegan3'), help='output folder')
    parser.add_argument('--configs', default=','.join(CONFIGS), help=f'comma-separated, of {", ".join(CONFIGS)}')
    args = parser.parse_args(argv)
    names = [n for n in args.configs.split(',') if n]
    unknown = sorted(set(names) - set(CONFIGS))
    if unknown:
        parser.error(f'unknown configs {unknown}; known: {", ".join(CONFIGS)}')
    host = Path(args.host).resolve()
    dnnlib, make_transform, torch = import_host(host)
    import scipy
    provenance = dict(
        host=dict(repo=HOST_REPO, commit=host_commit(host, args.host_commit)),
        generator_script='tools/make_sg3_goldens.py',
        command='python tools/make_sg3_goldens.py --host HOST' + (f' --host-commit {args.host_commit}' if
                                                                  args.host_commit else '')
                + ' --configs ' + ','.join(names),
        date=datetime.date.today().isoformat(),
        runtime=dict(torch=torch.__version__, numpy=np.__version__, scipy=scipy.__version__,
                     python=sys.version.split()[0], device='cpu', torch_num_threads=torch.get_num_threads()),
    )
    for name in names:
        arrays, meta = generate(name, CONFIGS[name], dnnlib, make_transform, torch, provenance)
        path = Path(args.out) / f'{name}.npz'
        save(path, arrays, meta)
        print(f'{path}: {path.stat().st_size / 1024:.0f} KB, {len(arrays)} arrays')


if __name__ == '__main__':
    main()
