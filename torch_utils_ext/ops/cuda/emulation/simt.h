// A CPU emulation of the CUDA execution model, just enough to run this project's kernels
// unchanged on a machine without a GPU (CI, laptops) and compare them with their references.
//
// torch_utils_ext/emulation.py rewrites a .cu file (each `kernel<<<grid, block, smem, stream>>>(args)`
// becomes `::cuda_emu::launch(::cuda_emu::config(grid, block, smem, stream), kernel, args)`,
// `.is_cuda()` becomes `.is_cpu()`, the c10/cuda includes are dropped) and includes this header
// after the file's own includes. Everything else, the kernel bodies above all, compiles as written.
//
// Model: the blocks of a launch run one after the other; the threads of a block are cooperative
// fibers (ucontext) on one OS thread, switched only at barriers (__syncthreads, __syncwarp and
// the warp shuffles). That is one legal CUDA schedule, deterministic for a given schedule seed,
// and it turns a barrier that not every thread reaches (divergent __syncthreads, a shuffle inside
// a divergent branch) into an error instead of a hang.
//
// Two cheap traps for the bugs a single in-order schedule would hide:
// - every __shared__ array is filled with 0xFF bytes (NaN for float, half and double; -1 for
//   integers) when a block first declares it, so a read before any thread wrote it (a missing
//   __syncthreads, an uninitialised slot) gives NaN instead of a left-over value;
// - with $CUDA_EMU_SCHEDULE_SEED != 0 the blocks run in a seeded shuffled order and, between
//   barriers, the threads of a block too (0: in order), so a test can run two orders.
// What it cannot show: memory-ordering races and races within a warp that real hardware would
// expose (threads switch only at barriers), reads of lanes that exited before a shuffle mask says
// (masks are not checked), fast-math rounding, and speed.
#pragma once

#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <unordered_map>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace cuda_emu {

constexpr int kWarp = 32;
constexpr size_t kStackBytes = 64 * 1024;     // kernels keep little on the stack

// Launch geometry and the running thread's coordinates, read through the CUDA names below.
inline dim3 grid_dim, block_dim, block_idx, thread_idx;

struct Barrier {
    int expected = 0;      // threads that still take part (exited threads drop out)
    int arrived = 0;
    long generation = 0;
};

struct Fiber {
    ucontext_t context;
    std::unique_ptr<char[]> stack;
    dim3 idx;
    int linear = 0;
    bool done = false;
    Barrier* waiting_on = nullptr;
    long waiting_generation = 0;
};

struct Block {
    std::vector<Fiber> fibers;
    Barrier block_barrier;
    std::vector<Barrier> warp_barriers;
    std::vector<unsigned char> exchange;        // one 8-byte slot per thread, for the shuffles
    ucontext_t scheduler;
    int current = -1;
    void (*entry)(void*) = nullptr;
    void* entry_arg = nullptr;
};

inline Block* block = nullptr;
inline std::mutex launch_mutex;                 // one launch at a time: __shared__ is static storage
inline long block_serial = 0;                   // counts blocks across launches: a new one re-poisons
inline std::mt19937_64 schedule_rng;
inline bool shuffled = false;

// Called (by the translated source) right after each __shared__ declaration: the first thread of
// a block to reach it fills the array with NaN bytes; later threads of that block leave it be.
inline void poison_shared(void* p, size_t bytes) {
    static std::unordered_map<void*, long> filled_in;
    long& serial = filled_in[p];
    if (serial != block_serial) {
        std::memset(p, 0xFF, bytes);
        serial = block_serial;
    }
}

inline Fiber& self() { return block->fibers[block->current]; }

// Arrive at a barrier and switch to other threads until every participant has arrived.
inline void wait(Barrier& b) {
    Fiber& me = self();
    if (++b.arrived >= b.expected) {
        b.arrived = 0;
        ++b.generation;                          // releases everyone waiting on this generation
        return;
    }
    me.waiting_on = &b;
    me.waiting_generation = b.generation;
    swapcontext(&me.context, &block->scheduler);
}

inline void drop(Barrier& b) {                  // an exiting thread no longer takes part
    --b.expected;
    if (b.arrived > 0 && b.arrived >= b.expected) {
        b.arrived = 0;
        ++b.generation;
    }
}

inline void fiber_main() {
    Block* blk = block;
    Fiber& me = blk->fibers[blk->current];
    blk->entry(blk->entry_arg);
    me.done = true;
    drop(blk->block_barrier);
    drop(blk->warp_barriers[me.linear / kWarp]);
    swapcontext(&me.context, &blk->scheduler);
}

