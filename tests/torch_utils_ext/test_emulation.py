"""The CPU emulator of the CUDA kernels: the source rewriting, the execution model (block and warp
barriers, shuffles, 2D blocks and grids, threads that exit early, a divergent barrier reported
instead of hanging), and that an emulated comparison catches a real bug in a kernel."""
import os

import pytest
import torch

from torch_utils_ext import emulation
from torch_utils_ext.emulation import TranslationError, translate

CUDA_DIR = os.path.join(os.path.dirname(emulation.__file__), 'ops', 'cuda')


def test_translate_rewrites_launches_checks_and_includes():
    src = '''#include <torch/extension.h>
#include <c10/cuda/CUDAGuard.h>
#include "cuda_runtime.h"
void f(torch::Tensor x) {
    TORCH_CHECK(x.is_cuda(), "x");
    kern<scalar_t><<<blocks_for(n), 256, 0, c10::cuda::getCurrentCUDAStream()>>>(
        x.data_ptr<scalar_t>(), g(1, (2)), n);
    other<<<dim3(a, b), k>>>();
}
'''
    out = translate(src)
    assert '// (emulation) #include <c10/cuda/CUDAGuard.h>' in out
    assert '// (emulation) #include "cuda_runtime.h"' in out
    assert out.index('#include "simt.h"') > out.index('#include <torch/extension.h>')
    assert 'x.is_cpu()' in out and 'is_cuda' not in out
    assert ('::cuda_emu::launch(::cuda_emu::config(blocks_for(n), 256, 0, c10::cuda::getCurrentCUDAStream()), '
            'kern<scalar_t>, x.data_ptr<scalar_t>(), g(1, (2)), n);') in out
    assert '::cuda_emu::launch(::cuda_emu::config(dim3(a, b), k), other);' in out
    assert '<<<' not in out


@pytest.mark.parametrize('bad', ['k<<<1, 2>>>;', 'k<<<1, 2(x);', 'k<<<1, 2>>>(x, f(y);', '<<<1, 2>>>(x);'])
def test_translate_rejects_malformed_launches(bad):
    with pytest.raises(TranslationError):
        translate('#include <torch/extension.h>\nvoid f() { ' + bad + ' }\n')


def test_every_op_source_translates():
    for name in os.listdir(CUDA_DIR):
        if name.endswith('.cu'):
            with open(os.path.join(CUDA_DIR, name)) as f:
                out = translate(f.read())
            assert '<<<' not in out and '::cuda_emu::launch(' in out, name


PROBE_KERNELS = r'''
#include <torch/extension.h>

namespace {

// A block-wide sum over a 2D block (x: 64, y: 4) by warp shuffles and shared memory.
__global__ void block_sum_kernel(const float* x, float* out, int n) {
    __shared__ float partial[32];
    const int t = threadIdx.y * blockDim.x + threadIdx.x;
    const int threads = blockDim.x * blockDim.y;
    const int b = blockIdx.y * gridDim.x + blockIdx.x;
    float v = 0.f;
    for (int i = t; i < n; i += threads) v += x[(size_t)b * n + i];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if ((t & 31) == 0) partial[t >> 5] = v;
    __syncthreads();
    if (t < 32) {
        v = t < threads / 32 ? partial[t] : 0.f;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);   // every lane gets the sum
        if (t == 5) out[b] = v;
    }
}

// Threads past the end exit at once; the rest still meet at a barrier and count with atomics.
__global__ void early_exit_kernel(int* counter, float* out, int n) {
    __shared__ float buf[256];
    const int t = threadIdx.x;
    if (t >= n) return;
    buf[t] = (float)t;
    __syncthreads();
    out[t] = buf[n - 1 - t];
    atomicAdd(counter, 1);
}

// Half of the warp waits at the block barrier, the other half in a full-warp shuffle: a hang
// (or worse) on a GPU, an error here.
__global__ void divergent_kernel(float* out) {
    float v = (float)threadIdx.x;
    if (threadIdx.x < 16) __syncthreads();
    else v = __shfl_down_sync(0xffffffffu, v, 1);
    out[threadIdx.x] = v;
}

// Each thread stores its value, then thread 0 sums them: with the barrier (sync != 0) that is
// right in any order; without it, thread 0 may read slots no thread has written yet.
__global__ void store_then_sum_kernel(const float* x, float* out, int sync) {
    __shared__ float slots[64];
    slots[threadIdx.x] = x[blockIdx.x * 64 + threadIdx.x];
    if (sync) __syncthreads();
    if (threadIdx.x == 0) {
        float v = 0.f;
        for (int i = 0; i < 64; ++i) v += slots[i];
        out[blockIdx.x] = v;
    }
}

// Reads a slot that no thread ever writes (slot 63 when only 63 threads write).
__global__ void uninitialised_read_kernel(float* out) {
    __shared__ float slots[64];
    if (threadIdx.x < 63) slots[threadIdx.x] = 1.f;
    __syncthreads();
    out[threadIdx.x] = slots[(threadIdx.x + 1) % 64];
}

// The order in which blocks and threads run: each records its arrival number.
__global__ void arrival_kernel(int* counter, int* thread_arrival, int* block_arrival) {
    thread_arrival[blockIdx.x * blockDim.x + threadIdx.x] = atomicAdd(counter, 1);
    if (threadIdx.x == 0) block_arrival[blockIdx.x] = atomicAdd(counter + 1, 1);
}

}  // namespace

torch::Tensor store_then_sum(torch::Tensor x, int64_t sync) {
    auto out = torch::zeros({x.size(0)}, x.options());
    store_then_sum_kernel<<<(unsigned)x.size(0), 64>>>(x.data_ptr<float>(), out.data_ptr<float>(), (int)sync);
    return out;
}

torch::Tensor uninitialised_read() {
    auto out = torch::zeros({64}, torch::kFloat32);
    uninitialised_read_kernel<<<1, 64>>>(out.data_ptr<float>());
    return out;
}

std::vector<torch::Tensor> arrival(int64_t blocks, int64_t threads) {
    auto counter = torch::zeros({2}, torch::kInt32);
    auto t = torch::zeros({blocks * threads}, torch::kInt32);
    auto b = torch::zeros({blocks}, torch::kInt32);
    arrival_kernel<<<(unsigned)blocks, (unsigned)threads>>>(counter.data_ptr<int>(), t.data_ptr<int>(),
                                                            b.data_ptr<int>());
    return {t, b};
}

torch::Tensor block_sum(torch::Tensor x) {
    auto out = torch::empty({x.size(0) * x.size(1)}, x.options());
    block_sum_kernel<<<dim3(x.size(1), x.size(0)), dim3(64, 4)>>>(x.data_ptr<float>(), out.data_ptr<float>(),
                                                                  (int)x.size(2));
    return out;
}

std::vector<torch::Tensor> early_exit(int64_t n) {
    auto counter = torch::zeros({1}, torch::kInt32);
    auto out = torch::zeros({n}, torch::kFloat32);
    early_exit_kernel<<<1, 256>>>(counter.data_ptr<int>(), out.data_ptr<float>(), (int)n);
    return {counter, out};
}

void divergent() {
    auto out = torch::zeros({32}, torch::kFloat32);
    divergent_kernel<<<1, 32>>>(out.data_ptr<float>());
}
'''

