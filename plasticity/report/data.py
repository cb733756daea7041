"""What a report needs from one run file, read once and kept small.

:func:`load_run_data` opens a run (a plasticity run file, a minimal HDF5 or an .npz)
through :func:`plasticity.analysis.open_run`, reads the weights chunk by chunk into
per-record summaries (mean, percentiles, a few sample synapses) plus the first, middle
and last records whole, and collects whatever else the file holds: the plastic state,
the input statistics, the firing rates, the spikes, the ``/analysis`` results.
Memory stays bounded by the number of records times a few columns.

Every field that a file may lack is ``None`` (or empty): the figures check.
"""

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..analysis import open_run
from ..io.reader import read_extras

#: sample synapses drawn as thin lines in the weights-over-time figure
N_SAMPLE_LINES = 8
#: at most this many spikes of one population are kept for the raster
MAX_SPIKES = 400_000
#: all weights are kept in memory when records × synapses is at most this
KEEP_ALL_VALUES = 8_000_000


@dataclass
class RunData:
    path: Path
    kind: str                                   # "run", "hdf5", "npz"
    name: str
    description: str = ""
    rule_name: str | None = None
    model: str | None = None
    seed: int | None = None
    status: str | None = None
    message: str | None = None
    attrs: dict = field(default_factory=dict)   # root attributes, decoded
    versions: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    model_spec: dict = field(default_factory=dict)   # the stored /model_spec (Brian2 runs)
    params: dict | None = None
    rule: object = None
    stats: object = None                        # InputStats or None
    time: np.ndarray = None
    n_synapses: int = 0
    n_pre: int = 0
    n_post: int = 0
    pre: np.ndarray = None
    post: np.ndarray = None
    labels: list | None = None                  # component names of a dynamics state
    summary: dict = field(default_factory=dict)  # per-record mean/p05/p25/p50/p75/p95
    sample: np.ndarray = None                   # (T, k) a few synapses
    sample_index: np.ndarray = None
    weights_all: np.ndarray = None              # (T, S) when S is small, else None
    first: np.ndarray = None                    # (S,) records 0, T//2, T-1
    middle: np.ndarray = None
    last: np.ndarray = None
    finite_records: int = 0                     # records before the first non-finite one
    state: dict = field(default_factory=dict)   # name -> (T, n_post)
    rates_pre: np.ndarray = None                # (T, n_pre) Hz, row 0 NaN
    rates_post: np.ndarray = None               # (T, n_post)
    spikes: dict = field(default_factory=dict)  # population -> (t, i)
    spikes_truncated: dict = field(default_factory=dict)
    analysis_doc: dict | None = None            # the analyze JSON document stored in the file
    analysis: dict = field(default_factory=dict)  # loss -> {array name: ndarray, "attrs": {...}}
    loss_descriptions: dict = field(default_factory=dict)  # the rule's candidate losses in formulas

    @property
    def title_tag(self):
        """``experiment · rule · seed N`` for figure titles."""
        parts = [self.name]
        if self.rule_name:
            parts.append(self.rule_name)
        if self.seed is not None:
            parts.append(f"seed {self.seed}")
        return " · ".join(parts)

    @property
    def is_dynamics(self):
        return self.model == "dynamics"

    @property
    def is_spiking(self):
        return self.rule is not None and self.rule.activity == "spiking"


def load_run_data(path):
    """A :class:`RunData` of ``path`` (BadInput on a missing, foreign or corrupt file)."""
    path = Path(path)
    with open_run(path) as run:
        data = RunData(path=path, kind=run.source, name=path.stem)
        data.rule_name, data.model, data.status = run.rule_name, run.model, run.status
        data.config, data.params, data.rule = run.config, run.params, run.rule
        data.name = str(run.config.get("name") or path.stem)
        data.description = str(run.config.get("description") or "")
        data.stats = getattr(run.stats, "base", run.stats)
        data.time = np.asarray(run.time, float)
        data.n_synapses, data.n_pre, data.n_post = run.n_synapses, run.n_pre, run.n_post
        data.pre, data.post = run.pre, run.post
        _read_weights(run, data)
        if run.rule is not None and run.rule.losses:
            from ..analysis import rule_losses

            try:
                losses = rule_losses(run.rule_name, run.stats, run.layout(with_state=False), run.params)
                data.loss_descriptions = {loss.name: loss.description for loss in losses}
            except Exception:   # noqa: BLE001 - a description is a nicety, never a reason to fail
                pass
        for name in getattr(run, "_state", {}):
            data.state[name] = np.asarray(run._state[name][:run.n_records], float)
        rates = getattr(run, "_rates", None)
        if rates is not None:
            data.rates_pre = np.asarray(rates[0][:run.n_records], float)
            data.rates_post = np.asarray(rates[1][:run.n_records], float)
    if data.kind != "npz":
        _read_hdf5_extras(data)
    return data


def _read_weights(run, data):
    """Per-record summaries, a few sample columns and three whole records, chunk by chunk.
    (The raw dataset is sliced rather than ``run.weights``: a diverged run's last
    records are non-finite and must still be drawn up to where they stop.)"""
    S, T = run.n_synapses, run.n_records
    rng = np.random.default_rng(0)
    k = min(S, N_SAMPLE_LINES)
    data.sample_index = np.sort(rng.choice(S, size=k, replace=False)) if S > k else np.arange(S)
    keep_all = S * T <= KEEP_ALL_VALUES
    names = ("mean", "p05", "p25", "p50", "p75", "p95")
    parts = {n: [] for n in names}
    samples, alls = [], []
    # a list: with two records the middle one is also the last
    wanted = (("first", 0), ("middle", T // 2), ("last", T - 1))
    finite = T
    for start, stop in run.chunks():
        block = np.asarray(run._weights[start:stop], float)
        bad = ~np.all(np.isfinite(block), axis=1)
        if bad.any() and finite == T:
            finite = start + int(np.argmax(bad))
        with np.errstate(all="ignore"), _quiet():
            parts["mean"].append(np.nanmean(block, axis=1))
            q = np.nanpercentile(block, [5, 25, 50, 75, 95], axis=1)
        for n, row in zip(names[1:], q):
            parts[n].append(row)
        samples.append(block[:, data.sample_index])
        if keep_all:
            alls.append(block)
        for attr, index in wanted:
            if start <= index < stop:
                setattr(data, attr, block[index - start].copy())
    data.summary = {n: np.concatenate(v) for n, v in parts.items()}
    data.sample = np.concatenate(samples)
    data.weights_all = np.concatenate(alls) if keep_all else None
    data.finite_records = finite


class _quiet:
    """Silence numpy's all-NaN warnings (a row of a diverged run)."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


def _read_hdf5_extras(data):
    extras = read_extras(data.path, max_spikes=MAX_SPIKES)
    data.attrs = extras["attrs"]          # decoded by the reader
    data.seed = data.attrs.get("seed", data.config.get("seed"))
    data.message = data.attrs.get("message")
    data.versions = {k[len("version_"):]: v for k, v in data.attrs.items()
                     if k.startswith("version_")}
    data.model_spec = extras["model_spec"] or {}
    labels = data.attrs.get("labels")
    if isinstance(labels, list):
        data.labels = [str(x) for x in labels]
    for population, (t, i) in extras["spikes"].items():
        data.spikes[population] = (t, i)
        if extras["spikes_total"][population] > t.size:
            data.spikes_truncated[population] = extras["spikes_total"][population]
    data.analysis_doc = extras["analysis_doc"]
    data.analysis.update(extras["analysis"])
