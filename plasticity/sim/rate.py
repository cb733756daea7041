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

On the runtime device two of these are single NumPy calls in ``network_operation``s
(see :func:`numpy_input_draw`, :func:`matrix_sum`): diagonal Gaussian inputs are drawn
by ``numpy.random.Generator``, and the sum of all-to-all synapses is ``x · W``. On
cpp_standalone everything is generated C++: the normal draws by NumPy's ziggurat
(:mod:`plasticity.sim.normal`), the sum of all-to-all synapses as a dot product per
output (:func:`standalone_matrix_sum`).
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


def normal_draw():
    """(expression, namespace) of a standard normal draw in Brian2 code: NumPy's
    ziggurat (:mod:`plasticity.sim.normal`) in a C++ standalone program, Brian2's
    ``randn()`` otherwise."""
    if _standalone():
        from .normal import normal_function

        func = normal_function()
        if func is not None:
            return "plasticity_randn()", {"plasticity_randn": func}
    return "randn()", None


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


def input_group(stats, n_pre, *, dt=None, eqs="", threshold=None, generator=None):
    """The ``inputs`` NeuronGroup whose variable ``x`` is drawn from ``stats`` (gaussian
    or patterns), and the other Brian2 objects that drawing needs (a ``latent`` group
    and ``mixing`` synapses, or the pattern ``chooser``). ``x`` is redrawn at the start
    of every time step, or every ``dt`` (seconds) when given: Poisson inputs modulated by
    these statistics (:mod:`plasticity.sim.spiking`) hold each draw for an interval and add
    their own ``eqs`` and ``threshold``.

    ``generator`` (runtime device only): a NumPy Generator that draws diagonal Gaussian
    inputs redrawn every step in one call (:func:`numpy_input_draw`) instead of
    Brian2's ``randn()``."""
    import brian2 as b2

    every = {} if dt is None else {"dt": dt * b2.second}
    extra_eqs = f"\n{eqs}" if eqs else ""
    objects = []
    if stats.kind == "gaussian":
        randn, draw_namespace = normal_draw()
        if stats.diagonal:
            inputs = b2.NeuronGroup(n_pre, "x : 1\nxbar : 1 (constant)\nsd : 1 (constant)" + extra_eqs,
                                    threshold=threshold, name="inputs", namespace=draw_namespace)
            inputs.sd = stats.scale
            if generator is not None and not every:
                objects.append(numpy_input_draw(inputs, stats, generator))
            else:
                inputs.run_regularly(f"x = xbar + sd * {randn}", when="start", name="inputs_draw",
                                     **every)
        else:
            latent = b2.NeuronGroup(n_pre, "z : 1", name="latent", namespace=draw_namespace)
            latent.run_regularly(f"z = {randn}", when="start", name="latent_draw", **every)
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
class RatePlan:
    """What a rate experiment's network is made of, computed with NumPy alone (no
    Brian2): the input statistics, the synapses, the initial weights and state, the
    rule's parameter values (SI). :func:`build_rate_network` makes the Brian2 objects
    from it; a warm cpp_standalone launch (:mod:`plasticity.sim.standalone`) hands the
    same values to an already compiled program."""

    stats: InputStats
    topology: Topology
    weights: np.ndarray
    initial_state: dict      # name -> value of the neurons' state variables
    parameters: dict         # the rule's parameters, name -> number (SI)

    def program_values(self):
        """The values the Brian2 objects of :func:`build_rate_network` are given, by
        ``"group.variable"``: what a compiled program must be handed to run this plan.
        Inputs that need values not listed here (a full covariance's mixing) get no
        launch record: their runs always take the full path."""
        values = {"synapses.sources": self.topology.pre, "synapses.targets": self.topology.post,
                  "synapses.w": self.weights, "inputs.xbar": self.stats.mean}
        if self.stats.kind == "gaussian" and self.stats.diagonal:
            values["inputs.sd"] = self.stats.scale
        elif self.stats.kind == "patterns":
            # the index of the linked pattern number (input_group: every input reads
            # the chooser's one k)
            values["inputs._k_indices"] = np.zeros(len(self.stats.mean), dtype=np.int32)
        for name, value in {**self.initial_state, **self.parameters}.items():
            values[f"neurons.{name}"] = value
        return values