inline bool runnable(const Fiber& f) {
    return !f.done && (f.waiting_on == nullptr || f.waiting_on->generation != f.waiting_generation);
}

// Run one block: every thread to completion, switching at barriers.
inline void run_block(Block& blk) {
    const unsigned n = block_dim.x * block_dim.y * block_dim.z;
    blk.block_barrier = Barrier{(int)n, 0, 0};
    for (unsigned w = 0; w < blk.warp_barriers.size(); ++w) {
        const int lanes = (int)std::min<unsigned>(kWarp, n - w * kWarp);
        blk.warp_barriers[w] = Barrier{lanes, 0, 0};
    }
    for (unsigned t = 0; t < n; ++t) {
        Fiber& f = blk.fibers[t];
        f.done = false;
        f.waiting_on = nullptr;
        getcontext(&f.context);
        f.context.uc_stack.ss_sp = f.stack.get();
        f.context.uc_stack.ss_size = kStackBytes;
        f.context.uc_link = nullptr;
        makecontext(&f.context, fiber_main, 0);
    }
    std::vector<unsigned> order(n);
    std::iota(order.begin(), order.end(), 0u);
    unsigned finished = 0;
    while (finished < n) {
        bool progressed = false;
        if (shuffled) std::shuffle(order.begin(), order.end(), schedule_rng);
        for (unsigned t : order) {
            Fiber& f = blk.fibers[t];
            if (!runnable(f)) continue;
            f.waiting_on = nullptr;
            blk.current = (int)t;
            thread_idx = f.idx;
            swapcontext(&blk.scheduler, &f.context);
            progressed = true;
            if (f.done) ++finished;
        }
        if (!progressed && finished < n)
            throw std::runtime_error("cuda emulation: deadlock in block (" + std::to_string(block_idx.x) + ", " +
                                     std::to_string(block_idx.y) + ", " + std::to_string(block_idx.z) +
                                     "): threads wait at a barrier that others never reach");
    }
}

template <typename Kernel, typename... Args>
struct Call {
    Kernel kernel;
    std::tuple<Args...> args;
    static void invoke(void* p) { std::apply(static_cast<Call*>(p)->kernel, static_cast<Call*>(p)->args); }
};

struct Config {
    dim3 grid, block;
    size_t shared_bytes;
};

template <typename Stream>
inline Config config(dim3 grid, dim3 block, size_t shared_bytes, Stream&&) { return {grid, block, shared_bytes}; }
inline Config config(dim3 grid, dim3 block, size_t shared_bytes = 0) { return {grid, block, shared_bytes}; }

// The arguments are evaluated once, on the host side, and copied into the launch, as CUDA does.
template <typename Kernel, typename... Args>
void launch(const Config& cfg, Kernel kernel, Args... args) {
    const unsigned n = cfg.block.x * cfg.block.y * cfg.block.z;
    if (n == 0 || n > 1024) throw std::runtime_error("cuda emulation: invalid block size " + std::to_string(n));
    if (cfg.grid.x == 0 || cfg.grid.y == 0 || cfg.grid.z == 0 || cfg.grid.y > 65535 || cfg.grid.z > 65535)
        throw std::runtime_error("cuda emulation: invalid grid size");
    if (cfg.shared_bytes != 0) throw std::runtime_error("cuda emulation: dynamic shared memory is not emulated");
    std::lock_guard<std::mutex> lock(launch_mutex);
    Call<Kernel, Args...> call{kernel, std::tuple<Args...>(args...)};
    Block blk;
    blk.entry = &Call<Kernel, Args...>::invoke;
    blk.entry_arg = &call;
    blk.fibers.resize(n);
    for (unsigned t = 0; t < n; ++t) {
        blk.fibers[t].stack.reset(new char[kStackBytes]);
        blk.fibers[t].linear = (int)t;
        blk.fibers[t].idx = dim3(t % cfg.block.x, (t / cfg.block.x) % cfg.block.y, t / (cfg.block.x * cfg.block.y));
    }
    blk.warp_barriers.resize((n + kWarp - 1) / kWarp);
    blk.exchange.resize((size_t)n * 8);
    grid_dim = cfg.grid;
    block_dim = cfg.block;
    block = &blk;
    struct Reset { ~Reset() { block = nullptr; } } reset;
    const char* seed = std::getenv("CUDA_EMU_SCHEDULE_SEED");
    const unsigned long long seed_value = seed ? std::strtoull(seed, nullptr, 10) : 0ull;
    shuffled = seed_value != 0;
    schedule_rng.seed(seed_value);
    const size_t blocks = (size_t)cfg.grid.x * cfg.grid.y * cfg.grid.z;
    std::vector<size_t> block_order(blocks);
    std::iota(block_order.begin(), block_order.end(), (size_t)0);
    if (shuffled) std::shuffle(block_order.begin(), block_order.end(), schedule_rng);
    for (size_t b : block_order) {
        block_idx = dim3((unsigned)(b % cfg.grid.x), (unsigned)((b / cfg.grid.x) % cfg.grid.y),
                         (unsigned)(b / ((size_t)cfg.grid.x * cfg.grid.y)));
        ++block_serial;
        run_block(blk);
    }
}

