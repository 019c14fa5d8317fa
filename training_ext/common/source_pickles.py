"""Loading the pretrained source pickles a method starts from, with one-line errors."""
import hashlib
import os
import re
import warnings

import torch

from plugin.hosts import active_host

from plugin.files import snapshot_kimg
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
    # --subset None means every image; --batch None leaves the batch to --cfg (the sampler
    # checks it again once it is known), so only a given batch is checked here.
    subset, batch = flags.get('subset'), flags.get('batch')
    n = len(ds) if subset is None else min(subset, len(ds))
    if batch is not None and n < batch:
        raise error(f'the target set has {n} images, fewer than the batch ({batch}); pass --batch {n} or less, or '
                    'more images')
    return ds


_UNSAFE = re.compile(r'[^A-Za-z0-9._+-]+')


def _safe(text):
    # Labels name stage directories: keep them to characters every filesystem accepts.
    return _UNSAFE.sub('_', text).strip('._') or 'source'


def source_labels(paths, names=None, error=ValueError):
    """One unique, readable label per source, by position.

    ``names`` (``--class-names``) when given: one per source, unique. Otherwise each source's
    file stem when no other source has that stem (``discs.pkl`` -> ``discs``); else its run
    directory's name (the host writes ``<run dir>/network-snapshot-NNNNNN.pkl``, so a user's
    snapshots share stems but not directories: ``00001-blobs32-auto1``; a host snapshot name is
    never used as a label, even when unique); else ``source<i>``.
    Labels still equal after that get ``-<i>`` appended, so two sources never share a label
    (a shared label once made the cocktail skip a source's rooting as "done before")."""
    paths = [str(p) for p in paths]
    if names is not None:
        names = [str(n).strip() for n in names]
        if len(names) != len(paths):
            raise error(f'--class-names needs {len(paths)} names (one per source), got {len(names)}')
        if any(not n for n in names):
            raise error('--class-names: empty name')
        labels = [_safe(n) for n in names]
        if len(set(labels)) != len(labels):
            raise error(f'--class-names must be unique (as directory names): {", ".join(labels)}')
        return labels
    stems = [_safe(os.path.splitext(os.path.basename(p))[0]) for p in paths]
    dirs = [_safe(os.path.basename(os.path.dirname(os.path.abspath(p)))) for p in paths]
    labels = []
    for i, (stem, run_dir) in enumerate(zip(stems, dirs)):
        # The host's own snapshot name says nothing about the source, even when unique
        # (network-snapshot-000100 vs -000200): the run directory does.
        generic = snapshot_kimg(stem + '.pkl') is not None
        if stems.count(stem) == 1 and not generic:
            labels.append(stem)
        elif [d for d, st in zip(dirs, stems) if st == stem].count(run_dir) == 1:
            labels.append(run_dir)
        else:
            labels.append(f'source{i}')
    return [f'{label}-{i}' if labels.count(label) > 1 else label for i, label in enumerate(labels)]


def check_distinct_sources(paths, modules, error):
    """``error`` naming both when the same file is given twice or two sources hold identical
    weights (``modules``: one network per source, compared tensor by tensor): merging a model
    with itself is never what was meant."""
    real = [os.path.realpath(str(p)) for p in paths]
    for j in range(len(paths)):
        for i in range(j):
            if real[i] == real[j]:
                raise error(f'source {paths[j]} is given twice (as sources {i} and {j})')
    digests = [_digest(m) for m in modules]
    for j in range(len(paths)):
        for i in range(j):
            if digests[i] == digests[j]:
                raise error(f'sources {paths[i]} and {paths[j]} hold identical weights: merging a model with '
                            'itself adds nothing; give different snapshots')


def _digest(module):
    h = hashlib.sha1()
    for name, value in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
