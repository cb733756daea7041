"""Rate experiments on Brian2's runtime device: inputs → synapses (plastic) → neurons.

One Brian2 object per concept:

- ``inputs`` (NeuronGroup, ``n_pre``): the input rates ``x``, redrawn at the start of
  every time step (``when="start"``). Gaussian inputs with a diagonal covariance draw
  ``x = xbar + sd*randn()`` directly; a full covariance draws latent ``z = randn()`` in
  a ``latent`` group and mixes them through constant ``mixing`` synapses
  (``x = xbar + Σ_j L_ij z_j``). Patterns: a one-neuron ``chooser`` draws the pattern
  index ``k`` from the probabilities, each input reads its entry of row ``k``.
- ``neurons`` (NeuronGroup, ``n_post``): ``y = σ(Σ w x)`` through a summed variable,
  plus the rule's plastic state (e.g. ``theta``).
- ``synapses`` (Synapses): ``w``, updated every step by the rule's Euler statement in
  one ``run_regularly`` (``when="synapses"``) — cheaper than ``exact`` integration.

Within one step: inputs drawn (start) → ``y`` summed (groups) → ``w`` updated
(synapses, order 0) → postsynaptic state updated (synapses, order 1).
"""

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..inputs import InputStats
from ..rules import get_rule
from .session import Progress, check_finite, drive, finish, open_run_file


@dataclass
class Topology:
    """Synapse indices (pre, post) in Brian2's order."""

    pre: np.ndarray
    post: np.ndarray


def make_stats(experiment, rng):
    """The :class:`InputStats` of an experiment (numpy only; seeded by ``rng``)."""
    inputs, n = experiment.inputs, experiment.network.n_pre
    transfer_name = experiment.network.spec.transfer
    if inputs.kind == "gaussian":
        return InputStats.gaussian(n, rng, spectrum=inputs.spectrum, rotation=inputs.rotation,
                                   covariance=inputs.covariance, mean=inputs.mean,
                                   transfer=transfer_name)
    return InputStats.from_patterns(inputs.patterns, inputs.probabilities, transfer_name)