# The probe's bindings: the real hypermod_weight.cpp (forward, backward) plus the probe kernels.
PROBE_DECLARATIONS = r'''
torch::Tensor block_sum(torch::Tensor x);
std::vector<torch::Tensor> early_exit(int64_t n);
void divergent();
torch::Tensor store_then_sum(torch::Tensor x, int64_t sync);
torch::Tensor uninitialised_read();
std::vector<torch::Tensor> arrival(int64_t blocks, int64_t threads);
'''
PROBE_DEFS = '''
    m.def("block_sum", &block_sum);
    m.def("early_exit", &early_exit);
    m.def("divergent", &divergent);
    m.def("store_then_sum", &store_then_sum);
    m.def("uninitialised_read", &uninitialised_read);
    m.def("arrival", &arrival);'''
MODULE_OPENING = 'PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {'

# A one-character bug in the backward of the real kernel: d^2 S w instead of d^3 S w.
MUTATION = ('const float d3S = d * d * d * S;', 'const float d3S = d * d * S;')


@pytest.fixture(scope='module')
def probe(tmp_path_factory):
    if not emulation.have_compiler():
        pytest.skip('needs a C++ compiler')
    root = tmp_path_factory.mktemp('probe')
    with open(os.path.join(CUDA_DIR, 'hypermod_weight.cu')) as f:
        kernel = f.read()
    with open(os.path.join(CUDA_DIR, 'hypermod_weight.cpp')) as f:
        bindings = f.read()
    assert MUTATION[0] in kernel, 'the mutation no longer applies: update MUTATION'
    assert MODULE_OPENING in bindings, 'hypermod_weight.cpp has no PYBIND11_MODULE block'
    bindings = bindings.replace(MODULE_OPENING, PROBE_DECLARATIONS + MODULE_OPENING + PROBE_DEFS)
    files = {'probe_kernels.cu': PROBE_KERNELS, 'probe_bindings.cpp': bindings,
             'hypermod_mutant.cu': kernel.replace(*MUTATION)}
    for name, text in files.items():
        (root / name).write_text(text)
    return emulation.build('emulation_probe', [str(root / name) for name in files])


