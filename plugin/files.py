"""Files the plugin writes: atomically (a run killed mid-write never leaves a partial file),
and tensor files that can hold no code."""
import io
import os
import re
import tempfile

import torch


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(blob, path):
    """Write ``blob`` to ``path`` atomically: a temporary file in the same folder, flushed
    and fsynced, then renamed. An interrupted save never leaves a partial file at ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())             # mkstemp makes 0600; give it the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_tensors(obj, path):
    """``torch.save`` of plain containers of tensors, atomically; read back with load_tensors_file."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(buf.getvalue(), path)


def load_tensors_file(path):
    """Read a file written by save_tensors; ``weights_only`` so it can hold no code."""
    return torch.load(path, map_location='cpu', weights_only=True)


# --- The host's snapshot naming: <run dir>/network-snapshot-NNNNNN.pkl, NNNNNN = kimg. -----------
SNAPSHOT_RE = re.compile(r'network-snapshot-(\d+)\.pkl')


def snapshot_name(nimg):
    """The file name the host gives the snapshot taken after ``nimg`` images."""
    return f'network-snapshot-{nimg // 1000:06d}.pkl'


def snapshot_kimg(path):
    """The kimg in a host snapshot's file name, or None for any other name."""
    m = SNAPSHOT_RE.fullmatch(os.path.basename(str(path)))
    return int(m.group(1)) if m else None


def list_snapshots(run_dir):
    """A run directory's network snapshots, oldest first ([] when there is no such directory)."""
    if not os.path.isdir(run_dir):
        return []
    return sorted(os.path.join(run_dir, p) for p in os.listdir(run_dir) if SNAPSHOT_RE.fullmatch(p))
