"""Spiking experiments: Poisson inputs, LIF neurons, event-driven plasticity (Brian2).

:func:`run` is what :func:`plasticity.sim.run` calls for a spiking model spec
(``kind = "spiking"`` in ``models/*.toml``). Three model specs are built here (``models/*.toml``):

- ``lif_poisson``: ``n_pre`` Poisson inputs (PoissonGroup at ``inputs.rates``; with
  ``inputs.modulation`` a NeuronGroup firing at ``max(0, rates + gain·x(t))``, ``x``
  the rate models' gaussian/patterns inputs redrawn every ``modulation_interval``) onto
  ``n_post`` conductance-based LIF neurons (Song et al. 2000); each input spike adds the
  plastic weight ``w`` to ``g_ex``. Synapses from ``[network.topology]`` (all-to-all by
  default).
- ``ei_network``: a recurrent E/I network of the same neurons, connectivity from a
  networkx graph on its ``N = n_pre = n_post`` neurons; the E→E synapses are plastic
  (and logged), the others fixed; external Poisson drive by ``PoissonInput``.
- ``poisson_pair``: independent Poisson pre and post spike trains (the post "neurons"
  fire at ``inputs.post_rates`` whatever the weights): the rule in isolation.

The rule's Brian2 code (:class:`plasticity.rules.SpikingRule`) is the synapses'
``on_pre``/``on_post``; the synaptic transmission (``g_ex_post += w``) runs first.

Recording (streamed with the same :class:`~plasticity.io.RunFile` as rate runs):
``/weights`` every ``record.every``; ``/rates/pre`` (T, n_pre) and ``/rates/post``
(T, n_post): each neuron's spike count over the record interval *ending* at
``/time[k]`` divided by its length (row 0 is NaN); with ``record.spikes = true`` also
``/spikes/<population>/{t, i}`` (populations ``inputs`` and ``neurons``): then the
spike counts come from SpikeMonitors whose stored spikes are handed to the file and
cleared at each record, so memory does not grow with the duration. Without spike
streaming there are no monitors (on the runtime device each is one more code object
run every step, a cost benchmarks/bench_stdp.py measures): the neurons count their spikes in their reset
(``spike_count``) and the inputs' spikes are counted by the plastic synapses'
``on_pre`` (``pre_spike_count``, read from one synapse per input; a SpikeMonitor
only if some input has no plastic synapse).
"""

import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..inputs import InputStats
from ..io.codecs import write_poisson_inputs
from ..rules import get_rule
from ..units import dimension_of, parse_quantity
from .rate import (Topology, assign_values, initial_weights, input_group, make_topology,
                   shared_parameter_equations, start_runtime)
from .session import Progress, check_finite, drive, finish, open_run_file


def _units():
    import brian2 as b2

    return {"1": 1, "time": b2.second, "rate": b2.Hz, "voltage": b2.volt, "current": b2.amp,
            "conductance": b2.siemens, "capacitance": b2.farad, "resistance": b2.ohm}


def model_params(experiment):
    """The model spec's ``[params]`` with ``network.params`` overrides, as Brian2
    quantities (strings with units) or plain numbers."""
    spec = experiment.network.spec
    values = {**spec.params, **experiment.network.params}
    units = _units()
    out = {}
    for key, value in values.items():
        if isinstance(value, str):
            dim = dimension_of(spec.params[key])
            out[key] = parse_quantity(value, dim) * units[dim]
        else:
            out[key] = value
    return out


def rule_namespace(rule, params):
    """The rule's numeric parameters as Brian2 quantities."""
    units = _units()
    return {key: value * units[rule.parameters[key].dimension]
            for key, value in rule.numeric(params).items()}


def _rates(value, n):
    return np.broadcast_to(np.asarray(value, float), (n,)).copy()