def make_topology(experiment, rng):
    """Synapses from the networkx generator named in ``network.topology``."""
    net = experiment.network
    gen_name, args = net.topology.generator, dict(net.topology.args)
    seed = int(rng.integers(2**31))
    if gen_name == "complete_bipartite_graph" and not args:
        # all-to-all, the default: the same sorted edges without building a graph
        # (networkx costs ~0.5 s to import and seconds for 10⁶ edges)
        return Topology(np.repeat(np.arange(net.n_pre, dtype=np.int64), net.n_post),
                        np.tile(np.arange(net.n_post, dtype=np.int64), net.n_pre))
    import networkx as nx

    generator = getattr(nx.bipartite, gen_name, None)
    bipartite = generator is not None and callable(generator)
    if not bipartite:
        generator = getattr(nx, gen_name, None)
    if generator is None or not callable(generator):
        raise ConfigError(f"network.topology.generator: unknown networkx generator {gen_name!r} "
                          f"(e.g. complete_bipartite_graph, random_graph, erdos_renyi_graph)")
    import inspect

    try:
        if "seed" in inspect.signature(generator).parameters and "seed" not in args:
            args["seed"] = seed
        if bipartite:
            graph = generator(net.n_pre, net.n_post, **args)
            edges = [(u, v - net.n_pre) for u, v in graph.edges()
                     if u < net.n_pre <= v] + [(v, u - net.n_pre) for u, v in graph.edges()
                                                if v < net.n_pre <= u]
        else:
            if net.n_pre != net.n_post:
                raise ConfigError(f"network.topology.generator: {gen_name!r} makes a graph on one "
                                  f"node set, which needs n_pre == n_post (got {net.n_pre}, {net.n_post})")
            graph = generator(net.n_pre, **args)
            edges = list(graph.edges())
            if not graph.is_directed():
                edges += [(v, u) for u, v in edges]
    except ConfigError:
        raise
    except Exception as error:  # networkx's own argument errors
        # some networkx errors carry no text (a KeyError of a missing argument, ...):
        # name the error type and what it was about
        reason = str(error).strip() or "no reason given"
        if isinstance(error, TypeError) and "argument" in reason:
            reason = f"wrong arguments: {reason}"
        raise ConfigError(f"network.topology: {gen_name}({', '.join(f'{k}={v!r}' for k, v in args.items())}) "
                          f"failed: {type(error).__name__}: {reason}") from None
    if not edges:
        raise ConfigError(f"network.topology: {gen_name} made no synapses")
    # sorted and without duplicates; as one int64 key per edge (10⁶ edges: 0.2 s,
    # against seconds for a sorted set of tuples)
    pairs = np.array(edges, dtype=np.int64)
    keys = np.unique(pairs[:, 0] * net.n_post + pairs[:, 1])
    return Topology(keys // net.n_post, keys % net.n_post)


def initial_weights(experiment, n_synapses, rng):
    init = experiment.network.init
    if init.distribution == "uniform":
        return rng.uniform(init.low, init.high, n_synapses)
    if init.distribution == "normal":
        return rng.normal(init.mean, init.std, n_synapses)
    return np.full(n_synapses, init.value)


def parameter_namespace(rule, params):
    """The rule's parameters as Brian2 quantities (SI float × unit)."""
    import brian2 as b2

    units = {"1": 1, "time": b2.second, "rate": b2.Hz, "voltage": b2.volt,
             "current": b2.amp, "conductance": b2.siemens, "capacitance": b2.farad,
             "resistance": b2.ohm}
    return {key: params[key] * units[p.dimension] for key, p in rule.parameters.items()}


def shared_parameter_equations(values):
    """Equation lines declaring ``values`` (name -> number or Brian2 quantity) as
    ``(shared, constant)`` variables of a group, for code that must not inline them
    (cpp_standalone: changed values are passed when the program starts, see
    :mod:`plasticity.sim.standalone`). Assign the values after creating the group
    (:func:`assign_values`)."""
    import brian2 as b2
    from brian2.units.fundamentalunits import DIMENSIONLESS

    lines = []
    for name, value in values.items():
        dim = b2.get_dimensions(value)
        unit = "1" if dim is DIMENSIONLESS else repr(b2.get_unit(dim))
        lines.append(f"{name} : {unit} (shared, constant)")
    return "\n".join(lines)


def assign_values(group, values):
    """Set ``group.<name> = value`` for each of ``values``."""
    for name, value in values.items():
        setattr(group, name, value)


def input_group(stats, n_pre, *, dt=None, eqs="", threshold=None):
    """The ``inputs`` NeuronGroup whose variable ``x`` is drawn from ``stats`` (gaussian
    or patterns), and the other Brian2 objects that drawing needs (a ``latent`` group
    and ``mixing`` synapses, or the pattern ``chooser``). ``x`` is redrawn at the start
    of every time step, or every ``dt`` (seconds) when given: Poisson inputs modulated by
    these statistics (:mod:`plasticity.sim.spiking`) hold each draw for an interval and add
    their own ``eqs`` and ``threshold``."""
    import brian2 as b2

    every = {} if dt is None else {"dt": dt * b2.second}
    extra_eqs = f"\n{eqs}" if eqs else ""
    objects = []
    if stats.kind == "gaussian":
        if stats.diagonal:
            inputs = b2.NeuronGroup(n_pre, "x : 1\nxbar : 1 (constant)\nsd : 1 (constant)" + extra_eqs,
                                    threshold=threshold, name="inputs")
            inputs.sd = stats.scale
            inputs.run_regularly("x = xbar + sd * randn()", when="start", name="inputs_draw",
                                 **every)
        else:
            latent = b2.NeuronGroup(n_pre, "z : 1", name="latent")
            latent.run_regularly("z = randn()", when="start", name="latent_draw", **every)
            inputs = b2.NeuronGroup(n_pre, "x = xbar + xmix : 1\nxmix : 1\nxbar : 1 (constant)"
                                    + extra_eqs, threshold=threshold, name="inputs")
            mixing = b2.Synapses(latent, inputs, "L : 1 (constant)\nxmix_post = L * z_pre : 1 (summed)",
                                 name="mixing")
            rows, cols = np.nonzero(stats.mixing)   # x_i = Σ_j mixing[i, j] z_j
            mixing.connect(i=cols, j=rows)
            mixing.L = stats.mixing[rows, cols]
            # the mixed inputs must exist before the output sums them
            mixing.summed_updaters["xmix_post"].order = -2
            objects += [latent, mixing]
        inputs.xbar = stats.mean
    else:
        cumulative = np.cumsum(stats.probabilities)[:-1]
        choose = " + ".join(f"int(u > {float(c)!r})" for c in cumulative) or "0"
        chooser = b2.NeuronGroup(1, "k : integer\nu : 1", name="chooser")
        chooser.run_regularly(f"u = rand()\nk = {choose}", when="start", order=0, name="chooser_draw",
                              **every)
        table = b2.TimedArray(stats.patterns, dt=b2.second, name="pattern_table")
        inputs = b2.NeuronGroup(n_pre, "x : 1\nxbar : 1 (constant)\nk : integer (linked)" + extra_eqs,
                                threshold=threshold, name="inputs",
                                namespace={"pattern_table": table})
        inputs.k = b2.linked_var(chooser, "k", index=np.zeros(n_pre, dtype=int))
        inputs.xbar = stats.mean
        inputs.run_regularly("x = pattern_table(k * second, i)", when="start", order=1,
                             name="inputs_draw", **every)
        objects.append(chooser)
    return inputs, objects


@dataclass
class RateNetwork:
    """The Brian2 objects of a rate experiment, and what the recorder needs."""

    network: object          # brian2.Network
    synapses: object         # brian2.Synapses holding w
    neurons: object          # brian2.NeuronGroup holding y and the rule's state
    topology: Topology
    stats: InputStats


def build_rate_network(experiment, rule, params, rng, shared_parameters=False):
    """Create the Brian2 objects (in the current device) for a rate experiment.

    ``shared_parameters``: the rule's parameters are ``(shared, constant)`` variables of
    the neurons instead of constants in the namespace (cpp_standalone, so that their
    values are not compiled into the program)."""
    import brian2 as b2

    net_cfg = experiment.network
    stats = make_stats(experiment, rng)
    topology = make_topology(experiment, rng)
    n_pre, n_post = net_cfg.n_pre, net_cfg.n_post
    objects = []

    inputs, extra = input_group(stats, n_pre)
    objects += extra

    y_expr = "ysum" if stats.transfer == "linear" else "ysum * int(ysum > 0)"
    state_eqs = "".join(f"\n{name} : 1" for name in rule.state)
    namespace = parameter_namespace(rule, params)
    shared = {}
    if shared_parameters:
        # variables of the neurons, which the synapses' code reads as its own (Brian2
        # resolves a name of the postsynaptic group in a synapse's code)
        shared, namespace = namespace, {}
        state_eqs += "\n" + shared_parameter_equations(shared)
    neurons = b2.NeuronGroup(n_post, f"y = {y_expr} : 1\nysum : 1{state_eqs}", name="neurons")
    for name, value in rule.initial_state(params, n_post).items():
        setattr(neurons, name, value)
    assign_values(neurons, shared)

    synapses = b2.Synapses(inputs, neurons, "w : 1\nysum_post = w * x_pre : 1 (summed)",
                           name="synapses", namespace=namespace)
    synapses.connect(i=topology.pre, j=topology.post)
    synapses.w = initial_weights(experiment, len(topology.pre), rng)
    synapses.run_regularly(rule.synapse_update, when="synapses", order=0, name="plasticity")
    if rule.post_update:
        neurons.namespace.update(namespace)
        neurons.run_regularly(rule.post_update, when="synapses", order=1, name="plastic_state")

    network = b2.Network(objects + [inputs, neurons, synapses])
    return RateNetwork(network, synapses, neurons, topology, stats)


def start_runtime(experiment):
    """Select Brian2's runtime device (Cython) with the experiment's time step and seed."""
    import brian2 as b2

    b2.set_device("runtime")
    b2.prefs.codegen.target = "cython"
    b2.defaultclock.dt = experiment.simulation.dt * b2.second
    b2.seed(experiment.seed)


def run(experiment, options):
    """Run a rate experiment on the runtime device; return the run file's path."""
    import brian2 as b2

    rule = get_rule(experiment.rule.name)
    params = experiment.rule.params
    rng = np.random.default_rng(experiment.seed)
    sim = experiment.simulation
    start_runtime(experiment)
    parts = build_rate_network(experiment, rule, params, rng)
    if not options.record:
        parts.network.run(sim.duration * b2.second, namespace={})
        return None
    runfile = open_run_file(experiment, rule, parts, options, "runtime")
    synapses, neurons = parts.synapses, parts.neurons
    state_names = list(runfile.state_sizes)
    bar = Progress(sim.duration, options.progress, experiment.name)

    def record(t):
        w = np.asarray(synapses.w_[:])
        state = {name: np.asarray(getattr(neurons, name + "_")[:]) for name in state_names}
        problem = check_finite(w, state, sim.weight_bound)
        runfile.append(t, w, state)
        bar.update_to(t)
        return problem

    outcome, now = drive(experiment, parts.network, record, runfile, bar)
    return finish(runfile, rule, outcome, now)
