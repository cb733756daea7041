"""The simulation side: building and running Brian2 networks (and NumPy systems),
streaming their records to a run file.

:func:`run` is the one entry point, what the CLI calls and what a sweep calls in a
worker process: it takes a resolved experiment, picks the run path and returns the run
file's path. Every run path has the same signature, ``run(experiment, options)``:

- :mod:`.rate`: rate networks on the runtime device (Cython);
- :mod:`.standalone`: rate and spiking networks on cpp_standalone, streaming from the
  program;
- :mod:`.spiking`: Poisson inputs, LIF neurons, event-driven rules (runtime device);
- :mod:`.dynamics`: ``kind = "dynamics"`` experiments (NumPy, no Brian2);
- :mod:`.session`: what they share (file, progress, signals, divergence guard).

Everything a run needs (seed, device, build folder) comes from the experiment and the
options, nothing from global state left by an earlier call.
"""

from .session import RunOptions, choose_device, results_dir, run_path  # noqa: F401

__all__ = ["run", "RunOptions", "choose_device", "results_dir", "run_path"]


def run(experiment, out_dir=None, *, path=None, progress=True, build_dir=None, _record=True):
    """Run ``experiment`` and return the path of its HDF5 run file.

    Parameters
    ----------
    experiment : plasticity.config.Experiment or DynamicsExperiment
        A resolved config (see :func:`plasticity.config.load_config`).
    out_dir : path, optional
        Folder of the run file (default ``results/<name>/``).
    path : path, optional
        The run file itself (must not exist).
    progress : bool
        Show a progress bar on stderr.
    build_dir : path, optional
        cpp_standalone build folder (default: one per process under the user cache).

    Raises :class:`~plasticity.errors.Diverged` (file kept, status ``diverged``) and
    :class:`~plasticity.errors.Interrupted` (status ``interrupted``).

    ``_record=False`` (private, for the benchmarks only) runs without the recorder and
    writes no file; it returns ``None``.
    """
    options = RunOptions(out_dir=out_dir, path=path, progress=progress, build_dir=build_dir,
                         record=_record)
    return runner_for(experiment).run(experiment, options)


def runner_for(experiment):
    """The module whose ``run(experiment, options)`` runs ``experiment``."""
    if getattr(experiment, "kind", None) == "dynamics":
        from . import dynamics

        return dynamics
    if choose_device(experiment) == "cpp_standalone":
        from . import standalone

        return standalone
    if experiment.network.spec.activity == "spiking":
        from . import spiking

        return spiking
    from . import rate

    return rate
