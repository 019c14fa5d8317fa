"""Hostile pickles: one case per attack class. Each asserts that a marker command did not run
and that the error is the loader's own, with a message naming what was refused; the CLI
refuses each file in one line with a non-zero exit. See README "What loading a pickle
guarantees"."""
import collections
import functools
import io
import pickle
import re
import struct
import types
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from tests.helpers import small_D_kwargs, small_G_kwargs
from plugin import NetworkPickleError, UnsafePickleError, class_registry, load_network_pkl, persistence, pickles
from plugin.__main__ import main as cli
from plugin.hosts import active_host
from plugin.hosts.embedded.networks import Discriminator, Generator
from plugin.persistence import constructor_kwargs
from plugin.pickles import PersistentRecord, SafeUnpickler, dumps_network_pkl, save_network_pkl
from tests.helpers import REPO



# --- Crafting pickles. ----------------------------------------------------------------------

class Call:
    """Pickles as ``module.name(*args)`` (then ``BUILD state`` when given), whether or not
    that global is importable here."""

    def __init__(self, module, name, args=(), state=None):
        self.stub = types.FunctionType((lambda: None).__code__, {})
        self.stub._craft_name = (module, name)
        self.args, self.state = tuple(args), state


class CraftPickler(pickle._Pickler):
    def reducer_override(self, obj):
        if isinstance(obj, Call):
            return (obj.stub, obj.args) if obj.state is None else (obj.stub, obj.args, obj.state)
        return NotImplemented

    def save_global(self, obj, name=None):
        target = getattr(obj, '_craft_name', None)
        if target is None:
            return super().save_global(obj, name)
        self.write(pickle.GLOBAL + f'{target[0]}\n{target[1]}\n'.encode())
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[types.FunctionType] = save_global


def craft(obj):
    buf = io.BytesIO()
    CraftPickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def legacy_storage(declared, payload, storage_type=('torch', 'FloatStorage')):
    """A tensor storage in torch's legacy format (what ``_load_from_bytes`` reads), declaring
    ``declared`` elements and carrying ``payload``."""
    buf = io.BytesIO()
    for head in (0x1950a86a20f9469cfc6c, 1001, dict(protocol_version=1001, little_endian=True,
                                                     type_sizes=dict(short=2, int=4, long=4))):
        pickle.dump(head, buf, protocol=2)

    class P(CraftPickler):
        def persistent_id(self, obj):
            return ('storage', Call(*storage_type).stub, '0', 'cpu', declared, None) if obj == 'S' else None
    P(buf, protocol=2).dump('S')
    pickle.dump(['0'], buf, protocol=2)
    buf.write(struct.pack('<q', declared) + payload)
    return buf.getvalue()


def tensor_call(storage_bytes, size, stride, offset=0):
    return Call('torch._utils', '_rebuild_tensor_v2',
                (Call('torch.storage', '_load_from_bytes', (storage_bytes,)), offset, tuple(size), tuple(stride), False,
                 collections.OrderedDict()))


def small_snapshot(c_dim=0, seed=0):
    torch.manual_seed(seed)
    G = Generator(**small_G_kwargs(c_dim=c_dim))
    D = Discriminator(**small_D_kwargs(c_dim=c_dim))
    return dict(training_set_kwargs=None, G=G, D=D, G_ema=G)


def records(snapshot):
    return SafeUnpickler(io.BytesIO(dumps_network_pkl(snapshot))).load()


@functools.lru_cache(maxsize=1)
def small_snapshot_blob():
    return dumps_network_pkl(small_snapshot())


def small_records():
    """Fresh records of one small snapshot (built once: the parametrised tests below are many)."""
    return SafeUnpickler(io.BytesIO(small_snapshot_blob())).load()


def marker_cmd(marker):
    return f'touch {marker}'


# --- Every persistent plugin class: a class_name planted in its stored kwargs. ---------------

