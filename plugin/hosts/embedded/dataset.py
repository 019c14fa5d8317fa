"""Image datasets in the host's format: a folder or zip of PNG/JPEG images, with optional
``dataset.json`` labels (``{"labels": [["path/in/archive.png", label], ...]}``, label an int
class or a list of floats). Same constructor arguments and attributes as the host's
``training.dataset.ImageFolderDataset``; errors name the file and the problem.
"""
import json
import os
import zipfile

import numpy as np
import torch
from PIL import Image
from plugin.errors import DatasetError

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.webp')


class Dataset(torch.utils.data.Dataset):
    """Index bookkeeping shared by dataset types: max_size subsetting, xflip doubling, labels."""

    def __init__(self,
        name,                 # Name, as .name and in error messages.
        raw_shape,            # [N, C, H, W] of all raw images.
        max_size    = None,   # Keep a seeded random subset of at most this many images; None = all.
        use_labels  = False,  # Load labels; False = label width 0 (unconditional).
        xflip       = False,  # Also yield each image mirrored (doubles the length).
        random_seed = 0,      # Seed for the max_size subset.
    ):
        self._name = name
        self._raw_shape = list(raw_shape)
        self._use_labels = use_labels
        self._raw_labels = None
        self._label_shape = None
        self._raw_idx = np.arange(self._raw_shape[0], dtype=np.int64)
        if max_size is not None and self._raw_idx.size > max_size:
            # Same subset as the host for the same seed: shuffle, keep the first max_size, sort.
            np.random.RandomState(random_seed).shuffle(self._raw_idx)
            self._raw_idx = np.sort(self._raw_idx[:max_size])
        self._xflip = np.zeros(self._raw_idx.size, dtype=np.uint8)
        if xflip:
            self._raw_idx = np.tile(self._raw_idx, 2)
            self._xflip = np.concatenate([self._xflip, np.ones_like(self._xflip)])

    def _load_raw_image(self, raw_idx):
        raise NotImplementedError

    def _load_raw_labels(self):
        raise NotImplementedError

    def _get_raw_labels(self):
        if self._raw_labels is None:
            labels = self._load_raw_labels() if self._use_labels else None
            if labels is None:
                labels = np.zeros([self._raw_shape[0], 0], dtype=np.float32)
            self._raw_labels = labels
        return self._raw_labels

    def close(self):
        pass

    def __getstate__(self):
        return dict(self.__dict__, _raw_labels=None)

    def __len__(self):
        return self._raw_idx.size

    def __getitem__(self, idx):
        image = self._load_raw_image(self._raw_idx[idx])
        if list(image.shape) != self.image_shape:
            raise DatasetError(f'{self.name}: image {self._raw_idx[idx]} has shape {list(image.shape)}, '
                               f'expected {self.image_shape} like the first image')
        if self._xflip[idx]:
            image = image[:, :, ::-1]
        return image.copy(), self.get_label(idx)

    def get_label(self, idx):
        label = self._get_raw_labels()[self._raw_idx[idx]]
        if label.dtype == np.int64:
            onehot = np.zeros(self.label_shape, dtype=np.float32)
            onehot[label] = 1
            label = onehot
        return label.copy()

    @property
    def name(self):
        return self._name

    @property
    def image_shape(self):
        return list(self._raw_shape[1:])

    @property
    def num_channels(self):
        return self.image_shape[0]

    @property
    def resolution(self):
        return self.image_shape[1]

    @property
    def label_shape(self):
        if self._label_shape is None:
            labels = self._get_raw_labels()
            self._label_shape = [int(labels.max()) + 1] if labels.dtype == np.int64 else list(labels.shape[1:])
        return list(self._label_shape)

    @property
    def label_dim(self):
        return int(np.prod(self.label_shape))

    @property
    def has_labels(self):
        return any(x != 0 for x in self.label_shape)

    @property
    def has_onehot_labels(self):
        return self._get_raw_labels().dtype == np.int64


