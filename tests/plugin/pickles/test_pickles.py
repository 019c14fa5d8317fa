"""Safe loading, round trips, hostile and broken input, atomic saving."""
import io
import os
import pickle
import warnings

import pytest
import torch

from tests.helpers import FIXTURE_CONFIGS, small_D_kwargs, small_G_kwargs
from plugin import NetworkPickleError, UnsafePickleError, load_network_pkl, save_network_pkl
from plugin.hosts.embedded.networks import Discriminator, Generator
from plugin.pickles import PersistentRecord, SafeUnpickler, dumps_network_pkl


def load_quiet(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return load_network_pkl(path, **kw)


def globals_of(blob):
    """Every global a pickle names, recorded by an unpickler that resolves them safely."""
    seen = []

    class Recorder(SafeUnpickler):
        def find_class(self, module, name):
            seen.append(f'{module}.{name}')
            return super().find_class(module, name)

    Recorder(io.BytesIO(blob)).load()
    return set(seen)


def small_snapshot(seed=0, **gkw):
    torch.manual_seed(seed)
    G = Generator(**small_G_kwargs(**gkw))
    D = Discriminator(**small_D_kwargs(c_dim=G.c_dim))
    return dict(training_set_kwargs=dict(class_name='training.dataset.ImageFolderDataset', path='x.zip'),
                G=G, D=D, G_ema=G, augment_pipe=None)


@pytest.mark.parametrize('cfg', FIXTURE_CONFIGS)
def test_round_trip_of_host_pickle(fixtures_dir, cfg, tmp_path):
    first = load_quiet(fixtures_dir / cfg / 'network-snapshot.pkl')
    save_network_pkl(first, tmp_path / 'again.pkl')
    second = load_quiet(tmp_path / 'again.pkl')
    assert list(second.keys()) == list(first.keys())
    for key in ('G', 'G_ema', 'D'):
        a, b = first[key].state_dict(), second[key].state_dict()
        assert list(a) == list(b)
        assert all(torch.equal(a[n], b[n]) for n in a), key
        assert type(first[key]) is type(second[key])
        assert first[key]._init_kwargs == second[key]._init_kwargs
    # The augment pipe has no class in the embedded host: kept as data, written back unchanged.
    assert isinstance(second['augment_pipe'], PersistentRecord)
    assert torch.equal(second['augment_pipe'].state['_buffers']['p'], first['augment_pipe'].state['_buffers']['p'])
    z = torch.randn(2, first['G'].z_dim)
    c = torch.eye(max(first['G'].c_dim, 1))[:2, :first['G'].c_dim]
    with torch.no_grad():
        assert torch.equal(first['G_ema'](z, c, noise_mode='const'), second['G_ema'](z, c, noise_mode='const'))


def test_saved_pickle_uses_only_host_globals(tmp_path):
    blob = dumps_network_pkl(small_snapshot())
    names = globals_of(blob)
    assert 'torch_utils.persistence._reconstruct_persistent_obj' in names
    assert not any(n.startswith('plugin.') for n in names), names
    assert names <= {'torch_utils.persistence._reconstruct_persistent_obj', 'collections.OrderedDict',
                     'torch._utils._rebuild_parameter', 'torch._utils._rebuild_tensor_v2',
                     'torch.storage._load_from_bytes', 'dnnlib.util.EasyDict'}


def test_saving_does_not_touch_the_callers_modules(tmp_path):
    snap = small_snapshot()
    snap['G'].train().requires_grad_(True)
    save_network_pkl(snap, tmp_path / 'a.pkl')
    assert snap['G'].training and all(p.requires_grad for p in snap['G'].parameters())
    loaded = load_quiet(tmp_path / 'a.pkl')
    assert not loaded['G'].training and not any(p.requires_grad for p in loaded['G'].parameters())


def _hostile_global_pickle(marker):
    class Evil:
        def __reduce__(self):
            return os.system, (f'touch {marker}',)
    return pickle.dumps({'G': Evil()})


def test_pickle_calling_os_system_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pkl'
    path.write_bytes(_hostile_global_pickle(marker))
    with pytest.raises(UnsafePickleError, match=r"global '(posix|os|nt)\.system'"):
        load_network_pkl(path)
    assert not marker.exists()


def test_embedded_module_source_is_never_executed(tmp_path):
    marker = tmp_path / 'pwned'
    snap = dumps_network_pkl(small_snapshot())
    # Rewrite our shim source with code that would create the marker if executed.
    evil_src = f"open({str(marker)!r}, 'w').write('ran')\n"

    class Rewriter(SafeUnpickler):
        pass
    data = Rewriter(io.BytesIO(snap)).load()
    data['G'].meta['module_src'] = evil_src + 'class SynthesisBlock: pass\ndef modulated_conv2d(): pass\n'
    path = tmp_path / 'planted.pkl'
    save_network_pkl(data, path)
    loaded = load_quiet(path)
    assert isinstance(loaded['G'], Generator)          # rebuilt from kwargs, not from the source
    assert not marker.exists()


@pytest.mark.parametrize('global_name', ['builtins.eval', 'subprocess.Popen', 'torch.load', 'numpy.load',
                                         'torch.storage.TypedStorage', 'plugin.pickles.save_network_pkl'])
def test_any_global_outside_the_allow_list_is_named(tmp_path, global_name):
    module, name = global_name.rsplit('.', 1)
    blob = b'\x80\x04' + b'c' + f'{module}\n{name}\n'.encode() + b'.'
    path = tmp_path / 'x.pkl'
    path.write_bytes(blob)
    with pytest.raises(UnsafePickleError, match=global_name.replace('.', r'\.')):
        load_network_pkl(path)


def test_truncated_pickle(fixtures_dir, tmp_path):
    blob = (fixtures_dir / 'cond32' / 'network-snapshot.pkl').read_bytes()
    path = tmp_path / 'cut.pkl'
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(NetworkPickleError, match='truncated or corrupt'):
        load_network_pkl(path)


def test_not_a_pickle(tmp_path):
    path = tmp_path / 'img.png'
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + os.urandom(64))
    with pytest.raises(NetworkPickleError, match='not a readable network pickle'):
        load_network_pkl(path)