@dataclass
class SpikingNetwork:
    """The Brian2 objects of a spiking experiment and what the recorder needs."""

    network: object
    synapses: object                 # the plastic Synapses (w)
    topology: Topology               # indices of the plastic synapses
    input_rates: np.ndarray          # configured Poisson rates (Hz) of the presynaptic side
    pre_counts: object               # () -> spike count of each presynaptic neuron so far
    post_counts: object              # () -> ... of each postsynaptic neuron
    populations: dict = field(default_factory=dict)   # name -> SpikeMonitor (spike streaming)
    modulation: object = None        # InputStats of the rate modulation (inputs.modulation)
    #: the SpikeMonitors counting the pre- and postsynaptic spikes (the same one twice
    #: for a recurrent network), or None where the neurons count in their reset
    count_monitors: tuple = (None, None)


LIF_EQS = """
dv/dt = (V_rest - v + g_ex * (E_ex - v) + g_in * (E_in - v)) / tau_m : volt (unless refractory)
dg_ex/dt = -g_ex / tau_ex : 1
dg_in/dt = -g_in / tau_in : 1
"""


#: the neuron parameters of the LIF equations, threshold and reset (shared variables
#: of the neurons with ``shared_parameters``)
LIF_PARAMS = ("tau_m", "V_rest", "V_reset", "V_th", "E_ex", "E_in", "tau_ex", "tau_in")
#: the conductance jumps of the fixed synapses of a recurrent network
FIXED_PARAMS = ("g_ei", "g_ie", "g_ii")


def equal_time_constants(rule, params):
    """``{name: first}`` for each time constant of the rule whose value equals that of
    an earlier one (``first``, in the rule's parameter order), e.g. ``{"tau_minus":
    "tau_plus"}`` for pair STDP with one window for both traces.

    Where the values are shared variables (``shared_parameters``) the code names one
    of each set of equal time constants for all of them: the C++ compiler then sees
    that two traces decay by the same factor and computes one ``exp`` per synapse
    event instead of one per trace, as it does for inlined equal constants. Which time
    constants are equal shapes the code (it is in the standalone build key); their
    values do not."""
    values = rule.numeric(params)
    names = [k for k, p in rule.parameters.items() if p.dimension == "time" and k in values]
    alias = {}
    for i, name in enumerate(names):
        first = next((k for k in names[:i] if k not in alias and values[k] == values[name]),
                     None)
        if first is not None:
            alias[name] = first
    return alias


def _renamed(code, alias):
    """``code`` with each name of ``alias`` replaced by its value (whole words)."""
    for name, first in alias.items():
        code = re.sub(rf"\b{name}\b", first, code)
    return code


