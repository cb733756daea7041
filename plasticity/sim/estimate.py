"""What a run will cost, known before it starts: synapses, steps, records, memory and
the size of its file; and the check that it fits this machine.

``plasticity validate`` prints the estimate; ``plasticity run`` refuses (exit 2, with
the numbers) a run whose memory exceeds the memory available now or whose file exceeds
the free space of its folder, unless ``--force``. The estimate errs on the large side:
the synapse count of a random topology is its all-to-all bound, the file size is the
uncompressed size of every record.
"""

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput
from ..io.trust import available_memory

#: what the Python process with Brian2 (or NumPy) loaded holds before any network
BASE_MEMORY_BYTES = 300 << 20
#: memory per synapse of a Brian2 network: the weight, the indices, the per-synapse
#: variables of the rule and Brian2's own index arrays (about a dozen 8-byte arrays)
BYTES_PER_SYNAPSE = 120
#: the file's metadata (config, versions, synapse indices are counted separately)
FILE_OVERHEAD_BYTES = 1 << 20


@dataclass(frozen=True)
class Estimate:
    synapses: int
    #: False when ``synapses`` is an upper bound (a random topology)
    synapses_exact: bool
    steps: int
    records: int
    #: numbers per record in the file (time, weights, state, rates, drift)
    record_width: int
    memory_bytes: int
    file_bytes: int

    def lines(self):
        bound = "" if self.synapses_exact else "at most "
        return [f"synapses: {bound}{self.synapses:,}",
                f"steps: {self.steps:,}",
                f"records: {self.records:,} ({self.record_width:,} numbers each)",
                f"memory: about {_size(self.memory_bytes)}",
                f"file: at most {_size(self.file_bytes)} (uncompressed)"]

    def summary(self):
        return "; ".join(self.lines())


def _size(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} PiB"


def estimate(experiment):
    """The :class:`Estimate` of a resolved experiment (nothing is built)."""
    if getattr(experiment, "kind", None) == "dynamics":
        return _estimate_dynamics(experiment)
    from ..rules import RULES

    net = experiment.network
    n_pre, n_post = net.n_pre, net.n_post
    synapses = _synapse_bound(net)
    exact = net.topology.generator == "complete_bipartite_graph"
    steps, every = experiment.steps
    records = steps // every + 1
    rule = RULES[experiment.rule.name]
    logged = synapses
    if net.spec.recurrent:     # only the E→E synapses are logged
        n_exc = round(float(net.params.get("frac_exc", net.spec.params.get("frac_exc", 1.0))) * n_pre)
        logged = min(synapses, _synapse_bound(net, n_exc, n_exc))
    width = 1 + logged + (n_post * len(rule.state) if experiment.record.state else 0)
    if net.spec.activity == "spiking":
        width += n_pre + n_post           # /rates/pre and /rates/post
    inputs = experiment.inputs
    # input statistics: a dense covariance (n_pre²) and, with rotation = "random", the
    # orthogonal matrix and its QR work space
    dense = inputs.kind == "gaussian" or inputs.modulation == "gaussian"
    diagonal = inputs.covariance is None and inputs.rotation == "identity"
    input_matrices = 0 if not dense else (2 if diagonal else 6) * 8 * n_pre * n_pre
    if dense and not diagonal:
        input_matrices += BYTES_PER_SYNAPSE * n_pre * n_pre   # the latent mixing synapses
    stored_inputs = 8 * n_pre * (1 if diagonal else n_pre) if dense else 0
    memory = (BASE_MEMORY_BYTES + BYTES_PER_SYNAPSE * synapses + input_matrices
              + 3 * _chunk_bytes(width))
    file_bytes = (FILE_OVERHEAD_BYTES + 8 * records * width + 16 * logged + stored_inputs)
    return Estimate(synapses, exact, steps, records, width, memory, file_bytes)


#: networkx generators of random graphs whose argument ``p`` is the probability of
#: each edge: their edge count is binomial, bounded here by its mean + 6 standard
#: deviations instead of all pairs
EDGE_PROBABILITY_GENERATORS = ("erdos_renyi_graph", "fast_gnp_random_graph",
                               "gnp_random_graph", "binomial_graph", "random_graph")


def _synapse_bound(net, n_pre=None, n_post=None):
    """An upper bound of the synapses among ``n_pre × n_post`` neurons (default: the
    network's): all pairs, or for a random graph with edge probability ``p`` its
    binomial edge count's mean + 6 standard deviations (never above all pairs)."""
    n_pre = net.n_pre if n_pre is None else n_pre
    n_post = net.n_post if n_post is None else n_post
    pairs = n_pre * n_post
    p = net.topology.args.get("p")
    if net.topology.generator in EDGE_PROBABILITY_GENERATORS and isinstance(p, (int, float)) \
            and 0 <= p <= 1:
        # an undirected graph's edges count both ways: the same expected pairs
        mean = p * pairs
        return int(min(pairs, mean + 6 * (mean * (1 - p)) ** 0.5 + 1))
    return pairs


def _estimate_dynamics(experiment):
    n = dynamics_state_size(experiment.dynamics)
    steps, every = experiment.steps
    records = steps // every + 1
    width = 1 + 2 * n                      # weights and the exact drift
    # the system's matrices (a linear system's A, n × n), the labels, the RK4 stages
    matrices = 8 * n * n if getattr(experiment.dynamics, "system", None) == "linear" else 0
    memory = BASE_MEMORY_BYTES + matrices + 80 * n + 3 * _chunk_bytes(width) + 40 * 8 * n
    file_bytes = FILE_OVERHEAD_BYTES + 8 * records * width + 80 * n
    return Estimate(n, True, steps, records, width, memory, file_bytes)


def dynamics_state_size(cfg):
    """The state size of a dynamics system from its config (nothing built)."""
    if hasattr(cfg, "n_hidden"):
        return cfg.n_hidden * cfg.n_in + cfg.n_out * cfg.n_hidden
    sizes = [len(value) for value in cfg.model_dump().values() if isinstance(value, list)]
    return 2 * max(sizes, default=1)


def _chunk_bytes(width):
    from ..io.writer import CHUNK_BYTES

    return max(CHUNK_BYTES, 8 * width)


def free_space(folder):
    """Free bytes in the file system that holds (or will hold) ``folder``."""
    path = Path(folder).absolute()
    for parent in (path, *path.parents):
        if parent.exists():
            try:
                return shutil.disk_usage(parent).free
            except OSError:
                return None
    return None


def check_fits(experiment, folder, force=False):
    """Raise :class:`BadInput` (with the numbers) when the run cannot fit this
    machine's available memory or ``folder``'s free space; ``force`` skips the check.
    Returns the :class:`Estimate`."""
    found = estimate(experiment)
    if force:
        return found
    memory = available_memory()
    if memory is not None and found.memory_bytes > memory:
        raise BadInput(f"{experiment.name}: the run needs about {_size(found.memory_bytes)} of memory, "
                       f"{_size(memory)} is available ({found.summary()}); use --force to run "
                       "it anyway")
    space = free_space(folder)
    if space is not None and found.file_bytes > space:
        raise BadInput(f"{folder}: the run file may take up to {_size(found.file_bytes)}, "
                       f"{_size(space)} is free there ({found.summary()}); record less often "
                       "(record.every), or use --force to run it anyway")
    return found
