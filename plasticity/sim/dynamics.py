"""``kind = "dynamics"`` experiments: a NumPy system (:mod:`plasticity.systems`)
integrated with fixed-step RK4 and recorded like a Brian2 run.

The file has the usual layout: root attrs ``rule`` = the system name, ``model`` =
``"dynamics"``; ``/config``; ``/time``; ``/weights`` (T, n): the full state;
``/synapses/pre`` = 0..n−1, ``/synapses/post`` = 0 (one "neuron" holding the vector);
``/drift`` (T, n): the exact drift at each record; attrs ``labels`` (names of the
components), ``n_pre`` = n, ``n_post`` = 1, ``dt``, ``record_every``.
"""

import time as _time

import numpy as np

from ..errors import Diverged, Interrupted
from ..io import RunFile
from ..systems import integrate
from .session import Progress, run_path


#: labels up to this many bytes go in the ``labels`` attribute (HDF5 object headers
#: hold at most 64 KiB); a larger system's labels are left out
MAX_LABEL_BYTES = 32 << 10


def _labels(system):
    labels = np.array(system.labels, dtype="S")
    return {"labels": labels} if labels.nbytes <= MAX_LABEL_BYTES else {}


def run(experiment, options):
    """Integrate a :class:`~plasticity.config.DynamicsExperiment` and write its run
    file; return the path. Raises :class:`~plasticity.errors.Diverged` (file kept,
    status ``diverged``) when the state leaves ``simulation.weight_bound``."""
    sim = experiment.simulation
    system = experiment.system()
    n = system.n
    runfile = RunFile(run_path(experiment, options.out_dir, options.path), n, extra_sizes={"drift": n})
    runfile.write_metadata(config_toml=experiment.to_toml(), rule=system.name, model="dynamics",
                           seed=experiment.seed, pre=np.arange(n), post=np.zeros(n, int),
                           attrs={"device": "numpy", "n_pre": n, "n_post": 1, "dt": sim.dt,
                                  "record_every": experiment.record.every, "kind": "dynamics",
                                  **_labels(system)})
    steps, every = experiment.steps
    started = _time.time()
    times, states = [], []
    status, message = "complete", None
    last_time = None

    def write_block():
        if not times:
            return
        W = np.array(states)
        F = system.drift(W)      # the exact drift at each record, one call per block
        for t, w, drift in zip(times, W, F):
            runfile.append(t, w, extra={"drift": drift})
        runfile.flush()
        times.clear()
        states.clear()

    bar = Progress(sim.duration, options.progress, experiment.name)
    try:
        for step, w in integrate(system, system.w0, sim.dt, steps, every, sim.weight_bound):
            times.append(step * sim.dt)
            states.append(w)
            last_time = step * sim.dt
            if not np.all(np.isfinite(w)) or np.max(np.abs(w)) > sim.weight_bound:
                status = "diverged"
                message = (f"|w| exceeds simulation.weight_bound = {sim.weight_bound:g}"
                           if np.all(np.isfinite(w)) else "non-finite state")
                break
            if len(times) >= runfile.chunk:
                write_block()
            bar.update_to(step * sim.dt)
        write_block()
    except KeyboardInterrupt:
        write_block()
        runfile.close("interrupted", "stopped by SIGINT")
        raise Interrupted(f"run interrupted; records so far kept in {runfile.path}",
                          path=runfile.path) from None
    except BaseException as error:
        runfile.close("failed", f"{type(error).__name__}: {error}")
        raise
    finally:
        bar.close()
    runfile.set_attrs({"wall_time": _time.time() - started})
    runfile.close(status, message)
    if status == "diverged":
        raise Diverged(f"run diverged under system {system.name!r}: {message} (log kept: {runfile.path})",
                       time=last_time, path=runfile.path)
    return runfile.path