def persistent_network_classes():
    """Walks the closed registry: every network class of ours a pickle may name."""
    classes = class_registry.own_classes()
    return sorted(path for path, cls in classes.items()
                  if isinstance(cls, type) and issubclass(cls, torch.nn.Module) and hasattr(cls, '_persistent_family'))


PLACEMENTS = {
    'top': lambda evil: dict(class_name=evil),
    'nested': lambda evil: dict(generator=dict(class_name=evil, z_dim=4)),
    'in_list': lambda evil: dict(generators=[dict(class_name='training.networks.Generator'), dict(class_name=evil)]),
    'deeper': lambda evil: dict(a=dict(b=[dict(c=dict(class_name=evil))])),
}


def test_the_registry_walk_finds_every_plugin_class():
    found = set(persistent_network_classes())
    for expected in ('training_ext.mining.miner.MinedGenerator', 'training_ext.hypermod.networks.HyperGenerator',
                     'training_ext.hypermod.networks.HyperDiscriminator', 'training_ext.bypass.encoders.ImageEncoder',
                     'training_ext.bypass.networks.SplitDiscriminator', 'plugin.hosts.embedded.generator.Generator'):
        assert expected in found


def test_every_module_with_persistent_classes_is_in_the_closed_registry():
    """A new module that defines a persistent class must be listed (else its pickles would
    not load, and its class would escape the hostile suite below)."""
    listed = set(class_registry.OWN_NETWORK_MODULES)
    for path in [*REPO.glob('plugin/**/*.py'), *REPO.glob('training_ext/**/*.py'), *REPO.glob('torch_utils_ext/**/*.py')]:
        if re.search(r'^@persistent_class\(', path.read_text(), re.M):
            module = '.'.join(path.relative_to(REPO).with_suffix('').parts)
            assert module in listed, f'{module} defines persistent classes but is not in OWN_NETWORK_MODULES'


@pytest.mark.parametrize('placement', sorted(PLACEMENTS))
@pytest.mark.parametrize('class_path', persistent_network_classes())
def test_class_name_planted_in_any_plugin_class_is_refused(tmp_path, class_path, placement):
    marker = tmp_path / 'pwned'
    module, name = class_path.rsplit('.', 1)
    cls = class_registry.own_classes()[class_path]
    data = small_records()
    kwargs = PLACEMENTS[placement]('subprocess.run')
    kwargs['args'] = ['sh', '-c', marker_cmd(marker)]
    data['G'] = PersistentRecord(dict(type='class', version=6, module_src=persistence.module_src_for(cls),
                                      class_name=name, state=dict(_init_args=(), _init_kwargs=kwargs, _parameters={},
                                                                  _buffers={}, _modules={}, training=False)))
    path = tmp_path / 'planted.pkl'
    save_network_pkl(data, path)
    with pytest.raises(UnsafePickleError, match=r"class_name = 'subprocess\.run' is not a registered network class"):
        load_network_pkl(path)
    assert not marker.exists()


def plugin_snapshots():
    """Real snapshots of the plugin classes that build host networks from a stored class_name."""
    from training_ext.bypass.encoders import ImageEncoder
    from training_ext.bypass.networks import SplitDiscriminator
    from training_ext.hypermod.networks import discriminator_from_source, hyper_from_source
    from training_ext.mining.miner import mined_from_sources
    snap = small_snapshot()
    G, D = snap['G'], snap['D']
    G2 = Generator(**small_G_kwargs())
    return {
        'mined': dict(G=mined_from_sources([G, G2]), D=D),
        'hyper': dict(G=hyper_from_source(G, 2, rank=4), D=discriminator_from_source(D, 2)),
        'encoder': dict(G=G, D=ImageEncoder(D_kwargs=constructor_kwargs(D), w_dim=G.w_dim, num_ws=G.num_ws)),
        'split': dict(G=G, D=SplitDiscriminator(D_kwargs=constructor_kwargs(D), res=8, g_channels=16, has_img=True)),
    }


