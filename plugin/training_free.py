"""Training-free reuse of pickles: ``python -m plugin blend`` (layer swap between two
generators) and ``python -m plugin merge`` (weight merges of fine-tunes of one parent).
Both take seconds on a CPU and write ordinary host pickles (the first input's records with
new tensors; see plugin.pkl_edit)."""
import math
import os

import numpy as np
import torch

from .blend import block_distances, blend_states, check_swap_res, unrelated_warning
from .errors import MergeError
from .images import save_image_grid
from .layouts import fourier_mismatch, swap_resolutions, tensor_resolutions
from .merging import TASK_VECTOR_METHODS, check_params, merge_state_dicts, method_params
from .pickles import NetworkPickleError
from .pkl_edit import Inputs, mean_w, sample

GENERATORS = ('G', 'G_ema')


def blend_pickles(a_path, b_path, out, swap_res, width=0.0, mapping='a', grid=None, seeds=range(6), log=print,
                  gif=None):
    """Blend generator A (blocks up to ``swap_res``) with B (above); see plugin.blend."""
    inputs = Inputs([a_path, b_path])
    G = inputs.modules[0]['G_ema']
    check_swap_res(swap_res, G.img_resolution)
    a, b = inputs.state_dicts('G_ema')
    resolution_of = tensor_resolutions(G)
    distances = block_distances(a, b, resolution_of)
    warning = unrelated_warning(distances)
    if fourier_mismatch([a, b], ['B', 'A']):
        warning = ('A and B have different Fourier features (synthesis.input.freqs/phases): they are not fine-tunes '
                   "of one parent, and each one's layers were trained on its own features; the blend will likely be "
                   'noise' + (f' ({warning})' if warning else ''))
    if warning:
        log(f'warning: {warning}')
    states = {}
    for key in GENERATORS:
        if key in inputs.keys:
            sa, sb = inputs.state_dicts(key)
            states[key] = blend_states(sa, sb, swap_res, width, mapping, resolution_of)
    inputs.write(out, states)
    log(f'wrote {out}: blocks up to {swap_res}px from {a_path}, above from {b_path}'
        f'{f", blend width {width}" if width else ""}; mapping from {"A" if mapping == "a" else "B"}; D from A')
    if grid:
        resolutions = [0] + swap_resolutions(G)
        rows = [(f'swap-res {r}', blend_states(a, b, r, width, mapping, resolution_of)) for r in resolutions]
        _write_grid(grid, G, rows, seeds, log)
    if gif:
        # A continuous sweep of the swap resolution from "all B" to "all A" (soft, so it moves).
        top = math.log2(G.img_resolution)
        steps = [2 ** (1.5 + (top - 1.5) * i / (GIF_FRAMES - 1)) for i in range(GIF_FRAMES)]
        frames = [blend_states(a, b, r, max(width, 0.25), mapping, resolution_of) for r in steps]
        _write_gif(gif, G, frames, seeds, log, 'swap resolution 2.8 px (all B) -> all A')
    return dict(distances=distances, warning=warning)


