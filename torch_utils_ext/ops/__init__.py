"""Ops with a pure-PyTorch reference (the CPU path and the test oracle) and, for some, a fused
CUDA kernel: bias_act, upfirdn2d, conv2d_resample, hypermod_weight; filtered_lrelu (StyleGAN3's
alias-free nonlinearity) has only its reference so far.

``default_impl()`` is what the plugin's layers ask for. The fused kernels pass their tests in
the CPU emulation of CUDA (``torch_utils_ext.emulation``) but have not yet run on a GPU (none
has been lent to the project), so layers use the reference unless ``COCKTAIL_FUSED_OPS=1`` opts
in; ``tools/gpu_verify.sh`` is the check that makes them the default.
"""
import os


def default_impl():
    return 'cuda' if os.environ.get('COCKTAIL_FUSED_OPS', '0') == '1' else 'ref'
