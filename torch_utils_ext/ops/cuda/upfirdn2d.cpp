// Python binding of the upfirdn2d kernel (upfirdn2d.cu).
#include <torch/extension.h>

torch::Tensor upfirdn2d_forward(torch::Tensor x, torch::Tensor f, int64_t up_x, int64_t up_y, int64_t down_x,
                                int64_t down_y, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0, int64_t pad_y1,
                                bool flip, double gain);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("forward", &upfirdn2d_forward, "upsample, pad, FIR filter, downsample");
}
