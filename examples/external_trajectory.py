"""A trajectory from "another simulator": a hand-written learning loop in NumPy, saved
as the minimal ``.npz`` that ``plasticity analyze`` reads (``time`` (T,), ``weights``
(T, n); no ``drift``, so the drift is estimated from weight differences).

The loop is preconditioned gradient descent on the regression loss of
``quadratic_loss.py``, with a fixed diagonal preconditioner P (as a per-weight learning
rate would be): ``w ← w − η P ∇L(w)``. It is natural gradient descent with one
constant metric (M = ηP/Δt), not plain gradient descent.

    python examples/external_trajectory.py            # writes examples/external_trajectory.npz
    plasticity analyze examples/external_trajectory.npz --loss examples/quadratic_loss.py:quadratic
"""

import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from quadratic_loss import H, W_STAR  # noqa: E402

eta, dt, steps = 0.01, 0.01, 600          # learning rate, seconds per step, steps
P = np.diag([0.2, 0.5, 1.0, 2.0, 4.0])    # per-weight learning rates
w = np.zeros(5)
time, weights = [0.0], [w.copy()]
for k in range(1, steps + 1):
    w = w - eta * P @ (H @ (w - W_STAR))
    time.append(k * dt)
    weights.append(w.copy())

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_suffix(".npz")
np.savez(out, time=np.array(time), weights=np.array(weights))
print(os.path.relpath(out))
