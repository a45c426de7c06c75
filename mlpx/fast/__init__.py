"""The NumPy hot path of training, tested equal to :mod:`mlpx.nn`, which never imports it.

step.py      FastStep: forward/backward in kept buffers, flat parameter and gradient buffers
optim.py     FlatOptimizer: each optimizer rule on the flat buffers (``out=``, no temporaries)
kernels.py   the optional Numba kernels (``backend.jit``, the ``jit`` extra)
"""
