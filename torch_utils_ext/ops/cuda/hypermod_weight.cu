// Fused hyper-modulated, style-modulated, demodulated conv weights (forward and backward).
//
// For sample n and output channel o (one thread block each), over (i, k) = input channel x tap:
//   w[n,o,i,k]  = gain * (gamma[n,o,i] * base[o,i,k] + beta[n,o,i]) * styles[n,i]
//   d[n,o]      = rsqrt(sum_{i,k} w^2 + 1e-8)              (1 when not demodulating)
//   out[n,o,i,k] = w * d
// Backward, with S[n,o] = sum_{i,k} grad_out * w:
//   dw = d * grad_out - d^3 * S * w                         (grad_out when not demodulating)
//   dgamma[n,o,i] = gain * styles[n,i] * sum_k dw * base[o,i,k]
//   dbeta[n,o,i]  = gain * styles[n,i] * sum_k dw
//   dstyles_part[n,o,i] = gain * sum_k dw * (gamma * base + beta)    (summed over o by the caller)
// The reference (torch_utils_ext/ops/hypermod_weight.py, _hypermod_weight_ref) is the oracle.
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

namespace {

constexpr int kThreads = 256;

__device__ float block_sum(float v, float* shared) {
    for (int offset = 16; offset > 0; offset >>= 1)
        v += __shfl_down_sync(0xffffffffu, v, offset);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    const int warps = (blockDim.x + 31) >> 5;
    v = (threadIdx.x < warps) ? shared[threadIdx.x] : 0.f;
    if (warp == 0)
        for (int offset = 16; offset > 0; offset >>= 1)
            v += __shfl_down_sync(0xffffffffu, v, offset);
    if (threadIdx.x == 0) shared[0] = v;
    __syncthreads();
    const float total = shared[0];
    __syncthreads();
    return total;
}

__global__ void forward_kernel(const float* __restrict__ base, const float* __restrict__ styles,
                               const float* __restrict__ gamma, const float* __restrict__ beta,
                               float* __restrict__ out, float* __restrict__ dcoef,
                               int O, int I, int K, float gain, bool demod) {
    __shared__ float shared[32];
    const int n = blockIdx.y, o = blockIdx.x;
    const float* b = base + (size_t)o * I * K;
    const float* g = gamma + ((size_t)n * O + o) * I;
    const float* be = beta + ((size_t)n * O + o) * I;
    const float* s = styles + (size_t)n * I;
    float* y = out + ((size_t)n * O + o) * I * K;
    float sq = 0.f;
    for (int j = threadIdx.x; j < I * K; j += blockDim.x) {
        const int i = j / K;
        const float w = gain * (g[i] * b[j] + be[i]) * s[i];
        y[j] = w;
        sq += w * w;
    }
    float d = 1.f;
    if (demod) d = rsqrtf(block_sum(sq, shared) + 1e-8f);
    if (threadIdx.x == 0) dcoef[(size_t)n * O + o] = d;
    if (demod)
        for (int j = threadIdx.x; j < I * K; j += blockDim.x) y[j] *= d;
}

__global__ void backward_kernel(const float* __restrict__ grad, const float* __restrict__ base,
                                const float* __restrict__ styles, const float* __restrict__ gamma,
                                const float* __restrict__ beta, const float* __restrict__ dcoef,
                                float* __restrict__ dgamma, float* __restrict__ dbeta, float* __restrict__ dstyles,
                                int O, int I, int K, float gain, bool demod) {
    __shared__ float shared[32];
    const int n = blockIdx.y, o = blockIdx.x;
    const size_t no = (size_t)n * O + o;
    const float* b = base + (size_t)o * I * K;
    const float* gr = grad + no * I * K;
    const float* g = gamma + no * I;
    const float* be = beta + no * I;
    const float* s = styles + (size_t)n * I;
    const float d = dcoef[no];
    float S = 0.f;
    if (demod) {
        float part = 0.f;
        for (int j = threadIdx.x; j < I * K; j += blockDim.x) {
            const int i = j / K;
            part += gr[j] * gain * (g[i] * b[j] + be[i]) * s[i];
        }
        S = block_sum(part, shared);
    }
    const float d3S = d * d * d * S;
    for (int i = threadIdx.x; i < I; i += blockDim.x) {
        float sum_b = 0.f, sum_1 = 0.f, sum_pre = 0.f;
        for (int k = 0; k < K; ++k) {
            const int j = i * K + k;
            const float pre = gain * (g[i] * b[j] + be[i]);       // w before the style
            const float w = pre * s[i];
            const float dw = demod ? d * gr[j] - d3S * w : gr[j];
            sum_b += dw * b[j];
            sum_1 += dw;
            sum_pre += dw * pre;
        }
        dgamma[no * I + i] = gain * s[i] * sum_b;
        dbeta[no * I + i] = gain * s[i] * sum_1;
        dstyles[no * I + i] = sum_pre;
    }
}

void check(const torch::Tensor& t, const char* name, int dims) {
    TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
    TORCH_CHECK(t.scalar_type() == torch::kFloat32, name, " must be float32");
    TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
    TORCH_CHECK(t.dim() == dims, name, " has the wrong number of dimensions");
}

}  // namespace

