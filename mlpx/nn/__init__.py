"""The lecture's MLP, as plain array-API code that runs on every backend.

model.py        MLP: forward (a_l = W_l f_(l-1), f_l = phi_l(a_l)), B1–B7 backprop, every delta
activations.py  each phi with its derivative and delta_a = delta_f * phi'(a)
losses.py       softmax, cross-entropy, the B3 shortcut and the B1–B3 Jacobian chain
init.py         weight initialisers
optim.py        each update rule once, as its torch.optim equation; clipping
schedules.py    learning-rate schedules
state.py        optimizer state <-> flat ``.npz`` arrays

Nothing here imports Numba, :mod:`mlpx.fast`, Hydra or MLflow.
"""