def test_block_reduction_with_shuffles_over_2d_blocks_and_grid(probe):
    x = torch.randn([3, 5, 1000], generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(probe.block_sum(x), x.sum(-1).flatten(), rtol=1e-5, atol=1e-4)


def test_exited_threads_leave_the_barrier(probe):
    counter, out = probe.early_exit(100)
    assert int(counter) == 100
    assert torch.equal(out, torch.arange(99, -1, -1, dtype=torch.float32))


def test_divergent_barrier_is_an_error_not_a_hang(probe):
    with pytest.raises(RuntimeError, match='deadlock'):
        probe.divergent()


def test_emulated_comparison_catches_a_kernel_bug(probe, monkeypatch):
    """The mutant kernel's forward still matches the reference, its input gradients do not."""
    from torch_utils_ext.ops import hypermod_weight as op
    torch.manual_seed(0)
    base = torch.randn([8, 16, 3, 3])
    styles = torch.randn([4, 16], requires_grad=True)
    gamma = torch.randn([4, 8, 16], requires_grad=True)
    beta = (0.1 * torch.randn([4, 8, 16])).requires_grad_(True)
    monkeypatch.setattr(op, '_plugin', lambda: probe)
    results = []
    with emulation.emulated_kernels():
        for impl in ('cuda', 'ref'):
            w = op.hypermod_weight(base, styles, gamma, beta, impl=impl)
            results.append((w.detach(), torch.autograd.grad((w * torch.linspace(-1, 1, w.numel()).reshape(w.shape)).sum(),
                                                            [gamma])[0]))
    (w_mutant, g_mutant), (w_ref, g_ref) = results
    torch.testing.assert_close(w_mutant, w_ref, rtol=1e-5, atol=1e-6)
    assert (g_mutant - g_ref).abs().max() > 1e-3 * g_ref.abs().max()


def test_shared_memory_starts_each_block_as_nan(probe):
    """A read of a slot no thread wrote is NaN, in every block and on every launch (not a value
    left over from the previous block or launch)."""
    for _ in range(2):
        out = probe.uninitialised_read()
        assert torch.isnan(out[62]) and not torch.isnan(out[:62]).any() and not torch.isnan(out[63])


def test_a_missing_barrier_fails_in_one_of_two_orders(probe):
    """Without the __syncthreads, thread 0 sums slots before the others store them in some
    schedule: NaN (the poisoned slots) in at least one of the in-order and a shuffled run; with
    it, every order gives the sum."""
    x = torch.randn([6, 64], generator=torch.Generator().manual_seed(0))
    broken = []
    for seed in (0, 7):
        with emulation.emulated_kernels(schedule_seed=seed):
            torch.testing.assert_close(probe.store_then_sum(x, 1), x.sum(1), rtol=1e-5, atol=1e-5)
            broken.append(torch.isnan(probe.store_then_sum(x, 0)).any().item())
    assert any(broken), 'the missing barrier went unnoticed in both orders'


def test_schedule_seed_shuffles_blocks_and_threads_reproducibly(probe):
    runs = {}
    for seed in (0, 3, 3, 5):
        with emulation.emulated_kernels(schedule_seed=seed):
            t, b = probe.arrival(8, 64)
        runs.setdefault(seed, []).append((t, b))
    t0, b0 = runs[0][0]
    assert torch.equal(b0, torch.arange(8, dtype=torch.int32)), 'seed 0 runs the blocks in order'
    assert torch.equal(t0, torch.arange(8 * 64, dtype=torch.int32)), 'seed 0 runs the threads in order'
    (t3, b3), (t3_again, b3_again) = runs[3]
    assert torch.equal(t3, t3_again) and torch.equal(b3, b3_again), 'a seed gives one schedule'
    assert not torch.equal(b3, b0) and not torch.equal(t3, t0)
    assert not torch.equal(runs[5][0][0], t3)
    assert sorted(b3.tolist()) == list(range(8)) and sorted(t3.tolist()) == list(range(8 * 64))


@pytest.mark.parametrize('op_name', ['hypermod_weight', 'bias_act', 'upfirdn2d'])
def test_the_ops_kernels_agree_in_two_schedules(op_name):
    """The real kernels give the same results in order and shuffled (their reductions do not
    depend on which thread runs first)."""
    if not emulation.have_compiler():
        pytest.skip('needs a C++ compiler')
    import importlib
    op = importlib.import_module(f'torch_utils_ext.ops.{op_name}')
    g = torch.Generator().manual_seed(0)
    outs = []
    for seed in (0, 11):
        with emulation.emulated_kernels(schedule_seed=seed):
            if op_name == 'hypermod_weight':
                base = torch.randn([8, 16, 3, 3], generator=g)
                args = (base, torch.randn([4, 16], generator=g), torch.randn([4, 8, 16], generator=g),
                        0.1 * torch.randn([4, 8, 16], generator=g))
                outs.append(op.hypermod_weight(*args, impl='cuda'))
            elif op_name == 'bias_act':
                x = torch.randn([4, 8, 5, 5], generator=g)
                outs.append(op.bias_act(x, torch.randn([8], generator=g), act='lrelu', impl='cuda'))
            else:
                x = torch.randn([2, 3, 9, 9], generator=g)
                f = torch.tensor([1., 3., 3., 1.])
                outs.append(op.upfirdn2d(x, f / f.sum(), up=2, padding=[2, 1, 2, 1], impl='cuda'))
        g.manual_seed(0)
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