// Warp shuffles: every lane publishes its value, the warp meets, each lane reads its source
// lane's value, the warp meets again (so that the slots can be reused).
template <typename T>
T shuffle(T v, int src_lane_of_me_fn(int lane, int arg, int width, bool& valid), int arg, int width) {
    static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 8, "shuffle of an unsupported type");
    Fiber& me = self();
    const int lane = me.linear % kWarp, warp = me.linear / kWarp;
    std::memcpy(&block->exchange[(size_t)me.linear * 8], &v, sizeof(T));
    wait(block->warp_barriers[warp]);
    bool valid = true;
    const int src = src_lane_of_me_fn(lane, arg, width, valid);
    T out = v;
    if (valid) std::memcpy(&out, &block->exchange[(size_t)(warp * kWarp + src) * 8], sizeof(T));
    wait(block->warp_barriers[warp]);
    return out;
}

inline int lane_down(int lane, int d, int width, bool& valid) { valid = (lane % width) + d < width; return lane + d; }
inline int lane_up(int lane, int d, int width, bool& valid) { valid = (lane % width) - d >= 0; return lane - d; }
inline int lane_xor(int lane, int m, int width, bool& valid) {
    const int src = lane ^ m;
    valid = src / width == lane / width;
    return src;
}
inline int lane_index(int lane, int s, int width, bool& valid) {
    valid = true;
    return (lane / width) * width + ((s % width) + width) % width;
}

}  // namespace cuda_emu

#define threadIdx (::cuda_emu::thread_idx)
#define blockIdx (::cuda_emu::block_idx)
#define blockDim (::cuda_emu::block_dim)
#define gridDim (::cuda_emu::grid_dim)
#define warpSize 32
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define C10_CUDA_KERNEL_LAUNCH_CHECK() ((void)0)
#define C10_CUDA_CHECK(expr) ((void)(expr))

inline void __syncthreads() { ::cuda_emu::wait(::cuda_emu::block->block_barrier); }
inline void __syncwarp(unsigned = 0xffffffffu) {
    ::cuda_emu::wait(::cuda_emu::block->warp_barriers[::cuda_emu::self().linear / ::cuda_emu::kWarp]);
}
template <typename T> T __shfl_down_sync(unsigned, T v, int d, int width = 32) {
    return ::cuda_emu::shuffle(v, ::cuda_emu::lane_down, d, width);
}
template <typename T> T __shfl_up_sync(unsigned, T v, int d, int width = 32) {
    return ::cuda_emu::shuffle(v, ::cuda_emu::lane_up, d, width);
}
template <typename T> T __shfl_xor_sync(unsigned, T v, int m, int width = 32) {
    return ::cuda_emu::shuffle(v, ::cuda_emu::lane_xor, m, width);
}
template <typename T> T __shfl_sync(unsigned, T v, int s, int width = 32) {
    return ::cuda_emu::shuffle(v, ::cuda_emu::lane_index, s, width);
}
template <typename T> T __ldg(const T* p) { return *p; }
template <typename T> T atomicAdd(T* p, T v) {     // fibers switch only at barriers: already atomic
    const T old = *p;
    *p = old + v;
    return old;
}
inline float rsqrtf(float v) { return 1.f / std::sqrt(v); }
inline float __expf(float v) { return std::exp(v); }
inline float __fdividef(float a, float b) { return a / b; }

// What the dropped c10/cuda includes provided to the launchers.
namespace c10 {
namespace cuda {
struct CUDAStream {};
inline CUDAStream getCurrentCUDAStream(int = -1) { return {}; }
struct OptionalCUDAGuard {
    template <typename T> explicit OptionalCUDAGuard(T&&) {}
};
struct CUDAGuard {
    template <typename T> explicit CUDAGuard(T&&) {}
};
}  // namespace cuda
}  // namespace c10
