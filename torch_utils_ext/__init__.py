"""Custom ops for the plugin and its embedded host.

Each op lives in ``torch_utils_ext/ops/<name>.py`` with a pure-PyTorch reference
implementation (the CPU path and the test oracle) and an ``impl`` switch so a fused
CUDA kernel can sit beside it ('ref' | 'cuda'), like the host's ops.
"""