def build_spiking_network(experiment, rule, params, rng, record_spikes=False, *,
                          count_with_monitors=False, shared_parameters=False):
    """Create the Brian2 objects (in the current device) of a spiking experiment.

    ``count_with_monitors``: count the spikes for ``/rates`` with SpikeMonitors (no
    per-spike cost in the neurons' reset; on cpp_standalone a monitor costs no Python
    per step). ``shared_parameters``: the rule's numeric parameters and the neuron
    parameters (:data:`LIF_PARAMS`) are ``(shared, constant)`` variables of the
    postsynaptic neurons, which the synapses' code reads as its own (Brian2 resolves a
    name of the postsynaptic group in a synapse's code), the jumps of the fixed synapses
    (:data:`FIXED_PARAMS`) variables of those synapses: not constants of a namespace,
    inlined into the code (cpp_standalone: their values are passed to the program when
    it starts); equal time constants of the rule are one name in the code
    (:func:`equal_time_constants`)."""
    import brian2 as b2

    spec = experiment.network.spec
    net_cfg = experiment.network
    n_pre, n_post = net_cfg.n_pre, net_cfg.n_post
    mp = model_params(experiment)
    rule_values = rule_namespace(rule, params)
    namespace = {**mp, **rule_values}
    neuron_shared, rule_shared, fixed_shared = {}, {}, {}
    if shared_parameters:
        neuron_shared = {k: mp[k] for k in LIF_PARAMS if k in mp}
        fixed_shared = {k: mp[k] for k in FIXED_PARAMS if k in mp}
        rule_shared = dict(rule_values)
        namespace = {k: v for k, v in namespace.items()
                     if k not in neuron_shared and k not in rule_shared and k not in fixed_shared}
    syn_eqs, on_pre, on_post = rule.code(params)
    post_eqs, post_spike, post_init = rule.post_code(params)
    if shared_parameters:
        alias = equal_time_constants(rule, params)
        syn_eqs, on_pre, on_post, post_eqs, post_spike = (
            _renamed(code, alias) for code in (syn_eqs, on_pre, on_post, post_eqs, post_spike))
    recurrent = spec.recurrent
    neuron_kind = spec.neuron
    objects = []
    modulation = None
    # spike counts for /rates: SpikeMonitors when spikes are streamed (or asked for),
    # else the neurons count in their reset (no per-step code object of their own)
    count = not (record_spikes or count_with_monitors)
    count_eqs = "\nspike_count : 1" if count else ""
    count_code = "spike_count += 1" if count else ""

    def shared_eqs(values):
        return "\n" + shared_parameter_equations(values) if values else ""

    def lif_group(n, name):
        reset = "\n".join(filter(None, ("v = V_reset", post_spike, count_code)))
        values = {**neuron_shared, **rule_shared}
        group = b2.NeuronGroup(n, LIF_EQS + post_eqs + count_eqs + shared_eqs(values),
                               threshold="v > V_th", reset=reset,
                               refractory="refractory", method="euler", name=name,
                               namespace=namespace)
        assign_values(group, values)
        group.v = mp["V_rest"]
        return group

    if recurrent:
        N = n_pre
        n_exc = int(round(mp["frac_exc"] * N))
        if not 0 < n_exc <= N:
            raise ConfigError(f"network.params.frac_exc: gives {n_exc} excitatory neurons of {N}")
        neurons = lif_group(N, "neurons")
        # random initial potentials avoid a synchronous first volley
        neurons.v = mp["V_reset"] + rng.uniform(0, 1, N) * (mp["V_th"] - mp["V_reset"])
        ext_rate = _rates(experiment.inputs.rates, N)
        if np.ptp(ext_rate) > 0:
            raise ConfigError("inputs.rates: the ei_network model takes one external rate")
        drive = b2.PoissonInput(neurons, "g_ex", N=int(mp["n_ext"]), rate=ext_rate[0] * b2.Hz,
                                weight=float(mp["g_ext"]))
        full = make_topology(experiment, rng)
        keep = full.pre != full.post
        pre_all, post_all = full.pre[keep], full.post[keep]
        ee = (pre_all < n_exc) & (post_all < n_exc)
        if not ee.any():
            raise ConfigError("network.topology: the graph has no excitatory→excitatory synapses")
        topology = Topology(pre_all[ee], post_all[ee])
        synapses = b2.Synapses(neurons, neurons, "w : 1\n" + syn_eqs,
                               on_pre="g_ex_post += w\n" + on_pre, on_post=on_post,
                               namespace=namespace, name="synapses")
        synapses.connect(i=topology.pre, j=topology.post)
        fixed = []
        for label, mask, code in (
                ("ei", (pre_all < n_exc) & (post_all >= n_exc), "g_ex_post += g_ei"),
                ("ie", (pre_all >= n_exc) & (post_all < n_exc), "g_in_post += g_ie"),
                ("ii", (pre_all >= n_exc) & (post_all >= n_exc), "g_in_post += g_ii")):
            if mask.any():
                jump = code.rsplit(" ", 1)[1]
                values = {jump: fixed_shared[jump]} if jump in fixed_shared else {}
                s = b2.Synapses(neurons, neurons, shared_eqs(values).strip(), on_pre=code,
                                namespace=namespace, name=f"fixed_{label}")
                s.connect(i=pre_all[mask], j=post_all[mask])
                assign_values(s, values)
                fixed.append(s)
        objects += [neurons, drive, synapses, *fixed]
        pre_group = post_group = neurons
        input_rates = ext_rate
    else:
        input_rates = _rates(experiment.inputs.rates, n_pre)
        if experiment.inputs.modulation is None:
            pre_group = b2.PoissonGroup(n_pre, rates=input_rates * b2.Hz, name="inputs")
        else:
            modulation = modulation_stats(experiment, rng)
            pre_group, drawing = modulated_inputs(modulation, input_rates,
                                                  experiment.inputs.gain,
                                                  experiment.inputs.modulation_interval)
            objects += drawing
        if neuron_kind == "poisson":
            post_rates = _rates(experiment.inputs.post_rates, n_post)
            reset = "\n".join(filter(None, (post_spike, count_code))) or None
            post_group = b2.NeuronGroup(n_post, "rates : Hz (constant)\n" + post_eqs + count_eqs
                                        + shared_eqs(rule_shared),
                                        threshold="rand() < rates * dt", reset=reset,
                                        name="neurons", namespace=namespace)
            assign_values(post_group, rule_shared)
            post_group.rates = post_rates * b2.Hz
            transmit = ""
        else:
            post_group = lif_group(n_post, "neurons")
            transmit = "g_ex_post += w\n"
            if int(mp.get("n_inh", 0)) > 0:
                objects.append(b2.PoissonInput(post_group, "g_in", N=int(mp["n_inh"]),
                                               rate=mp["rate_inh"], weight=float(mp["g_inh"])))
        topology = make_topology(experiment, rng)
        # the inputs' spikes counted by the synapses (synapse k is topology.pre[k] ->
        # topology.post[k]), read from the first synapse of each input
        first = np.unique(topology.pre, return_index=True)[1]
        count_pre = count and first.size == n_pre
        synapses = b2.Synapses(pre_group, post_group,
                               "w : 1\n" + syn_eqs + ("\npre_spike_count : 1" if count_pre else ""),
                               on_pre=("pre_spike_count += 1\n" if count_pre else "")
                               + transmit + on_pre, on_post=on_post,
                               namespace=namespace, name="synapses")
        synapses.connect(i=topology.pre, j=topology.post)
        objects += [pre_group, post_group, synapses]
    for name, value in post_init.items():      # SI values of the rule's post state
        setattr(post_group, name + "_", value)
    synapses.w = initial_weights(experiment, len(topology.pre), rng)

    populations = {}
    monitors = (None, None)
    if not count:
        pre_monitor = b2.SpikeMonitor(pre_group, record=record_spikes, name="pre_spikes")
        post_monitor = pre_monitor if recurrent else b2.SpikeMonitor(post_group, record=record_spikes,
                                                                     name="post_spikes")
        objects += [pre_monitor] + ([] if recurrent else [post_monitor])
        if record_spikes:
            populations = {"neurons": post_monitor} if recurrent else {"inputs": pre_monitor,
                                                                      "neurons": post_monitor}
        pre_counts, post_counts = _monitor_counts(pre_monitor), _monitor_counts(post_monitor)
        monitors = (pre_monitor, post_monitor)
    else:
        post_counts = _group_counts(post_group)
        if recurrent:
            pre_counts = post_counts
        elif count_pre:
            pre_counts = _synapse_counts(synapses, first)
        else:
            pre_monitor = b2.SpikeMonitor(pre_group, record=False, name="pre_spikes")
            objects.append(pre_monitor)
            pre_counts = _monitor_counts(pre_monitor)
    return SpikingNetwork(b2.Network(objects), synapses, topology, input_rates, pre_counts,
                          post_counts, populations, modulation, monitors)