def _plant(kwargs, evil):
    """Replace every nested class_name (not the top level one) by ``evil``; returns how many."""
    count = 0
    if isinstance(kwargs, dict):
        for key, value in kwargs.items():
            if key == 'class_name':
                kwargs[key] = evil
                count += 1
            else:
                count += _plant(value, evil)
    elif isinstance(kwargs, list):
        count += sum(_plant(v, evil) for v in kwargs)
    return count


@pytest.mark.parametrize('which', ['mined', 'hyper', 'encoder', 'split'])
def test_the_constructors_resolve_names_only_in_the_registry(tmp_path, monkeypatch, which):
    """The second line of defence: with the stored-kwargs check switched off, the classes'
    own constructors still cannot reach a class outside the closed registry."""
    marker = tmp_path / 'pwned'
    data = records(plugin_snapshots()[which])
    planted = 0
    for key in ('G', 'D'):
        state = data[key].state
        state['_init_args'] = list(state.get('_init_args', ()))
        planted += _plant(state['_init_args'], 'subprocess.run') + _plant(state['_init_kwargs'], 'subprocess.run')
        state['_init_args'] = tuple(state['_init_args'])
    assert planted, 'this snapshot holds no nested class_name: the test would prove nothing'
    path = tmp_path / 'planted.pkl'
    save_network_pkl(data, path)
    monkeypatch.setattr(pickles.rebuild, 'check_stored_kwargs', lambda *a, **k: None)
    with pytest.raises(UnsafePickleError, match=r"'subprocess\.run' is not a registered class"):
        load_network_pkl(path)
    assert not marker.exists()


@pytest.mark.parametrize('which', ['mined', 'hyper', 'encoder', 'split'])
def test_plugin_snapshots_still_load(tmp_path, which):
    path = tmp_path / 'ok.pkl'
    save_network_pkl(plugin_snapshots()[which], path)
    loaded = load_network_pkl(path)
    assert isinstance(loaded['G'], torch.nn.Module) and isinstance(loaded['D'], torch.nn.Module)


@pytest.mark.parametrize('name', ['training.loss.StyleGAN2Loss', 'torch.optim.Adam',
                                  'training_ext.common.generated.GeneratedDataLoss', 'training.dataset.ImageFolderDataset'])
def test_a_pickle_may_name_only_networks_even_among_registered_classes(tmp_path, name):
    data = records(plugin_snapshots()['hyper'])
    assert _plant(data['G'].state['_init_kwargs'], name)
    path = tmp_path / 'seam.pkl'
    save_network_pkl(data, path)
    with pytest.raises(UnsafePickleError, match='not a registered network class'):
        load_network_pkl(path)


def test_resolution_never_imports(monkeypatch):
    import importlib
    host = active_host()
    host.classes()                                        # the registry itself is built from constants
    monkeypatch.setattr(importlib, 'import_module', lambda *a, **k: pytest.fail('imported by a stored name'))
    for bad in ('os.system', 'subprocess.Popen', 'plugin.pickles.save_network_pkl', 'training_ext.cli.main', 42):
        with pytest.raises(class_registry.UnregisteredClassError):
            host.resolve_class_path(bad)
    assert host.resolve_class_path('training.networks.Generator') is Generator


# --- The hostile files: one per attack class, each refused by the loader and the CLI. --------

