// Python binding of the fused hyper-modulated weight op (kernels in hypermod_weight.cu).
#include <torch/extension.h>

std::vector<torch::Tensor> hypermod_weight_forward(torch::Tensor base, torch::Tensor styles, torch::Tensor gamma,
                                                   torch::Tensor beta, double gain, bool demod);
std::vector<torch::Tensor> hypermod_weight_backward(torch::Tensor grad, torch::Tensor base, torch::Tensor styles,
                                                    torch::Tensor gamma, torch::Tensor beta, torch::Tensor dcoef,
                                                    double gain, bool demod);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("forward", &hypermod_weight_forward, "hyper-modulated weight: forward");
    m.def("backward", &hypermod_weight_backward, "hyper-modulated weight: backward");
}
