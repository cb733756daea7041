"""Additive pair STDP on 1000 Poisson inputs to one leaky integrate-and-fire neuron,
after Song, Miller & Abbott (2000), "Competitive Hebbian learning through
spike-timing-dependent synaptic plasticity", Nat. Neurosci. 3:919–926, as in Brian2's
own example ``examples/synapses/STDP.py`` (same parameters; written here from the
model's equations). The weights are sampled every 100 ms and saved as the minimal
``.npz`` that ``plasticity analyze`` reads (``time`` (T,) seconds, ``weights`` (T, 1000)):
a trajectory from "another simulator", with no rule and no loss attached.

    python examples/brian2_stdp.py                 # 30 s of model time -> examples/brian2_stdp.npz
    python examples/brian2_stdp.py out.npz 10      # 10 s
    plasticity analyze examples/brian2_stdp.npz    # recurrence test + loss discovery

The model: conductance-based LIF neuron (τ_m = 10 ms, E_L = −74 mV, threshold −54 mV,
reset −60 mV, excitatory reversal 0 mV, synaptic conductance decaying with 5 ms),
N = 1000 independent Poisson inputs at 15 Hz. Each synapse keeps a presynaptic trace
Apre (+0.01 g_max per input spike) and a postsynaptic trace Apost (−1.05 × 0.01
g_max per output spike), both decaying with 20 ms; an input spike adds Apost to w, an
output spike adds Apre, and w is clipped to [0, g_max], g_max = 0.01. Depression
slightly outweighs potentiation (the factor 1.05), so the weights compete: they end up
near 0 or near g_max.
"""

import os
import sys
from pathlib import Path

import numpy as np


def simulate(duration_s=30.0, record_every_s=0.1, n_inputs=1000, seed=1):
    """Run the model; returns ``(time (T,), weights (T, n_inputs))`` in seconds and
    in units of the leak conductance (w is a dimensionless conductance, as in Brian2's
    example)."""
    import brian2 as b2

    b2.prefs.logging.console_log_level = "WARNING"
    b2.seed(seed)
    b2.start_scope()
    ms, mV, Hz, second = b2.ms, b2.mV, b2.Hz, b2.second
    tau_m, tau_e, taupre, taupost = 10 * ms, 5 * ms, 20 * ms, 20 * ms
    E_e, v_threshold, v_reset, E_L = 0 * mV, -54 * mV, -60 * mV, -74 * mV
    g_max = 0.01
    dApre = 0.01 * g_max
    dApost = -0.01 * (taupre / taupost) * 1.05 * g_max

    inputs = b2.PoissonGroup(n_inputs, rates=15 * Hz)
    neuron = b2.NeuronGroup(
        1, """dv/dt = (g_e * (E_e - v) + E_L - v) / tau_m : volt
              dg_e/dt = -g_e / tau_e : 1""",
        threshold="v > v_threshold", reset="v = v_reset", method="euler")
    neuron.v = E_L
    synapses = b2.Synapses(
        inputs, neuron,
        """w : 1
           dApre/dt = -Apre / taupre : 1 (event-driven)
           dApost/dt = -Apost / taupost : 1 (event-driven)""",
        on_pre="""g_e += w
                  Apre += dApre
                  w = clip(w + Apost, 0, g_max)""",
        on_post="""Apost += dApost
                   w = clip(w + Apre, 0, g_max)""")
    synapses.connect()
    synapses.w = "rand() * g_max"
    monitor = b2.StateMonitor(synapses, "w", record=True, dt=record_every_s * second)
    b2.run(duration_s * second)
    return np.asarray(monitor.t / second), np.asarray(monitor.w).T


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_suffix(".npz")
    duration = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    time, weights = simulate(duration)
    np.savez(out, time=time, weights=weights)
    print(os.path.relpath(out))
