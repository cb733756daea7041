"""What a Dask worker does for one point of a sweep: run it, analyse it, return the
table rows (a few hundred bytes), never the trajectory.

Everything a task needs travels with it (the resolved config, the run file's path, the
analysis options); the worker keeps nothing between tasks but Brian2's compiled code:
the runtime device's Cython extensions are cached on disk (shared by the workers of a
machine; Brian2 locks each module while it compiles it), and cpp_standalone build
folders are held one per process (:mod:`plasticity.standalone`'s build slots), so two
workers never build in the same folder. The Brian2 objects of a run are released
after it (``gc.collect()``): a worker's memory does not grow with the number of runs.

Fixed costs per task are kept small: the worker process imports Brian2 (without
matplotlib) and the modules a task uses when it starts, and moves everything alive
after its imports and again after its first task out of the garbage collector's view
(:func:`gc.freeze`, as ``plasticity run`` does). Brian2 collects before every run and
the task after it; each full collection would otherwise walk the few hundred thousand
objects of Brian2, SymPy, SciPy and Dask (0.2–0.3 s each, most of a small run's cost).

Stopping: :func:`request_stop` (run on every worker by the sweep's client on
SIGINT/SIGTERM, through ``Client.run``, i.e. outside the task's thread) calls
``brian2.stop()``, which ends the running network at the end of its current step;
the task then marks the run file ``interrupted`` and returns an ``interrupted`` row.
"""

import gc
import os
import time
import traceback

import numpy as np

#: sweep tokens whose stop was requested on this worker process
_STOPPED = set()

#: the columns of the sweep table that come from the analysis, in order
METRIC_COLUMNS = ("loss", "verdict", "descent_fraction", "psi_deg_median", "kappa_min_median",
                  "stability_max_real", "stability_max_imag", "stable", "recurrence", "window_T")


def _run_experiment(experiment, path):
    from ..sim import run

    return run(experiment, path=path, progress=False)


def brian2_plugin():
    """A Dask worker plugin that imports Brian2 when a worker starts.

    Brian2 installs a SIGINT handler when it is imported, which Python allows only in
    a process's main thread; tasks run in a worker's thread pool, while plugins are set
    up on its event loop, in the main thread."""
    from distributed import WorkerPlugin

    class ImportBrian2(WorkerPlugin):
        name = "plasticity-import-brian2"

        def setup(self, worker):
            prepare_worker_process()

    return ImportBrian2()


def prepare_worker_process():
    """Import what a task uses (Brian2 without matplotlib, the run, file and analysis
    modules with the SciPy parts they import), then freeze the imports for the garbage
    collector."""
    from ..sim.brian import prepare_run_process
    from ..sim import rate  # noqa: F401
    from ..analysis import pipeline, meanfield, stability  # noqa: F401
    from ..io import reader, writer  # noqa: F401

    prepare_run_process()     # imports Brian2, collects, freezes


#: whether this process froze what its first task left alive (caches, lazy imports)
_FROZE_AFTER_FIRST = []


def _freeze_after_first_task():
    """After the first task, freeze what stays alive (Brian2's and SymPy's caches,
    modules imported on first use): objects that live on are not walked by every later
    collection. Objects frozen are still freed by reference counting."""
    if not _FROZE_AFTER_FIRST:
        gc.collect()
        gc.freeze()
        _FROZE_AFTER_FIRST.append(True)


def _forget_run_times():
    """Clear Brian2's record of the last run's time on every device (a run that fails
    before simulating must not report the previous one's)."""
    import sys

    if "brian2" in sys.modules:
        from brian2.devices.device import all_devices

        for device in all_devices.values():
            device._last_run_time = None


def _simulation_seconds():
    """Brian2's own measure of the last run: seconds in its simulation loop (the steps
    and the recorder's writes; not the network's construction or code generation).
    ``None`` when no Brian2 network ran (NumPy runs)."""
    import sys

    if "brian2" not in sys.modules:
        return None
    import brian2

    seconds = getattr(brian2.get_device(), "_last_run_time", None)
    return None if seconds is None else float(seconds)


def request_stop(token):
    """Ask the runs of sweep ``token`` on this worker process to stop (Client.run)."""
    _STOPPED.add(token)
    try:
        import sys

        if "brian2" in sys.modules:
            import brian2

            brian2.stop()
    except Exception:   # nothing to stop
        pass
    return os.getpid()


def mark_interrupted(path, message):
    """Set a run file's status to ``interrupted`` if it says ``running`` or ``complete``
    (a run cut short by ``brian2.stop()`` ends as if complete)."""
    from ..io.writer import mark_status

    return mark_status(path, "interrupted", message)


