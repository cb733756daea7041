"""The triplet rule's BCM-like rate objective for `experiments/triplet_bcm.toml`, as a
user loss for `plasticity analyze RUN.h5 --loss experiments/triplet_bcm_loss.py:triplet_bcm`
(until the analysis layer registers ``triplet_bcm`` itself).

The postsynaptic rates of that experiment are imposed (independent Poisson neurons), so
the objective ``L = −Σ_j Φ(y_j)`` is taken with ``y`` clamped at the configured rates:
its gradient is ``−r_x y (a y − b)`` per synapse (see plasticity.rules.triplet), a
constant field, exactly minus the rate-limit drift.
"""

import tomllib
from pathlib import Path

import numpy as np

from plasticity.rules import RULES
from plasticity.units import parse_quantity

_CONFIG = tomllib.loads((Path(__file__).with_name("triplet_bcm.toml")).read_text())


def _gradient():
    net, inputs = _CONFIG["network"], _CONFIG["inputs"]
    n_pre, n_post = net["n_pre"], net["n_post"]
    rx = np.broadcast_to(parse_quantity(inputs["rates"], "rate"), (n_pre,))
    post = inputs["post_rates"]
    ry = np.array([parse_quantity(r, "rate") for r in post]) if isinstance(post, list) \
        else np.full(n_post, parse_quantity(post, "rate"))
    params = RULES["triplet"].resolve({k: v for k, v in _CONFIG["rule"].items() if k != "name"})
    a = params["A3_plus"] * params["tau_plus"] * params["tau_y"]
    b = params["A2_minus"] * params["tau_minus"] - params["A2_plus"] * params["tau_plus"]
    # all-to-all synapses in file order: s = pre * n_post + post
    pre, postidx = np.divmod(np.arange(n_pre * n_post), n_post)
    return -rx[pre] * ry[postidx] * (a * ry[postidx] - b)


_G = _gradient()


def triplet_bcm(w):
    w = np.asarray(w, float)
    return w @ _G, np.broadcast_to(_G, w.shape).copy()
