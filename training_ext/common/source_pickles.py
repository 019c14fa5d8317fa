"""Loading the pretrained source pickles a method starts from, with one-line errors."""
import os
import warnings

import torch

from plugin.pickles import NetworkPickleError, load_network_pkl


def load_source(path, needs, error, why=''):
    """The pickle's data, which must hold networks under every key in ``needs``; problems
    raise ``error`` (the method's own error class) naming the file."""
    if not os.path.isfile(path):
        raise error(f'source {path} does not exist')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')         # augment pipes kept as data: expected here
            data = load_network_pkl(path)
    except NetworkPickleError as e:
        raise error(f'source {e}') from None
    missing = [k for k in needs if not isinstance(data.get(k), torch.nn.Module)]
    if missing:
        raise error(f'source {path}: has no {", ".join(missing)} network{why}')
    return data


def check_same_resolution(resolutions, error):
    """``resolutions``: path -> px."""
    if len(set(resolutions.values())) > 1:
        raise error('sources have different resolutions: ' + ', '.join(f'{p} {r}px' for p, r in resolutions.items()))
