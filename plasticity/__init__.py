"""plasticity: run plasticity rules as Brian2 simulations, stream the weights to HDF5,
and certify each rule as (natural) gradient descent on a loss.

The package is layered one way: ``config`` → ``network`` (Brian2) → ``recorder``
(HDF5) → ``analysis``. Only ``network`` and ``runner`` import Brian2, so the
analysis of a run file works without it.
"""

__version__ = "0.1.0"