def hostile_files(marker):
    """name -> (bytes, expected error type, message pattern)."""
    cmd = marker_cmd(marker)
    real = dumps_network_pkl(small_snapshot())
    float_bytes = struct.pack('<4f', 1, 2, 3, 4)
    files = {}
    for module, name in [('os', 'system'), ('posix', 'system'), ('builtins', 'eval'), ('builtins', 'exec'),
                         ('subprocess', 'Popen'), ('subprocess', 'run'), ('importlib', 'import_module'),
                         ('builtins', 'getattr'), ('torch', 'load'), ('pickle', 'loads'), ('numpy', 'load'),
                         ('numpy', 'frombuffer'), ('torch.storage', 'TypedStorage')]:
        files[f'global-{module}.{name}'] = (craft({'G': Call(module, name, (cmd,))}), UnsafePickleError,
                                            re.escape(f"global '{module}.{name}'"))
    # A global planted inside a tensor storage (read by torch's loader after ours).
    inner = craft(Call('os', 'system', (cmd,)))
    files['global-in-storage'] = (craft({'G': tensor_call(inner, (1,), (1,))}), UnsafePickleError, 'refused')
    # numpy: object dtype (its raw bytes would be dereferenced as pointers), structured dtype, a
    # plain dtype whose state is rewritten to carry objects.
    files['numpy-object-scalar'] = (craft({'G': Call('numpy.core.multiarray', 'scalar',
                                                     (Call('numpy', 'dtype', ('O8', False, True)), b'A' * 8))}),
                                    UnsafePickleError, 'numpy dtype')
    files['numpy-structured-dtype'] = (craft({'G': Call('numpy._core.multiarray', 'scalar',
                                                        (Call('numpy', 'dtype', ('V8', False, True)), b'A' * 8))}),
                                       UnsafePickleError, 'numpy dtype')
    files['numpy-dtype-state-to-object'] = (
        craft({'G': Call('numpy.core.multiarray', 'scalar',
                         (Call('numpy', 'dtype', ('f8', False, True), state=(3, '|', None, None, None, 8, 8, 63)),
                          b'A' * 8))}), (UnsafePickleError, NetworkPickleError), 'numpy|dtype|refused')
    # numpy arrays (stylegan3 keeps int64 sizes in them): object dtype, bytes that do not match
    # the shape, and ndarray called directly with a huge shape.
    def array(dtype, shape, raw):
        return Call('numpy._core.multiarray', '_reconstruct', (Call('numpy', 'ndarray').stub, (0,), b'b'),
                    state=(1, shape, Call('numpy', 'dtype', (dtype, False, True)), False, raw))
    files['numpy-object-array'] = (craft({'G': array('O8', (2,), b'A' * 16)}), UnsafePickleError, 'numpy dtype')
    files['numpy-array-short-bytes'] = (craft({'G': array('i8', (10 ** 9,), b'A' * 16)}), NetworkPickleError,
                                        'bytes do not match')
    files['numpy-ndarray-called'] = (craft({'G': Call('numpy', 'ndarray', ((2 ** 40,),))}), NetworkPickleError,
                                     'not a readable|no network|refused')
    # Storages and views larger than what the file holds.
    files['storage-larger-than-file'] = (craft({'G': tensor_call(legacy_storage(2 ** 40, float_bytes), (4,), (1,))}),
                                         NetworkPickleError, 'declares')
    files['view-larger-than-storage'] = (craft({'G': tensor_call(legacy_storage(4, float_bytes), (10 ** 12,), (0,))}),
                                         NetworkPickleError, 'larger than its storage')
    files['negative-stride'] = (craft({'G': tensor_call(legacy_storage(4, float_bytes), (4,), (-1,))}),
                                NetworkPickleError, 'malformed tensor header')
    # A plain torch layer called with huge sizes: it must not run Linear's constructor.
    # (test_plain_torch_layers_are_never_constructed checks that no constructor ran.)
    files['plain-layer-constructor'] = (craft({'G': Call('torch.nn.modules.linear', 'Linear', (2 ** 12, 2 ** 12))}),
                                        NetworkPickleError, 'no network under G')
    # Structure: deep nesting, a self-containing list, shared parts expanding to 2**40 nodes.
    depth = 100_000
    files['deep-nesting'] = (b'\x80\x02' + b']' * depth + b'a' * (depth - 1) + b'.', NetworkPickleError, 'levels deep')
    files['self-containing'] = (b'\x80\x02}q\x00X\x01\x00\x00\x00G]q\x01h\x01as.', NetworkPickleError, 'contains itself')
    bomb = []
    for _ in range(40):
        bomb = [bomb, bomb]
    files['shared-parts-bomb'] = (pickle.dumps({'G': bomb}, protocol=4), NetworkPickleError, 'expand to more than')
    # Records whose stored kwargs are hostile.
    data = SafeUnpickler(io.BytesIO(real)).load()
    data['G'].state['_init_kwargs']['mapping_kwargs'] = {'x': bomb}
    files['kwargs-bomb'] = (dumps_network_pkl(data), NetworkPickleError, 'expand to more than')
    data = SafeUnpickler(io.BytesIO(real)).load()
    data['G'].state['_init_kwargs']['z_dim'] = 2 ** 30
    files['kwargs-huge-allocation'] = (dumps_network_pkl(data), NetworkPickleError, 'would allocate more than')
    data = SafeUnpickler(io.BytesIO(real)).load()
    data['G'].state['_init_kwargs']['mapping_kwargs']['num_layers'] = 10 ** 6
    files['kwargs-million-layers'] = (dumps_network_pkl(data), NetworkPickleError, 'would (build|allocate) more than')
    data = SafeUnpickler(io.BytesIO(real)).load()
    data['G'].state['_init_kwargs']['z_dim'] = 10 ** 100
    files['kwargs-huge-int'] = (dumps_network_pkl(data), UnsafePickleError, 'implausibly large')
    data = SafeUnpickler(io.BytesIO(real)).load()
    data['G'].state['_init_kwargs']['mapping_kwargs'] = PersistentRecord(dict(type='class', class_name='X',
                                                                             module_src='', state={}))
    files['kwargs-not-plain-data'] = (dumps_network_pkl(data), UnsafePickleError, 'must be plain data')
    data = SafeUnpickler(io.BytesIO(real)).load()
    data['G'].state['_init_kwargs']['mapping_kwargs']['class_name'] = 'os.system'
    files['kwargs-class-name'] = (dumps_network_pkl(data), UnsafePickleError, r"class_name = 'os\.system'")
    # Broken files.
    files['truncated'] = (real[:len(real) // 3], NetworkPickleError, 'truncated or corrupt')
    files['truncated-header'] = (real[:1], NetworkPickleError, 'not a readable network pickle')
    files['empty'] = (b'', NetworkPickleError, 'not a readable network pickle')
    files['not-a-pickle'] = (b'\x89PNG\r\n\x1a\n' + bytes(range(256)), NetworkPickleError, 'not a readable')
    files['persistent-id'] = (b'\x80\x02X\x01\x00\x00\x00xQ.', UnsafePickleError, 'opcode BINPERSID')
    # The C unpickler allocates a bytearray's declared size before reading it: refused by the
    # opcode scan before the unpickler runs (as truncated, or as a refused opcode).
    files['bytearray-declaring-a-terabyte'] = (b'\x80\x05\x96' + struct.pack('<Q', 2 ** 40) + b'xx.', NetworkPickleError,
                                               'truncated or corrupt')
    files['bytearray'] = (b'\x80\x05\x96' + struct.pack('<Q', 2) + b'xx.', UnsafePickleError, 'opcode BYTEARRAY8')
    files['protocol-0-instance'] = (b'\x80\x02(ios\nsystem\nS\'true\'\np0\n.', UnsafePickleError, 'opcode INST')
    return files


@pytest.fixture(scope='module')
def hostile(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('hostile')
    marker = tmp / 'pwned'
    out = {}
    for name, (blob, error, pattern) in hostile_files(marker).items():
        path = tmp / f'{name}.pkl'
        path.write_bytes(blob)
        out[name] = (path, error, pattern)
    return marker, out


HOSTILE_NAMES = sorted(hostile_files(Path('/nonexistent/pwned')))


@pytest.mark.parametrize('name', HOSTILE_NAMES)
def test_hostile_file_is_refused(hostile, name):
    marker, files = hostile
    path, error, pattern = files[name]
    with pytest.raises(error, match=pattern) as info:
        load_network_pkl(path)
    assert isinstance(info.value, NetworkPickleError)
    assert str(path) in str(info.value)                  # the message says which file
    assert not marker.exists()


@pytest.mark.parametrize('name', HOSTILE_NAMES)
def test_inspect_refuses_each_hostile_file_in_one_line(hostile, name):
    marker, files = hostile
    path = files[name][0]
    result = CliRunner().invoke(cli, ['inspect', str(path)])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: '), result.output
    assert not marker.exists()


def test_a_valid_storage_in_the_crafted_format_loads():
    """The crafting helpers write what torch writes (so the refusals above are not format errors)."""
    blob = craft({'x': tensor_call(legacy_storage(4, struct.pack('<4f', 1, 2, 3, 4)), (2, 2), (2, 1))})
    x = SafeUnpickler(io.BytesIO(blob)).load()['x']
    assert torch.equal(x, torch.tensor([[1., 2.], [3., 4.]]))


def test_plain_torch_layers_are_never_constructed():
    """Called from a pickle, a plain layer class makes a bare instance: ``Linear(65536, 65536)``
    in a few bytes would otherwise allocate and fill 16 GiB before anything could object."""
    layer = SafeUnpickler(io.BytesIO(craft({'x': Call('torch.nn.modules.linear', 'Linear', (3, 5))}))).load()['x']
    assert isinstance(layer, torch.nn.Linear)
    assert '_parameters' not in layer.__dict__ and 'in_features' not in layer.__dict__
    # A real layer inside a real module's state still comes back whole (its state is set by BUILD).
    real = SafeUnpickler(io.BytesIO(pickle.dumps({'x': torch.nn.Linear(3, 5)}, protocol=4))).load()['x']
    assert real.weight.shape == (5, 3) and real.in_features == 3


def test_stylegan3_pickles_are_read_as_data_with_their_numpy_arrays(fixtures_dir):
    """stylegan3 networks keep ndarrays and numpy scalars in their state: read without running
    anything, and written back with plain numpy globals (what the host's loader reads)."""
    import numpy as np
    path = fixtures_dir.parent / 'stylegan3' / 't32' / 'network-snapshot.pkl'
    if not path.is_file():
        pytest.skip(f'no stylegan3 fixtures at {path.parent}')
    data = load_network_pkl(path, rebuild=False)
    arrays = []

    def walk(state):
        for value in state.values():
            if isinstance(value, np.ndarray):
                arrays.append(value)
        for child in (state.get('_modules') or {}).values():
            if isinstance(child, PersistentRecord):
                walk(child.state)
    walk(data['G_ema'].state)
    assert arrays and all(a.dtype == np.int64 for a in arrays)
    blob = dumps_network_pkl({'G': data['G_ema']})
    assert b'SafeArray' not in blob and b'plugin' not in blob.split(b'module_src')[0]
    again = SafeUnpickler(io.BytesIO(blob)).load()['G']
    assert again.state.keys() == data['G_ema'].state.keys()


def test_a_plain_numpy_scalar_loads():
    import numpy as np
    value = SafeUnpickler(io.BytesIO(pickle.dumps({'x': np.float32(1.5)}, protocol=2))).load()['x']
    assert value == np.float32(1.5) and value.dtype == np.float32


def test_unknown_module_source_is_kept_inert(tmp_path):
    """A shim naming a module outside the registry (even os.system) is data, never imported."""
    marker = tmp_path / 'pwned'
    data = records(small_snapshot())
    data['augment_pipe'] = PersistentRecord(dict(
        type='class', version=6, class_name='system',
        module_src=f'# gan-cocktail persistent class: family=- module=os class=system\nimport os; os.system("{marker_cmd(marker)}")\n',
        state=dict(_init_args=(marker_cmd(marker),), _init_kwargs={}, _parameters={}, _buffers={}, _modules={})))
    path = tmp_path / 'inert.pkl'
    save_network_pkl(data, path)
    with pytest.warns(UserWarning, match='kept as inert data'):
        loaded = load_network_pkl(path)
    assert isinstance(loaded['augment_pipe'], PersistentRecord) and isinstance(loaded['G'], Generator)
    assert not marker.exists()
