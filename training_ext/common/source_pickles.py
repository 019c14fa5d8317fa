"""Loading the pretrained source pickles a method starts from, with one-line errors."""
import os
import warnings

import torch

from plugin.hosts import active_host

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


def open_target(flags, resolution, error, needs, generates='the sources generate', use_labels=False):
    """The target dataset of ``flags.data`` (open: the caller closes it), checked against the sources'
    ``resolution`` and the batch; problems raise ``error`` with one line. ``needs`` starts the
    message for a missing --data ('--mine needs the target images'), ``generates`` names the
    sources in the resolution message."""
    if not flags.get('data'):
        raise error(f'{needs}: --data PATH')
    flags['data'] = str(flags['data'])
    try:
        ds = active_host().construct_class_by_name('training.dataset.ImageFolderDataset', path=flags['data'],
                                                   use_labels=use_labels)
    except IOError as e:
        raise error(f'--data: {e}') from None
    if ds.resolution != resolution:
        raise error(f'the target images are {ds.resolution}px but {generates} {resolution}px')
    n, batch = flags.get('subset') or len(ds), flags.get('batch') or 16
    if n < batch:
        raise error(f'the target set has {n} images, fewer than the batch ({batch}); pass --batch {n} or less, or '
                    'more images')
    return ds
