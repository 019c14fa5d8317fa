// Python binding of the fused bias_act op (kernels in bias_act.cu).
#include <torch/extension.h>

torch::Tensor bias_act_forward(torch::Tensor x, torch::Tensor b, int64_t dim, int64_t act, double alpha, double gain,
                               double clamp);
torch::Tensor bias_act_multiplier(torch::Tensor g, torch::Tensor y, int64_t act, double alpha, double gain,
                                  double clamp);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("forward", &bias_act_forward, "bias + activation + gain + clamp");
    m.def("multiplier", &bias_act_multiplier, "gradient multiplier of bias_act");
}
