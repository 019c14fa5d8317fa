// Upsample (zero insertion), pad (negative: crop), FIR filter, downsample: one thread per
// output sample, summing the filter taps that land on real (non-inserted, non-padded) inputs.
//
// For output row oy the taps ky cover upsampled rows u = oy * down_y + ky - pad_y0; only u that
// are inside [0, H * up_y) and multiples of up_y read an input row (u / up_y). The filter is
// applied as a true convolution (flipped) unless flip_filter, as in the reference; a 1D filter
// is separable (f[ky] * f[kx]). The backward is the same op with up and down swapped, the
// filter flipped and the padding transposed, so every order of derivative reuses this kernel.
// The reference (torch_utils_ext/ops/upfirdn2d.py, _upfirdn2d_ref) is the oracle.
#include <torch/extension.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace {

constexpr int kThreads = 256;

template <typename scalar_t>
__global__ void upfirdn2d_kernel(const scalar_t* __restrict__ x, const float* __restrict__ f, scalar_t* __restrict__ y,
                                 int64_t planes, int H, int W, int OH, int OW, int up_x, int up_y, int down_x,
                                 int down_y, int pad_x0, int pad_y0, int fw, int fh, bool separable, bool flip,
                                 float gain) {
    const int64_t total = planes * OH * OW;
    for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const int ox = idx % OW;
        const int oy = (idx / OW) % OH;
        const int64_t plane = idx / ((int64_t)OW * OH);
        const scalar_t* xp = x + plane * H * W;
        float acc = 0.f;
        for (int ky = 0; ky < fh; ++ky) {
            const int u = oy * down_y + ky - pad_y0;
            if (u < 0 || u >= H * up_y || u % up_y != 0) continue;
            const int iy = u / up_y;
            const int fy = flip ? ky : fh - 1 - ky;
            for (int kx = 0; kx < fw; ++kx) {
                const int v = ox * down_x + kx - pad_x0;
                if (v < 0 || v >= W * up_x || v % up_x != 0) continue;
                const int ix = v / up_x;
                const int fx = flip ? kx : fw - 1 - kx;
                const float wgt = separable ? f[fy] * f[fx] : f[fy * fw + fx];
                acc += (float)xp[(int64_t)iy * W + ix] * wgt;
            }
        }
        y[idx] = (scalar_t)(acc * gain);
    }
}

int blocks_for(int64_t n) {
    const int64_t b = (n + kThreads - 1) / kThreads;
    return (int)(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

}  // namespace

torch::Tensor upfirdn2d_forward(torch::Tensor x, torch::Tensor f, int64_t up_x, int64_t up_y, int64_t down_x,
                                int64_t down_y, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0, int64_t pad_y1,
                                bool flip, double gain) {
    TORCH_CHECK(x.is_cuda() && x.is_contiguous() && x.dim() == 4, "upfirdn2d: x must be a contiguous CUDA NCHW tensor");
    TORCH_CHECK(f.is_cuda() && f.is_contiguous() && f.scalar_type() == torch::kFloat32 && (f.dim() == 1 || f.dim() == 2),
                "upfirdn2d: f must be a float32 CUDA filter, 1D or 2D");
    TORCH_CHECK(up_x >= 1 && up_y >= 1 && down_x >= 1 && down_y >= 1, "upfirdn2d: scaling factors must be >= 1");
    const c10::cuda::OptionalCUDAGuard guard(device_of(x));
    const int H = x.size(2), W = x.size(3);
    const bool separable = f.dim() == 1;
    const int fh = f.size(0), fw = separable ? f.size(0) : f.size(1);
    const int64_t conv_h = (int64_t)H * up_y + pad_y0 + pad_y1 - fh + 1;
    const int64_t conv_w = (int64_t)W * up_x + pad_x0 + pad_x1 - fw + 1;
    TORCH_CHECK(conv_h >= 1 && conv_w >= 1, "upfirdn2d: the padded input is smaller than the filter");
    const int OH = (conv_h - 1) / down_y + 1, OW = (conv_w - 1) / down_x + 1;
    auto y = torch::empty({x.size(0), x.size(1), OH, OW}, x.options());
    const int64_t planes = x.size(0) * x.size(1);
    if (y.numel() == 0) return y;
    AT_DISPATCH_FLOATING_TYPES_AND_HALF(x.scalar_type(), "upfirdn2d_forward", [&] {
        upfirdn2d_kernel<scalar_t><<<blocks_for(y.numel()), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
            x.data_ptr<scalar_t>(), f.data_ptr<float>(), y.data_ptr<scalar_t>(), planes, H, W, OH, OW, (int)up_x,
            (int)up_y, (int)down_x, (int)down_y, (int)pad_x0, (int)pad_y0, fw, fh, separable, flip, (float)gain);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return y;
}
