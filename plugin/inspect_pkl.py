"""What a network pickle holds, for people: ``python -m plugin inspect net.pkl``."""
import os

import torch

from .easydict import to_plain
from .pickles import NetworkPickleError, PersistentRecord, load_network_pkl, rebuild_module


def _count(record):
    params = sum(t.numel() for _, t, kind in record.named_tensors() if kind == 'parameter')
    buffers = sum(t.numel() for _, t, kind in record.named_tensors() if kind == 'buffer')
    return params, buffers


def _generator_info(module):
    syn = module.synthesis
    blocks = [getattr(syn, f'b{r}') for r in syn.block_resolutions]
    return dict(
        z_dim=module.z_dim, c_dim=module.c_dim, w_dim=module.w_dim, num_ws=module.num_ws,
        resolution=module.img_resolution, img_channels=module.img_channels, conditional=module.c_dim > 0,
        architecture=blocks[0].architecture,
        channels={b.resolution: b.conv1.out_channels for b in blocks},
        fp16_resolutions=[b.resolution for b in blocks if b.use_fp16],
        conv_clamp=blocks[0].conv1.conv_clamp,
        mapping_layers=module.mapping.num_layers,
    )


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
        if not isinstance(value, PersistentRecord):
            out['entries'][key] = dict(kind=type(value).__name__, value=to_plain(value) if isinstance(value, dict) else None)
            continue
        params, buffers = _count(value)
        entry = dict(kind='network', class_name=value.class_name, family=value.family, parameters=params,
                     buffer_elements=buffers, init_kwargs=to_plain(value.init_kwargs))
        try:
            module = rebuild_module(value, what=key)
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
        if 'mapping_layers' in e:
            lines.append(f"    mapping {e['mapping_layers']} layers  conv_clamp {e['conv_clamp']}")
        if e.get('frozen_layers'):
            lines.append(f"    frozen (Freeze-D): {', '.join(e['frozen_layers'])}")
    return '\n'.join(lines)