def _monitor_counts(monitor):
    return lambda: np.asarray(monitor.count[:], float)


def _group_counts(group):
    return lambda: np.array(group.spike_count[:], float)


def _synapse_counts(synapses, first):
    return lambda: np.asarray(synapses.pre_spike_count[:], float)[first]


def modulation_stats(experiment, rng):
    """The :class:`~plasticity.inputs.InputStats` of the modulation ``x`` of Poisson
    inputs (``inputs.modulation``), built from the same keys as rate-model inputs."""
    inputs, n = experiment.inputs, experiment.network.n_pre
    if inputs.modulation == "gaussian":
        return InputStats.gaussian(n, rng, spectrum=inputs.spectrum, rotation=inputs.rotation,
                                   covariance=inputs.covariance, mean=inputs.mean)
    return InputStats.from_patterns(inputs.patterns, inputs.probabilities)


def modulated_inputs(stats, baseline, gain, interval):
    """Poisson inputs whose rates follow rate-model inputs: ``x`` is drawn from
    ``stats`` exactly as in the rate models (:func:`plasticity.sim.rate.input_group`),
    but once every ``interval`` (s) and held; input ``i`` fires with rate
    ``max(0, baseline_i + gain * x_i)`` (Hz). Returns the group (named ``inputs``) and
    the other objects of the drawing."""
    import brian2 as b2

    group, objects = input_group(
        stats, len(baseline), dt=interval,
        eqs="rate = clip(baseline + gain * x, 0*Hz, inf*Hz) : Hz\n"
            "baseline : Hz (constant)\ngain : Hz (constant)",
        threshold="rand() < rate * dt")
    group.baseline = np.asarray(baseline, float) * b2.Hz
    group.gain = float(gain) * b2.Hz
    return group, objects