def merge_pickles(models, out, method, base=None, grid=None, seeds=range(6), log=print, gif=None, **params):
    """Merge the fine-tunes ``models`` (paths) with ``method`` (plugin.merging); task-vector
    methods need the parent ``base``. w_avg is recomputed from the merged mapping."""
    params = {k: v for k, v in params.items() if v is not None}
    check_params(method, params)
    if method in TASK_VECTOR_METHODS and base is None:
        raise NetworkPickleError(f'--method {method} merges task vectors (fine-tune minus parent): give the parent '
                                 'with --base P.pkl')
    if method == 'slerp' and len(models) != 2:
        raise NetworkPickleError(f'--method slerp interpolates two models; got {len(models)}')
    if method in TASK_VECTOR_METHODS and 'weights' in params and len(params['weights']) != len(models):
        raise NetworkPickleError(f'--weights has {len(params["weights"])} values for {len(models)} models')
    if method in TASK_VECTOR_METHODS and 'weights' not in params and 'weights' in method_params(method):
        params['weights'] = [1.0 / len(models)] * len(models)      # default: the fine-tunes' mean task vector
    uses_base = method in TASK_VECTOR_METHODS
    if base is not None and not uses_base:
        log(f'note: --method {method} does not use --base; merging the models only')
    paths = ([base] if uses_base else []) + list(models)
    inputs = Inputs(paths)
    mismatch = fourier_mismatch(inputs.state_dicts('G_ema'), paths)
    if mismatch:
        raise MergeError(mismatch)
    states = {key: _merged(inputs, key, method, params) for key in inputs.keys}
    inputs.write(out, states)
    log(f'wrote {out}: {method} of {len(models)} model(s){" around " + base if uses_base else ""}'
        f'{"; " + ", ".join(f"{k}={v}" for k, v in params.items()) if params else ""}')
    if grid:
        G = inputs.modules[0]['G_ema']
        rows = [(os.path.basename(p), s) for p, s in zip(paths, inputs.state_dicts('G_ema'))]
        coefficient = _coefficient(method)
        if coefficient is None:
            rows.append((method, states['G_ema']))
        else:
            for value in (0.0, 0.25, 0.5, 0.75, 1.0, 1.25):
                rows.append((f'{coefficient} {value}', _merged(inputs, 'G_ema', method, dict(params, **{coefficient: value}))))
        _write_grid(grid, G, rows, seeds, log)
    if gif:
        coefficient = _coefficient(method)
        if coefficient is None:
            raise NetworkPickleError(f'--gif sweeps the merge coefficient; --method {method} has none')
        values = [1.25 * i / (GIF_FRAMES - 1) for i in range(GIF_FRAMES)]
        frames = [_merged(inputs, 'G_ema', method, dict(params, **{coefficient: v})) for v in values]
        _write_gif(gif, inputs.modules[0]['G_ema'], frames, seeds, log, f'{coefficient} 0 -> 1.25')
    return states


def _coefficient(method):
    """The parameter a sweep varies: slerp's t, else the task vector's scale (None for mean)."""
    return 't' if method == 'slerp' else 'scale' if 'scale' in method_params(method) else None


def _merged(inputs, key, method, params):
    sds = inputs.state_dicts(key)
    state = merge_state_dicts(sds[0], sds[1:], method, **params)
    if key in GENERATORS and 'mapping.w_avg' in state:
        mapping = [n for n in state if n.startswith('mapping.') and n != 'mapping.w_avg']
        same = [sd for sd in sds if all(torch.equal(state[n], sd[n]) for n in mapping)]
        # An input's mapping kept as it was keeps its tracked w_avg; a new mapping gets the
        # mean of its own samples (averaging the inputs' w_avg would not be its mean).
        state['mapping.w_avg'] = same[-1]['mapping.w_avg'].clone() if same else mean_w(inputs.modules[0][key], state)
    return state


GIF_FRAMES = 24


def _write_gif(path, G, states, seeds, log, what):
    """An animated GIF (Pillow): one frame per state, the seeds side by side, there and back."""
    from PIL import Image

    from .images import to_uint8
    seeds = list(seeds)
    frames = []
    with torch.no_grad():
        for state in states:
            row = to_uint8(sample(G, state, seeds))
            frames.append(Image.fromarray(np.concatenate(list(row), axis=1).squeeze()))
    frames += frames[-2:0:-1]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=80, loop=0)
    log(f'wrote {path}: {len(states)} frames ({what}), seeds {seeds[0]}..{seeds[-1]}')


def _write_grid(path, G, rows, seeds, log):
    seeds = list(seeds)
    with torch.no_grad():
        images = torch.cat([sample(G, state, seeds) for _, state in rows])
    save_image_grid(images, path, grid_size=(len(seeds), len(rows)))
    log(f'wrote {path}: rows {", ".join(label for label, _ in rows)}; columns seeds {seeds[0]}..{seeds[-1]}')
