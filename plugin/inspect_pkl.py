"""What a network pickle holds, for people: ``python -m plugin inspect net.pkl``."""
import os

import torch

from .easydict import to_plain
from .pickles import NetworkPickleError, PersistentRecord, UnsafePickleError, load_network_pkl, rebuild_module


def _count(record):
    params = sum(t.numel() for _, t, kind in record.named_tensors() if kind == 'parameter')
    buffers = sum(t.numel() for _, t, kind in record.named_tensors() if kind == 'buffer')
    return params, buffers


def _generator_info(module):
    info = dict(z_dim=module.z_dim, c_dim=module.c_dim, w_dim=module.w_dim, num_ws=module.num_ws,
                resolution=module.img_resolution, img_channels=module.img_channels, conditional=module.c_dim > 0)
    syn = module.synthesis
    if all(hasattr(syn, f'b{r}') for r in getattr(syn, 'block_resolutions', [None])):
        blocks = [getattr(syn, f'b{r}') for r in syn.block_resolutions]
        info.update(architecture=blocks[0].architecture,
                    channels={b.resolution: b.conv1.out_channels for b in blocks},
                    fp16_resolutions=[b.resolution for b in blocks if b.use_fp16],
                    conv_clamp=blocks[0].conv1.conv_clamp)
    elif hasattr(syn, 'layer_names') and hasattr(syn, 'input'):      # alias-free (stylegan3-t/-r)
        layers = [getattr(syn, n) for n in syn.layer_names]
        info.update(alias_free='stylegan3-r' if any(layer.down_radial for layer in layers) else 'stylegan3-t',
                    layer_channels=[syn.input.channels] + [layer.out_channels for layer in layers],
                    conv_kernel=layers[0].conv_kernel, conv_clamp=layers[0].conv_clamp)
    if hasattr(module.mapping, 'num_layers'):
        info['mapping_layers'] = module.mapping.num_layers
    else:                                 # a plugin mapping (bypass: the latent generator)
        info['mapping'] = type(module.mapping).__name__ + (f' ({module.mapping.mode})'
                                                           if hasattr(module.mapping, 'mode') else '')
    parts = getattr(syn, 'syntheses', None)
    if parts is not None:                 # a plugin wrapper around host generators (mining)
        info['wraps_generators'] = len(parts)
        info['wrapper_space'] = getattr(module.mapping, 'space', None)
    return info


def _discriminator_info(module):
    blocks = [getattr(module, f'b{r}') for r in module.block_resolutions]
    frozen = [n for n, _ in module.named_buffers() if n.endswith('.weight')]
    return dict(
        c_dim=module.c_dim, cmap_dim=module.cmap_dim, resolution=module.img_resolution,
        img_channels=module.img_channels, conditional=module.c_dim > 0,
        architecture=blocks[0].architecture if blocks else module.b4.architecture,
        channels={b.resolution: b.conv0.out_channels for b in blocks},
        fp16_resolutions=[b.resolution for b in blocks if b.use_fp16],
        mbstd_group_size=module.b4.mbstd.group_size if module.b4.mbstd is not None else None,
        frozen_layers=sorted({n.rsplit('.', 2)[0] for n in frozen}),
    )