class ImageFolderDataset(Dataset):
    def __init__(self,
        path,                   # Folder or .zip of PNG/JPEG images.
        resolution     = None,  # Required image size (errors if different); None = any.
        **super_kwargs,         # For Dataset (max_size, use_labels, xflip, random_seed).
    ):
        self._path = os.fspath(path)
        self._zipfile = None
        if os.path.isdir(self._path):
            self._type = 'dir'
            self._all_fnames = {os.path.relpath(os.path.join(root, f), start=self._path).replace('\\', '/')
                                for root, _dirs, files in os.walk(self._path) for f in files}
        elif os.path.isfile(self._path) and self._path.lower().endswith('.zip'):
            self._type = 'zip'
            try:
                self._all_fnames = set(self._get_zipfile().namelist())
            except zipfile.BadZipFile:
                raise DatasetError(f'{self._path}: not a readable zip file') from None
        elif not os.path.exists(self._path):
            raise DatasetError(f'{self._path}: no such file or directory')
        else:
            raise DatasetError(f'{self._path}: must be a directory or a .zip of images')
        self._image_fnames = sorted(f for f in self._all_fnames if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS)
        if not self._image_fnames:
            raise DatasetError(f'{self._path}: no image files (PNG/JPEG) found')
        first = self._load_raw_image(0)
        c, h, w = first.shape
        if h != w:
            raise DatasetError(f'{self._path}: images must be square, {self._image_fnames[0]} is {w}x{h}')
        if h < 4 or h & (h - 1):
            raise DatasetError(f'{self._path}: image resolution must be a power of two >= 4, got {h}x{w} '
                               f'({self._image_fnames[0]})')
        if c not in (1, 3):
            raise DatasetError(f'{self._path}: images must be greyscale or RGB, {self._image_fnames[0]} has {c} channels')
        if resolution is not None and h != resolution:
            raise DatasetError(f'{self._path}: images are {h}x{w}, but resolution {resolution} was asked for')
        name = os.path.splitext(os.path.basename(self._path.rstrip('/')))[0]
        super().__init__(name=name, raw_shape=[len(self._image_fnames), c, h, w], **super_kwargs)

    def _get_zipfile(self):
        if self._zipfile is None:
            self._zipfile = zipfile.ZipFile(self._path)
        return self._zipfile

    def _open_file(self, fname):
        if self._type == 'dir':
            return open(os.path.join(self._path, fname), 'rb')
        return self._get_zipfile().open(fname, 'r')

    def close(self):
        if self._zipfile is not None:
            self._zipfile.close()
        self._zipfile = None

    def __getstate__(self):
        return dict(super().__getstate__(), _zipfile=None)

    def _load_raw_image(self, raw_idx):
        fname = self._image_fnames[raw_idx]
        try:
            with self._open_file(fname) as f:
                image = np.array(Image.open(f))
        except (OSError, ValueError) as e:
            raise DatasetError(f'{self._path}: cannot read image {fname}: {e}') from None
        if image.ndim == 2:
            image = image[:, :, np.newaxis]
        if image.shape[2] == 4:                       # drop alpha, as most image tools would
            image = image[:, :, :3]
        return image.transpose(2, 0, 1)

    def _load_raw_labels(self):
        if 'dataset.json' not in self._all_fnames:
            return None
        try:
            with self._open_file('dataset.json') as f:
                labels = json.load(f).get('labels')
        except (OSError, ValueError, AttributeError) as e:
            raise DatasetError(f'{self._path}: dataset.json is not valid: {e}') from None
        if labels is None:
            return None
        labels = dict(labels)
        missing = [f for f in self._image_fnames if f not in labels]
        if missing:
            raise DatasetError(f'{self._path}: dataset.json has no label for {missing[0]} '
                               f'(+{len(missing) - 1} more)')
        labels = np.array([labels[f] for f in self._image_fnames])
        if labels.ndim == 1:
            labels = labels.astype(np.int64)
            if (labels < 0).any():
                raise DatasetError(f'{self._path}: class labels must be non-negative integers')
            return labels
        return labels.astype(np.float32)
