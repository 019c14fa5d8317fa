"""Dataset reader (host format) and the procedural domains."""
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from plugin.hosts.embedded.dataset import DatasetError, ImageFolderDataset
from plugin.domains import DOMAINS, render, write_domains_zip


def write_folder(path, n=5, res=8, channels=3, labels=None):
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(0)
    names = []
    for i in range(n):
        arr = rng.randint(0, 255, size=(res, res, channels), dtype=np.uint8)
        name = f'sub/img{i:03d}.png'
        (path / 'sub').mkdir(exist_ok=True)
        Image.fromarray(arr[:, :, 0] if channels == 1 else arr).save(path / name)
        names.append(name)
    if labels is not None:
        (path / 'dataset.json').write_text(json.dumps({'labels': [[nm, lb] for nm, lb in zip(names, labels)]}))
    return path


def test_folder_with_labels_xflip_and_max_size(tmp_path):
    ds = ImageFolderDataset(write_folder(tmp_path / 'd', n=6, labels=[0, 1, 2, 0, 1, 2]), use_labels=True,
                            xflip=True, max_size=4)
    assert len(ds) == 8 and ds.resolution == 8 and ds.num_channels == 3
    assert ds.has_labels and ds.label_shape == [3] and ds.has_onehot_labels
    img, label = ds[0]
    flipped, _ = ds[4]
    assert img.dtype == np.uint8 and img.shape == (3, 8, 8)
    assert np.array_equal(flipped, img[:, :, ::-1])
    assert label.sum() == 1 and label.dtype == np.float32


def test_unlabelled_and_greyscale(tmp_path):
    ds = ImageFolderDataset(write_folder(tmp_path / 'g', channels=1), use_labels=True)
    assert ds.num_channels == 1 and not ds.has_labels and ds.label_dim == 0


def test_zip_matches_folder(tmp_path):
    folder = write_folder(tmp_path / 'f', labels=[1, 0, 1, 0, 1])
    with zipfile.ZipFile(tmp_path / 'f.zip', 'w') as zf:
        for p in folder.rglob('*'):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
    a = ImageFolderDataset(folder, use_labels=True)
    b = ImageFolderDataset(tmp_path / 'f.zip', use_labels=True)
    assert b.name == 'f' and len(a) == len(b)
    for i in range(len(a)):
        assert np.array_equal(a[i][0], b[i][0]) and np.array_equal(a[i][1], b[i][1])


def _file(path, data):
    path.write_bytes(data)
    return path


def _dir(path):
    path.mkdir()
    return path


@pytest.mark.parametrize('make,match', [
    (lambda p: p / 'missing', 'no such file'),
    (lambda p: _dir(p / 'empty'), 'no image files'),
    (lambda p: _file(p / 'x.txt', b'hi'), 'directory or a .zip'),
    (lambda p: _file(p / 'bad.zip', b'nope'), 'not a readable zip'),
    (lambda p: write_folder(p / 'odd', res=24), 'power of two'),
])
def test_bad_datasets(tmp_path, make, match):
    with pytest.raises(DatasetError, match=match):
        ImageFolderDataset(make(tmp_path))


def test_non_square_and_missing_label(tmp_path):
    d = tmp_path / 'ns'
    d.mkdir()
    Image.fromarray(np.zeros((8, 16, 3), np.uint8)).save(d / 'a.png')
    with pytest.raises(DatasetError, match='square'):
        ImageFolderDataset(d)
    folder = write_folder(tmp_path / 'lab', n=2)
    (folder / 'dataset.json').write_text(json.dumps({'labels': [['sub/img000.png', 0]]}))
    with pytest.raises(DatasetError, match='no label for sub/img001.png'):
        ImageFolderDataset(folder, use_labels=True).get_label(0)


def test_domains_are_deterministic_and_distinct():
    for d in DOMAINS:
        a, b = render(d, 3, 32, seed=1), render(d, 3, 32, seed=1)
        assert a.shape == (32, 32, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
        assert not np.array_equal(a, render(d, 4, 32, seed=1))
    with pytest.raises(ValueError, match='unknown domain'):
        render('clouds', 0)


def test_domains_zip_is_a_host_dataset(tmp_path):
    path = write_domains_zip(tmp_path / 'two.zip', ['discs', 'rings'], count=3, resolution=16)
    ds = ImageFolderDataset(path, use_labels=True)
    assert len(ds) == 6 and ds.resolution == 16 and ds.label_shape == [2]
    assert [int(np.argmax(ds.get_label(i))) for i in range(6)] == [0, 0, 0, 1, 1, 1]
    img, _ = ds[0]
    assert np.array_equal(img, render('discs', 0, 16).transpose(2, 0, 1))
