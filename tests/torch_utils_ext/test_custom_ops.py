"""The custom-op loader: nothing attempted on CPU; a failed build warns once, falls back,
and is never retried (in this process or, through its marker, in the next)."""
import warnings

import pytest
import torch

from torch_utils_ext import custom_ops


@pytest.fixture(autouse=True)
def fresh(tmp_path, monkeypatch):
    monkeypatch.setenv('COCKTAIL_EXT_CACHE', str(tmp_path))
    custom_ops.reset()
    yield
    custom_ops.reset()


def source(tmp_path):
    path = tmp_path / 'op.cu'
    path.write_text('// kernel\n')
    return [str(path)]


def test_nothing_is_attempted_without_cuda(tmp_path, monkeypatch):
    from torch.utils import cpp_extension
    calls = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(cpp_extension, 'load', lambda **kw: calls.append(kw))
    assert custom_ops.get_plugin('op', source(tmp_path)) is None
    assert calls == []


def test_failed_build_warns_once_and_is_not_retried(tmp_path, monkeypatch):
    from torch.utils import cpp_extension
    calls = []

    def failing_load(**kwargs):
        calls.append(kwargs['name'])
        raise RuntimeError('nvcc: command not found')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(cpp_extension, 'load', failing_load)
    srcs = source(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        for _ in range(5):
            assert custom_ops.get_plugin('op', srcs) is None
    assert calls == ['op']
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and 'nvcc: command not found' in messages[0] and 'reference' in messages[0]
    # A new process (simulated by forgetting in-memory state) does not rebuild either.
    custom_ops.reset()
    with pytest.warns(UserWarning, match='earlier build of these sources failed'):
        assert custom_ops.get_plugin('op', srcs) is None
    assert calls == ['op']
    # Changed sources get a new cache key and a new attempt.
    custom_ops.reset()
    (tmp_path / 'op.cu').write_text('// kernel v2\n')
    with pytest.warns(UserWarning, match='build failed'):
        custom_ops.get_plugin('op', srcs)
    assert calls == ['op', 'op']


def test_successful_build_is_cached(tmp_path, monkeypatch):
    from torch.utils import cpp_extension
    calls = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(cpp_extension, 'load', lambda **kw: calls.append(kw) or 'module')
    srcs = source(tmp_path)
    assert custom_ops.get_plugin('op', srcs) == 'module' and custom_ops.get_plugin('op', srcs) == 'module'
    assert len(calls) == 1 and calls[0]['build_directory'].startswith(str(tmp_path))


def test_layers_use_the_reference_unless_fused_ops_are_opted_in(monkeypatch):
    from torch_utils_ext.ops import default_impl
    monkeypatch.delenv('COCKTAIL_FUSED_OPS', raising=False)
    assert default_impl() == 'ref'
    monkeypatch.setenv('COCKTAIL_FUSED_OPS', '1')
    assert default_impl() == 'cuda'


def test_cuda_impl_on_cpu_tensors_is_the_reference_and_builds_nothing(tmp_path, monkeypatch):
    from torch.utils import cpp_extension

    from torch_utils_ext.ops.bias_act import bias_act
    calls = []
    monkeypatch.setattr(cpp_extension, 'load', lambda **kw: calls.append(kw))
    x, b = torch.randn([2, 3, 4, 4]), torch.randn([3])
    assert torch.equal(bias_act(x, b, act='lrelu', clamp=0.3, impl='cuda'),
                       bias_act(x, b, act='lrelu', clamp=0.3, impl='ref'))
    assert calls == []
