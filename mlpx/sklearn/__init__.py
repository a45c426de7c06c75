"""mlpx as a scikit-learn estimator: ``from mlpx.sklearn import MLPClassifier``.

The lecture's :class:`~mlpx.MLP` and mlpx's training step (:mod:`mlpx.fast.step` on NumPy)
behind scikit-learn's ``MLPClassifier`` interface, so the network takes part in
``Pipeline``, ``GridSearchCV``, ``cross_val_score``, ``clone`` and pickling, and passes
``sklearn.utils.estimator_checks.check_estimator``. This package is mlpx's only module
that imports scikit-learn at import time (it sits beside :mod:`mlpx.train`; nothing in
``nn/`` or ``fast/`` imports it).

* :mod:`mlpx.sklearn.estimator`: :class:`MLPClassifier` (fit, partial_fit, predict, ...).
* :mod:`mlpx.sklearn.training`: one epoch: mlpx's step plus scikit-learn's L2 scaling and
  sample weights (weighted ``delta_f_L``).
* :mod:`mlpx.sklearn.params`: the parameters' constraints, checked at ``fit`` with
  scikit-learn's wording, and the optimizer they describe.
"""

from mlpx.sklearn.estimator import MLPClassifier

__all__ = ["MLPClassifier"]