class _StopWatcher:
    """While a run goes on, repeat ``brian2.stop()`` every 0.2 s once its sweep is
    stopped: a network resets Brian2's global stop flag when it starts, so a stop
    requested while the run was still being built would otherwise be lost."""

    def __init__(self, token):
        import threading

        self.token = token
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        while not self.done.wait(0.2):
            if self.token in _STOPPED:
                request_stop(self.token)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


def _cut_short(path, experiment):
    """Whether the run file's last record is before the experiment's duration (a
    network ended by ``brian2.stop()`` closes its file as if complete)."""
    from ..io.reader import read_summary

    last = read_summary(path)["last_time"]
    return last is None or last < experiment.simulation.duration * (1 - 1e-9)


def _rss_mb():
    try:
        import psutil

        return round(psutil.Process().memory_info().rss / 2**20, 1)
    except Exception:
        return None


def _metric_rows(doc):
    """Rows (dicts of METRIC_COLUMNS) of an analysis document: one per loss."""
    st = doc.get("stability") or {}
    common = {
        "stability_max_real": st.get("max_real"),
        "stability_max_imag": st.get("max_imag"),
        "stable": st.get("stable"),
        "recurrence": doc.get("recurrence") is not None,
    }
    rows = []
    for r in doc.get("results", []):
        window = r.get("window_loss") or {}
        rows.append({
            "loss": r["loss"], "verdict": r["verdict"],
            "descent_fraction": r.get("descent_fraction"),
            "psi_deg_median": (r.get("psi_deg") or {}).get("median"),
            "kappa_min_median": (r.get("kappa_min") or {}).get("median"),
            "window_T": window.get("window"),
            **common,
        })
    if not rows:
        rows.append({"loss": "", "verdict": doc.get("verdict", ""), **common})
    return rows


def run_point(task):
    """Run and analyse one point; the rows of the sweep table (list of dicts).

    ``task``: ``{"token", "index", "identity", "seed", "experiment", "path", "file",
    "analysis": {"loss", "drift", "window"}}``. Never raises: a run that diverges, fails
    or is stopped is a row with that status and a message. A task that starts after
    its sweep was stopped returns no rows (the run never began).
    """
    from ..errors import Diverged, Interrupted

    started = time.perf_counter()
    token, path = task["token"], task["path"]
    status, message, run_s = "complete", "", None
    rows = None
    if token in _STOPPED:
        return []
    watcher = _StopWatcher(token)
    _forget_run_times()
    try:
        with watcher:
            _run_experiment(task["experiment"], path)
        if token in _STOPPED and _cut_short(path, task["experiment"]):
            status, message = "interrupted", "sweep stopped (SIGINT/SIGTERM)"
            mark_interrupted(path, message)
    except Diverged as error:
        status, message = "diverged", str(error)
    except Interrupted as error:
        status, message = "interrupted", str(error)
    except Exception as error:   # a failed run is a row, not a crash of the sweep
        status = "failed"
        message = f"{type(error).__name__}: {error}".splitlines()[0]
        if not os.path.exists(path):
            message += " (no run file)"
    run_s = time.perf_counter() - started
    sim_s = _simulation_seconds()
    gc.collect()   # the run's Brian2 objects (reference cycles) go now, not later
    if status == "complete":
        try:
            from ..analysis import analyze_file

            options = task["analysis"]
            doc = analyze_file(path, options.get("loss"), drift=options.get("drift", "auto"),
                               window=options.get("window"))
            rows = _metric_rows(doc)
        except Exception as error:
            status = "failed"
            message = f"analysis: {type(error).__name__}: {error}".splitlines()[0]
            if os.environ.get("PLASTICITY_SWEEP_DEBUG"):
                message += " | " + traceback.format_exc().replace("\n", " | ")
    base = {
        "run": task["index"], "identity": task["identity"], "seed": task["seed"],
        "status": status, "message": message,
        "file": task["file"] if os.path.exists(path) else "",
        "wall_s": round(time.perf_counter() - started, 4),
        "run_s": None if run_s is None else round(run_s, 4),
        "sim_s": None if sim_s is None else round(sim_s, 4),
        "worker_pid": os.getpid(), "worker_rss_mb": _rss_mb(),
    }
    _freeze_after_first_task()
    return [{**base, **{k: _round(v) for k, v in row.items()}} for row in (rows or [{}])]


def _round(value, digits=6):
    if isinstance(value, (float, np.floating)):
        return float(f"{float(value):.{digits + 1}g}") if np.isfinite(value) else float(value)
    return value
