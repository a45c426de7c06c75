"""The NumPy hot path: kept buffers, fused steps, flat-buffer optimizer updates, Numba kernels."""
