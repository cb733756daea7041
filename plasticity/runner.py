"""``from plasticity.runner import run`` (the Python API of earlier versions) keeps
working: the run entry point now lives in :mod:`plasticity.sim`."""

from .sim import results_dir, run

__all__ = ["run", "results_dir"]