std::vector<torch::Tensor> hypermod_weight_forward(torch::Tensor base, torch::Tensor styles, torch::Tensor gamma,
                                                   torch::Tensor beta, double gain, bool demod) {
    check(base, "base", 3); check(styles, "styles", 2); check(gamma, "gamma", 3); check(beta, "beta", 3);
    const int O = base.size(0), I = base.size(1), K = base.size(2), N = styles.size(0);
    TORCH_CHECK(styles.size(1) == I && gamma.size(0) == N && gamma.size(1) == O && gamma.size(2) == I &&
                beta.sizes() == gamma.sizes(), "hypermod_weight: inconsistent shapes");
    const c10::cuda::OptionalCUDAGuard guard(device_of(base));
    auto out = torch::empty({N, O, I, K}, base.options());
    auto dcoef = torch::empty({N, O}, base.options());
    if (N == 0 || O == 0) return {out, dcoef};
    dim3 grid(O, N);
    forward_kernel<<<grid, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        base.data_ptr<float>(), styles.data_ptr<float>(), gamma.data_ptr<float>(), beta.data_ptr<float>(),
        out.data_ptr<float>(), dcoef.data_ptr<float>(), O, I, K, (float)gain, demod);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return {out, dcoef};
}

std::vector<torch::Tensor> hypermod_weight_backward(torch::Tensor grad, torch::Tensor base, torch::Tensor styles,
                                                    torch::Tensor gamma, torch::Tensor beta, torch::Tensor dcoef,
                                                    double gain, bool demod) {
    check(grad, "grad", 4); check(base, "base", 3); check(styles, "styles", 2); check(gamma, "gamma", 3);
    check(beta, "beta", 3); check(dcoef, "dcoef", 2);
    const int O = base.size(0), I = base.size(1), K = base.size(2), N = styles.size(0);
    const c10::cuda::OptionalCUDAGuard guard(device_of(base));
    auto dgamma = torch::empty_like(gamma), dbeta = torch::empty_like(beta), dstyles_part = torch::empty_like(gamma);
    if (N == 0 || O == 0) return {dgamma, dbeta, torch::zeros_like(styles)};
    dim3 grid(O, N);
    backward_kernel<<<grid, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        grad.data_ptr<float>(), base.data_ptr<float>(), styles.data_ptr<float>(), gamma.data_ptr<float>(),
        beta.data_ptr<float>(), dcoef.data_ptr<float>(), dgamma.data_ptr<float>(), dbeta.data_ptr<float>(),
        dstyles_part.data_ptr<float>(), O, I, K, (float)gain, demod);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return {dgamma, dbeta, dstyles_part.sum(1)};   // a deterministic sum over output channels
}
