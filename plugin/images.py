"""Image output: network tensors (NCHW, range [-1, 1]) to PNG files and grids."""
import math
import os

import numpy as np
from PIL import Image


def to_uint8(images, drange=(-1, 1)):
    """NCHW float tensor/array -> NHWC uint8 array (1 or 3 channels)."""
    x = images.detach().cpu().float().numpy() if hasattr(images, 'detach') else np.asarray(images, np.float32)
    lo, hi = drange
    x = np.rint((x - lo) * (255 / (hi - lo))).clip(0, 255).astype(np.uint8)
    return x.transpose(0, 2, 3, 1)


def _pil(arr):
    return Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr, 'L' if arr.shape[2] == 1 else 'RGB')


def grid_shape(n, max_cols=None):
    cols = max_cols or max(1, int(math.ceil(math.sqrt(n))))
    return min(cols, n), int(math.ceil(n / cols))


def save_image_grid(images, path, drange=(-1, 1), grid_size=None):
    """Tile N images into a (cols, rows) grid PNG; missing cells stay black."""
    arr = to_uint8(images, drange)
    n, h, w, c = arr.shape
    cols, rows = grid_size or grid_shape(n)
    canvas = np.zeros((rows * h, cols * w, c), np.uint8)
    for i in range(min(n, cols * rows)):
        r, k = divmod(i, cols)
        canvas[r * h:(r + 1) * h, k * w:(k + 1) * w] = arr[i]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    _pil(canvas).save(path)
    return path


def save_images(images, paths, drange=(-1, 1)):
    for arr, path in zip(to_uint8(images, drange), paths):
        _pil(arr).save(path)
