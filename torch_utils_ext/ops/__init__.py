"""Reference ops: bias_act, upfirdn2d, conv2d_resample."""