def describe(path):
    """A JSON-friendly description of the pickle at ``path``."""
    data = load_network_pkl(path, rebuild=False)
    out = dict(file=os.fspath(path), bytes=os.path.getsize(path), keys=list(map(str, data.keys())), entries={})
    for key, value in data.items():
        if key == 'training_state' and isinstance(value, dict):
            out['entries'][key] = dict(kind='training_state', kimg=value.get('cur_nimg', 0) / 1000,
                                       tick=value.get('cur_tick'), augment_p=value.get('augment_p'),
                                       optimizers=sorted(value.get('optimizers', {})))
            continue
        if not isinstance(value, PersistentRecord):
            out['entries'][key] = dict(kind=type(value).__name__, value=to_plain(value) if isinstance(value, dict) else None)
            continue
        params, buffers = _count(value)
        entry = dict(kind='network', class_name=value.class_name, family=value.family, parameters=params,
                     buffer_elements=buffers, init_kwargs=to_plain(value.init_kwargs))
        try:
            module = rebuild_module(value, what=f'{os.fspath(path)}[{key}]')
        except UnsafePickleError:
            raise                           # a hostile file is refused as a whole, not described
        except NetworkPickleError as e:
            module, entry['error'] = None, str(e)
        if module is None:
            entry['rebuilt'] = False
            if value.class_name == 'AugmentPipe':
                p = value.state.get('_buffers', {}).get('p')
                entry['p'] = float(p) if isinstance(p, torch.Tensor) else None
        else:
            entry['rebuilt'] = True
            if hasattr(module, 'synthesis') and hasattr(module, 'mapping'):
                entry.update(_generator_info(module))
            elif hasattr(module, 'b4') and hasattr(module, 'block_resolutions'):
                entry.update(_discriminator_info(module))
        out['entries'][key] = entry
    return out


def format_description(info):
    lines = [f"{info['file']}  ({info['bytes'] / 1e6:.1f} MB)  keys: {', '.join(info['keys'])}"]
    for key, e in info['entries'].items():
        if e['kind'] == 'training_state':
            p = f", augment p {e['augment_p']:.4g}" if e.get('augment_p') is not None else ''
            lines.append(f"{key}: resumable at kimg {e['kimg']:.1f}, tick {e['tick']}{p}, optimiser state for "
                         f"{', '.join(e['optimizers']) or 'none'}")
            continue
        if e['kind'] != 'network':
            value = e.get('value')
            lines.append(f'{key}: {value if value is not None else e["kind"]}')
            continue
        head = f"{key}: {e['class_name']} [{e['family']}]  {e['parameters']:,} parameters"
        lines.append(head)
        if 'error' in e:
            lines.append(f"    cannot rebuild: {e['error']}")
        elif not e['rebuilt']:
            extra = f", p = {e['p']:.4g}" if e.get('p') is not None else ''
            lines.append(f'    kept as data (no class for it in this host){extra}')
        if 'wraps_generators' in e:
            lines.append(f"    wraps {e['wraps_generators']} generator(s), miner in {e['wrapper_space']} space")
        if 'z_dim' in e:
            lines.append(f"    {e['resolution']}x{e['resolution']}x{e['img_channels']}  z_dim {e['z_dim']}  "
                         f"w_dim {e['w_dim']}  num_ws {e['num_ws']}  c_dim {e['c_dim']} "
                         f"({'conditional' if e['conditional'] else 'unconditional'})")
        elif 'cmap_dim' in e:
            lines.append(f"    {e['resolution']}x{e['resolution']}x{e['img_channels']}  c_dim {e['c_dim']} "
                         f"({'conditional, cmap_dim ' + str(e['cmap_dim']) if e['conditional'] else 'unconditional'})"
                         f"  mbstd group {e['mbstd_group_size']}")
        if 'architecture' in e:
            chans = ' '.join(f'{r}:{c}' for r, c in sorted(e['channels'].items()))
            fp16 = ', '.join(map(str, e['fp16_resolutions'])) or 'none'
            lines.append(f"    architecture {e['architecture']}  channels {chans}  fp16 blocks: {fp16}")
        if 'alias_free' in e:
            lines.append(f"    alias-free ({e['alias_free']}): {len(e['layer_channels']) - 1} layers, channels "
                         f"{' '.join(map(str, e['layer_channels']))}  conv_kernel {e['conv_kernel']}")
        if 'mapping_layers' in e:
            lines.append(f"    mapping {e['mapping_layers']} layers  conv_clamp {e.get('conv_clamp')}")
        if e.get('frozen_layers'):
            lines.append(f"    frozen (Freeze-D): {', '.join(e['frozen_layers'])}")
    return '\n'.join(lines)
