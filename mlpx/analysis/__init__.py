"""What backprop tells you besides the update: checks, health metrics, input gradients, figures.

The lecture ends with how to use the results of backprop: ``delta_W`` for training,
``delta_x`` "to generate data with constraint", and ``delta_f``, ``delta_a`` "for
debugging, interpreting results, and visualizing the output of the network and its
layers". One module per use:

* :mod:`mlpx.analysis.gradcheck`: every delta against centered finite differences;
* :mod:`mlpx.analysis.health`: per-layer health metrics at the training loop's logging
  steps (weight norms, update ratios, ``||delta_a_l||``, dead and saturated units);
* :mod:`mlpx.analysis.sanity`: before training, the initial loss is near ``ln C`` and a
  copy of the network overfits 20 samples;
* :mod:`mlpx.analysis.inputs`: ``delta_x`` as saliency, FGSM adversarial inputs and class
  visualisation;
* :mod:`mlpx.analysis.plots`: the figures (matplotlib imported only when one is drawn);
* :mod:`mlpx.analysis.log`: the analyses of a run, logged to a tracker.

Import from the modules themselves; importing this package imports none of them.
"""