def plan_rate_network(experiment, rule, params, rng):
    """The :class:`RatePlan` of a rate experiment; draws from ``rng`` in the order the
    network has always drawn (statistics, topology, initial weights)."""
    stats = make_stats(experiment, rng)
    topology = make_topology(experiment, rng)
    initial_state = rule.initial_state(params, experiment.network.n_post)
    weights = initial_weights(experiment, len(topology.pre), rng)
    parameters = {key: params[key] for key in rule.parameters}
    return RatePlan(stats, topology, weights, initial_state, parameters)


@dataclass
class RateNetwork:
    """The Brian2 objects of a rate experiment, and what the recorder needs."""

    network: object          # brian2.Network
    synapses: object         # brian2.Synapses holding w
    neurons: object          # brian2.NeuronGroup holding y and the rule's state
    topology: Topology
    stats: InputStats
    plan: RatePlan = None


def build_rate_network(experiment, rule, params, rng, shared_parameters=False):
    """Create the Brian2 objects (in the current device) for a rate experiment, from
    its :func:`plan_rate_network`.

    ``shared_parameters``: the rule's parameters are ``(shared, constant)`` variables of
    the neurons instead of constants in the namespace (cpp_standalone, so that their
    values are not compiled into the program)."""
    import brian2 as b2

    net_cfg = experiment.network
    plan = plan_rate_network(experiment, rule, params, rng)
    stats, topology = plan.stats, plan.topology
    n_pre, n_post = net_cfg.n_pre, net_cfg.n_post
    objects = []

    runtime = not _standalone()
    inputs, extra = input_group(stats, n_pre,
                                generator=input_generator(experiment.seed) if runtime else None)
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
    for name, value in plan.initial_state.items():
        setattr(neurons, name, value)
    assign_values(neurons, shared)

    synapses = b2.Synapses(inputs, neurons, "w : 1\nysum_post = w * x_pre : 1 (summed)",
                           name="synapses", namespace=namespace)
    synapses.connect(i=topology.pre, j=topology.post)
    synapses.w = plan.weights
    synapses.run_regularly(rule.synapse_update, when="synapses", order=0, name="plasticity")
    if rule.post_update:
        neurons.namespace.update(namespace)
        neurons.run_regularly(rule.post_update, when="synapses", order=1, name="plastic_state")

    from brian2.core.variables import ArrayVariable

    if isinstance(inputs.variables["x"], ArrayVariable) and is_all_to_all(topology, n_pre, n_post):
        if runtime:
            objects.append(matrix_sum(synapses, inputs, neurons, n_pre, n_post))
        else:
            standalone_matrix_sum(synapses, inputs, neurons, n_pre, n_post)

    network = b2.Network(objects + [inputs, neurons, synapses])
    return RateNetwork(network, synapses, neurons, topology, stats, plan)


# Brian2's runtime device calls Python once per code object per step, and its Cython
# ``randn()`` draws from NumPy's legacy generator (the polar method): for a rate
# network of 10⁴ synapses that made a step 2.4× the same step written in NumPy
# (benchmarks/RESULTS.md, "Runtime device: options"). Two steps are done as single
# NumPy calls instead, where NumPy does them faster than generated loops over synapses:
# drawing diagonal Gaussian inputs, and the output sum of all-to-all synapses (a
# matrix product). The rule's update stays Brian2 code (its semantics, any rule).


def _standalone():
    import brian2 as b2
    from brian2.devices.cpp_standalone.device import CPPStandaloneDevice

    return isinstance(b2.get_device(), CPPStandaloneDevice)


def input_generator(seed):
    """The NumPy generator of a runtime run's input draws: a child of ``seed``'s
    SeedSequence, so it is reproducible and independent of the ``default_rng(seed)``
    stream that draws the input statistics, topology and initial weights."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])


def numpy_input_draw(inputs, stats, generator):
    """A ``network_operation`` (``when="start"``, as ``inputs_draw``) setting
    ``x = xbar + sd·N(0, 1)`` for all inputs with ``generator.standard_normal`` (the
    ziggurat), in place in the group's array."""
    import brian2 as b2

    sd, mean = np.asarray(stats.scale, float), np.asarray(stats.mean, float)
    x = inputs.variables["x"].get_value()     # the group's own array, written in place

    @b2.network_operation(when="start", order=0, name="inputs_draw")
    def inputs_draw():
        generator.standard_normal(out=x)
        np.multiply(x, sd, out=x)
        np.add(x, mean, out=x)

    return inputs_draw