def _take_spikes(monitor):
    """The spikes a monitor stored since the last call (t, i), then clear it."""
    t = np.array(monitor.t_[:])
    i = np.array(monitor.i_[:])
    monitor.resize(0)
    monitor.variables["N"].set_value(0)
    return t, i


def open_spiking_run_file(experiment, rule, parts, options, device):
    """The run file of a spiking experiment on either device: weights, the Poisson
    inputs' description, and ``/rates`` per record interval (:class:`IntervalRates`)."""
    inputs_cfg = experiment.inputs
    net = experiment.network

    def inputs(group):
        write_poisson_inputs(group, parts.input_rates, parts.modulation, inputs_cfg.gain,
                             inputs_cfg.modulation_interval, inputs_cfg.modulation)

    runfile = open_run_file(experiment, rule, parts, options, device, inputs=inputs,
                            extra_sizes={"rates/pre": net.n_pre, "rates/post": net.n_post},
                            attrs={"kind": "spiking"})
    runfile.set_attrs({"unit": "Hz",
                       "interval": "row k: spike count over (time[k-1], time[k]] divided by "
                                   "its length; row 0 is NaN"}, path="rates")
    return runfile


class IntervalRates:
    """Firing rates over each record interval from cumulative spike counts: row k is
    the count over (time[k-1], time[k]] divided by its length, NaN for the first."""

    def __init__(self, n_pre, n_post):
        self.n_pre, self.n_post = n_pre, n_post
        self.last = {"t": 0.0, "pre": np.zeros(n_pre), "post": np.zeros(n_post)}

    def __call__(self, t, pre_count, post_count):
        last = self.last
        span = t - last["t"]
        if span > 0:
            rates = {"rates/pre": (pre_count - last["pre"]) / span,
                     "rates/post": (post_count - last["post"]) / span}
        else:
            rates = {"rates/pre": np.full(self.n_pre, np.nan),
                     "rates/post": np.full(self.n_post, np.nan)}
        last.update(t=t, pre=pre_count, post=post_count)
        return rates


def run(experiment, options):
    """Run a spiking experiment (runtime device) and return its run file's path."""
    rule = get_rule(experiment.rule.name)
    params = experiment.rule.params
    rng = np.random.default_rng(experiment.seed)
    sim = experiment.simulation
    start_runtime(experiment)
    parts = build_spiking_network(experiment, rule, params, rng,
                                  record_spikes=experiment.record.spikes)

    runfile = open_spiking_run_file(experiment, rule, parts, options, "runtime")
    bar = Progress(sim.duration, options.progress, experiment.name)
    interval_rates = IntervalRates(experiment.network.n_pre, experiment.network.n_post)

    def record(t):
        w = np.asarray(parts.synapses.w_[:])
        rates = interval_rates(t, parts.pre_counts(), parts.post_counts())
        for population, monitor in parts.populations.items():
            runfile.append_spikes(population, *_take_spikes(monitor))
        problem = check_finite(w, {}, sim.weight_bound)
        runfile.append(t, w, None, rates)
        bar.update_to(t)
        return problem

    outcome, now = drive(experiment, parts.network, record, runfile, bar)
    return finish(runfile, rule, outcome, now)