def test_pickle_without_networks(tmp_path):
    path = tmp_path / 'keys.pkl'
    path.write_bytes(pickle.dumps({'generator': 1, 'disc': 2}))
    with pytest.raises(NetworkPickleError, match=r'no network under G, D or G_ema \(keys: generator, disc\)'):
        load_network_pkl(path)
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(NetworkPickleError, match='expected a dict'):
        load_network_pkl(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(NetworkPickleError, match='no such file'):
        load_network_pkl(tmp_path / 'nope.pkl')
    with pytest.raises(NetworkPickleError, match='directory'):
        load_network_pkl(tmp_path)


def test_tensor_shape_mismatch_is_an_error_not_a_broadcast(tmp_path):
    snap = dumps_network_pkl(small_snapshot())
    data = SafeUnpickler(io.BytesIO(snap)).load()
    params = data['D'].state['_modules']['b4'].state['_modules']['out'].state['_parameters']
    params['weight'] = torch.nn.Parameter(torch.zeros(1, 1))
    path = tmp_path / 'bad.pkl'
    save_network_pkl(data, path)
    with pytest.raises(NetworkPickleError, match=r'b4\.out\.weight \(1, 1\) vs'):
        load_network_pkl(path)


def test_unknown_kwargs_give_a_clear_error(tmp_path):
    data = SafeUnpickler(io.BytesIO(dumps_network_pkl(small_snapshot()))).load()
    data['G'].state['_init_kwargs']['bogus_option'] = 3
    path = tmp_path / 'kw.pkl'
    save_network_pkl(data, path)
    with pytest.raises(NetworkPickleError, match='bogus_option'):
        load_network_pkl(path)


def test_object_dtype_numpy_data_is_refused(tmp_path):
    import numpy as np
    path = tmp_path / 'obj.pkl'
    path.write_bytes(pickle.dumps({'G': np.array([1, 'a'], dtype=object)}))
    with pytest.raises(UnsafePickleError, match='numpy'):
        load_network_pkl(path)


def test_zip_checkpoint_is_named(tmp_path):
    path = tmp_path / 'ckpt.pt'
    torch.save({'w': torch.zeros(2)}, path)
    with pytest.raises(NetworkPickleError, match='zip archive'):
        load_network_pkl(path)


def test_unknown_persistent_class_is_kept_as_data_with_a_warning(tmp_path):
    data = SafeUnpickler(io.BytesIO(dumps_network_pkl(small_snapshot()))).load()
    data['augment_pipe'] = PersistentRecord(dict(type='class', version=6, module_src='class Mystery: pass\n',
                                                 class_name='Mystery', state={'_parameters': {}, 'x': 1}))
    path = tmp_path / 'mystery.pkl'
    save_network_pkl(data, path)
    with pytest.warns(UserWarning, match='Mystery has no class'):
        loaded = load_network_pkl(path)
    assert isinstance(loaded['augment_pipe'], PersistentRecord) and loaded['augment_pipe'].state['x'] == 1
    assert isinstance(loaded['G'], Generator)


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / 'snap.pkl'
    save_network_pkl(small_snapshot(seed=1), path)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise KeyboardInterrupt('killed during save')
    monkeypatch.setattr(os, 'replace', fail)
    with pytest.raises(KeyboardInterrupt):
        save_network_pkl(small_snapshot(seed=2), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['snap.pkl']


def test_unsavable_module_is_refused_before_writing(tmp_path):
    with pytest.raises(NetworkPickleError, match='not a persistent class'):
        save_network_pkl({'G': torch.nn.Linear(2, 2)}, tmp_path / 'x.pkl')
    assert not (tmp_path / 'x.pkl').exists()