def is_all_to_all(topology, n_pre, n_post):
    """Whether the synapses are every (pre, post) pair in (pre, post) order, so that
    ``w`` read as an ``(n_pre, n_post)`` matrix is the weight matrix."""
    return (len(topology.pre) == n_pre * n_post
            and np.array_equal(topology.pre, np.repeat(np.arange(n_pre), n_post))
            and np.array_equal(topology.post, np.tile(np.arange(n_post), n_pre)))


def matrix_sum(synapses, inputs, neurons, n_pre, n_post):
    """A ``network_operation`` replacing the summed variable ``ysum_post = w x_pre``
    of all-to-all synapses by ``ysum = x · W`` (``W`` a view of ``w``), at the
    updater's place in the schedule; the updater is made inactive."""
    import brian2 as b2

    updater = synapses.summed_updaters["ysum_post"]
    updater.active = False
    x = inputs.variables["x"].get_value()
    ysum = neurons.variables["ysum"].get_value()
    weights = synapses.variables["w"]

    @b2.network_operation(when=updater.when, order=updater.order, name="ysum_matrix")
    def ysum_matrix():
        # fetched each step: a view of the synapses' current array of w
        np.dot(x, weights.get_value().reshape(n_pre, n_post), out=ysum)

    return ysum_matrix


#: C++ of ``plasticity_ysum(post)``: ``Σ_j w[j, post] x[j]`` over the all-to-all weight
#: matrix (W_ARRAY, X_ARRAY, N_PRE, N_POST filled in per network)
YSUM_CODE = r"""
static double plasticity_ysum(const int32_t post)
{
    const double* __restrict w = &brian::W_ARRAY[0];
    const double* __restrict x = brian::X_ARRAY;
    double total = 0.0;
    for (int64_t j = 0; j < N_PRE; j++)
        total += w[j * N_POST + post] * x[j];
    return total;
}
"""


def standalone_matrix_sum(synapses, inputs, neurons, n_pre, n_post):
    """cpp_standalone's :func:`matrix_sum`: the summed variable's scatter over the
    synapses (``ysum[post[s]] += …``, each addition waiting for the previous one)
    replaced by a dot product per output neuron that the compiler vectorises, run by
    the neurons at the updater's place in the schedule; the updater is made inactive.
    """
    import brian2 as b2

    device = b2.get_device()
    updater = synapses.summed_updaters["ysum_post"]
    updater.active = False
    code = (YSUM_CODE.replace("W_ARRAY", device.get_array_name(synapses.variables["w"], access_data=False))
            .replace("X_ARRAY", device.get_array_name(inputs.variables["x"]))
            .replace("N_PRE", str(int(n_pre))).replace("N_POST", str(int(n_post))))

    def plasticity_ysum(post):  # pragma: no cover - C++ only
        raise NotImplementedError("plasticity_ysum runs in cpp_standalone programs only")

    func = b2.Function(plasticity_ysum, arg_units=[1], return_unit=1, arg_types=["integer"],
                       return_type="float", stateless=False)
    func.implementations.add_implementation("cpp", {"support_code": code}, name="plasticity_ysum")
    neurons.namespace["plasticity_ysum"] = func
    neurons.run_regularly("ysum = plasticity_ysum(i)", when=updater.when, order=updater.order,
                          name="ysum_matrix")


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

    w_variable = synapses.variables["w"]
    state_variables = {name: neurons.variables[name] for name in state_names}

    def record(t):
        # the variables' own arrays, not copies through Brian2's indexing: RunFile
        # copies the record into its buffer
        w = w_variable.get_value()
        state = {name: variable.get_value() for name, variable in state_variables.items()}
        problem = check_finite(w, state, sim.weight_bound)
        runfile.append(t, w, state)
        bar.update_to(t)
        return problem

    outcome, now = drive(experiment, parts.network, record, runfile, bar)
    return finish(runfile, rule, outcome, now)
