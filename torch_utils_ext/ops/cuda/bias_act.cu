// Fused bias + activation + gain + clamp for the piecewise-linear activations StyleGAN2 uses
// (linear, relu, lrelu), and the multiplier kernel its backward passes share.
//
// forward:    y = clamp(act(x + b[c]) * gain, -clamp, clamp), c = (i / inner) % C
// multiplier: dx = g * gain * act'(y) * [clamp < 0 or |y| < clamp]
// act' is read from the sign of y (gain > 0 keeps it); it is constant on each piece, so the
// second derivative is zero almost everywhere and the same multiplier serves every order.
// The reference (torch_utils_ext/ops/bias_act.py, _bias_act_ref) is the oracle.
#include <torch/extension.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float act_fn(float v, int act, float alpha) {
    if (act == 1) return v > 0.f ? v : 0.f;
    if (act == 2) return v > 0.f ? v : v * alpha;
    return v;
}

__device__ __forceinline__ float act_slope(float y, int act, float alpha) {
    if (act == 1) return y > 0.f ? 1.f : 0.f;
    if (act == 2) return y > 0.f ? 1.f : alpha;
    return 1.f;
}

template <typename scalar_t>
__global__ void forward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ b, scalar_t* __restrict__ y,
                               int64_t n, int64_t inner, int64_t channels, int act, float alpha, float gain,
                               float clamp) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float v = (float)x[i];
        if (b != nullptr) v += (float)b[(i / inner) % channels];
        v = act_fn(v, act, alpha) * gain;
        if (clamp >= 0.f) v = fminf(fmaxf(v, -clamp), clamp);
        y[i] = (scalar_t)v;
    }
}

template <typename scalar_t>
__global__ void multiplier_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ y,
                                  scalar_t* __restrict__ out, int64_t n, int act, float alpha, float gain,
                                  float clamp) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const float yv = (float)y[i];
        float m = gain * act_slope(yv, act, alpha);
        if (clamp >= 0.f && fabsf(yv) >= clamp) m = 0.f;
        out[i] = (scalar_t)((float)g[i] * m);
    }
}

int blocks_for(int64_t n) {
    const int64_t b = (n + kThreads - 1) / kThreads;
    return (int)(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

}  // namespace

torch::Tensor bias_act_forward(torch::Tensor x, torch::Tensor b, int64_t dim, int64_t act, double alpha, double gain,
                               double clamp) {
    TORCH_CHECK(x.is_cuda() && x.is_contiguous(), "bias_act: x must be a contiguous CUDA tensor");
    TORCH_CHECK(act >= 0 && act <= 2, "bias_act: the kernel handles linear, relu and lrelu");
    const bool has_b = b.numel() > 0;
    if (has_b) TORCH_CHECK(b.is_cuda() && b.is_contiguous() && b.dim() == 1 && b.size(0) == x.size(dim) &&
                           b.scalar_type() == x.scalar_type(), "bias_act: b must match x along dim");
    const c10::cuda::OptionalCUDAGuard guard(device_of(x));
    int64_t inner = 1;
    for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.size(d);
    auto y = torch::empty_like(x);
    const int64_t n = x.numel();
    if (n == 0) return y;
    AT_DISPATCH_FLOATING_TYPES_AND_HALF(x.scalar_type(), "bias_act_forward", [&] {
        forward_kernel<scalar_t><<<blocks_for(n), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
            x.data_ptr<scalar_t>(), has_b ? b.data_ptr<scalar_t>() : nullptr, y.data_ptr<scalar_t>(), n, inner,
            x.size(dim), (int)act, (float)alpha, (float)gain, (float)clamp);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return y;
}

torch::Tensor bias_act_multiplier(torch::Tensor g, torch::Tensor y, int64_t act, double alpha, double gain,
                                  double clamp) {
    TORCH_CHECK(g.is_cuda() && y.is_cuda() && g.is_contiguous() && y.is_contiguous() && g.sizes() == y.sizes() &&
                g.scalar_type() == y.scalar_type(), "bias_act: grad and output must match");
    const c10::cuda::OptionalCUDAGuard guard(device_of(g));
    auto out = torch::empty_like(g);
    const int64_t n = g.numel();
    if (n == 0) return out;
    AT_DISPATCH_FLOATING_TYPES_AND_HALF(g.scalar_type(), "bias_act_multiplier", [&] {
        multiplier_kernel<scalar_t><<<blocks_for(n), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
            g.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), n, (int)act, (float)alpha,
            (float)gain, (float)clamp);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return out;
}
