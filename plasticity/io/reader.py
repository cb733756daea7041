"""Reading run files (the layout: README, "The run file") and writing the ``/analysis``
group.

Accepted inputs:

- a plasticity run: HDF5 with ``format = "plasticity-run"``, ``/config`` (TOML),
  ``/time``, ``/weights``, ``/synapses/pre|post``, ``/state/<name>``, ``/inputs``;
- the minimal format: HDF5 with ``/time`` (T,) and ``/weights`` (T, n), optionally
  ``/drift`` (T, n); or an ``.npz`` with the same names.

A run that was killed may have ``/time`` shorter than ``/weights`` (the recorder
writes the data first and the time last): the shortest length is used. Records are
read in chunks along time (:meth:`Run.chunks`), so memory does not grow with T.
Every problem is a :class:`plasticity.errors.BadInput` with a one-line message that
names the file.

No Brian2 here: the analysis reads run files through this module alone.
"""

import json
import tomllib
from pathlib import Path

import numpy as np

from ..errors import BadInput
from ..inputs import SharedProductStats
from ..rules import RULES, SpikeRates
from .codecs import group_name, read_input_stats, write_certificate
from .layout import Layout
from .trust import (check_declared, check_finite, check_hdf5_objects, check_npz, check_real,
                    check_regular_file)

__all__ = ["Run", "open_run", "write_analysis", "read_analysis", "CHUNK_BYTES"]

#: larger weights are refused: their squares (in losses, norms) overflow
MAX_ABS_VALUE = 1e150

#: target size of one chunk of records read at once, bytes
CHUNK_BYTES = 2 << 20


class Run:
    """An opened trajectory (use :func:`open_run`).

    Attributes
    ----------
    path : Path
    source : str
        ``"run"`` (a plasticity run file), ``"hdf5"`` (minimal HDF5) or ``"npz"``.
    status, rule_name, model : str or None
    config : dict
        The resolved config (empty for minimal files).
    params : dict or None
        The rule's parameters in SI.
    rule : plasticity.rules.Rule or None
    stats : SharedProductStats or None
        The logged input statistics (an ``InputStats`` wrapped so that the drift and
        the losses of a chunk share ``W C``; ``stats.base`` is the ``InputStats``);
        ``stats_error`` says why they are missing.
    time : ndarray (T,)
    n_records, n_synapses : int
    pre, post : ndarray (S,)
    n_pre, n_post : int
    state_names : tuple of str
    has_drift : bool
    """

    def __init__(self, path):
        self.path = Path(path)
        self._file = None
        self._npz = None
        self.status = None
        self.rule_name = None
        self.model = None
        self.config = {}
        self.params = None
        self.rule = None
        self.stats = None
        self.stats_error = "no /inputs group"
        self.rule_error = "the file names no rule"
        self._rates = None
        self.state_names = ()
        self.has_drift = False
        check_regular_file(self.path)
        try:
            if self.path.suffix == ".npz" or _is_zip(self.path):
                self._open_npz()
            else:
                self._open_hdf5()
            if self.n_records < 1:
                raise BadInput(f"{self.path}: holds no records")
            if self.has_drift and self._file is not None:
                # a given drift decides the verdict: every number of it must be finite
                # (read once, in chunks)
                for start, stop in self.chunks():
                    self.read_drift(start, stop)
        except BadInput:
            self.close()
            raise

    # -- opening -------------------------------------------------------------------
    def _open_npz(self):
        check_npz(self.path)
        try:
            self._npz = np.load(self.path, allow_pickle=False)
            names = set(self._npz.files)
        except Exception as error:
            raise BadInput(f"{self.path}: cannot read as .npz ({type(error).__name__})") from None
        for name in ("time", "weights"):
            if name not in names:
                self.close()
                raise BadInput(f"{self.path}: lacks the array {name!r} (needs time and weights)")
        self.source = "npz"

        def numeric(name):
            try:
                raw = self._npz[name]
            except Exception as error:   # object arrays, a damaged member
                self.close()
                raise BadInput(f"{self.path}: array {name!r} is not numeric "
                               f"({type(error).__name__})") from None
            try:
                check_real(self.path, f"array {name!r}", raw.dtype)
            except BadInput:
                self.close()
                raise
            try:
                return np.asarray(raw, float)
            except Exception as error:   # object arrays, strings, a damaged member
                self.close()
                raise BadInput(f"{self.path}: array {name!r} is not numeric "
                               f"({type(error).__name__})") from None
        self._weights = numeric("weights")
        self._drift = numeric("drift") if "drift" in names else None
        time = numeric("time")
        if self._drift is not None:
            try:
                check_finite(self.path, "array 'drift'", self._drift)
            except BadInput:
                self.close()
                raise
        self._setup_minimal(time, self._weights.shape, None if self._drift is None else self._drift.shape)

    def _open_hdf5(self):
        import h5py

        self._file = _open_checked(self.path)
        f = self._file
        try:
            _check_not_being_written(self.path, f)
            fmt = f.attrs.get("format")
            fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
            if "weights" not in f or "time" not in f:
                what = f"format {fmt!r}" if fmt and fmt != "plasticity-run" else "a file"
                raise BadInput(f"{self.path}: {what} without /time and /weights: not a plasticity run")
            if not isinstance(f["weights"], h5py.Dataset) or f["weights"].ndim != 2:
                raise BadInput(f"{self.path}: /weights is not a (records, weights) array")
            if not isinstance(f["time"], h5py.Dataset) or f["time"].ndim != 1:
                raise BadInput(f"{self.path}: /time is not a 1-D array")
            for name in ("time", "weights", "drift"):
                if name in f and isinstance(f[name], h5py.Dataset):
                    check_real(self.path, f"/{name}", f[name].dtype)
            check_declared(self.path, "/time", f["time"].shape)
            # one record of weights (and of drift) is read at once at least
            check_declared(self.path, "/weights", (1, f["weights"].shape[1]))
            time = f["time"][()].astype(float)
        except BadInput:
            self.close()
            raise
        except Exception as error:
            self.close()
            raise BadInput(f"{self.path}: corrupt ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})") from None
        self._weights = f["weights"]
        self._drift = f["drift"] if "drift" in f else None
        if self._drift is not None and (not isinstance(self._drift, h5py.Dataset) or self._drift.ndim != 2):
            self.close()
            raise BadInput(f"{self.path}: /drift is not a (records, weights) array")
        if fmt == "plasticity-run":
            self.source = "run"
            try:
                self._setup_run(f, time)
            except BadInput:
                self.close()
                raise
            except Exception as error:
                self.close()
                raise BadInput(f"{self.path}: corrupt run file ({type(error).__name__}: "
                               f"{str(error).splitlines()[0] if str(error) else ''})") from None
        else:
            self.source = "hdf5"
            try:
                self._setup_minimal(time, self._weights.shape,
                                    None if self._drift is None else self._drift.shape)
            except BadInput:
                self.close()
                raise

    def _setup_minimal(self, time, wshape, dshape):
        # a trajectory from elsewhere: shapes must agree exactly (only the recorder's
        # own files may be cut short by a killed run)
        wshape, tshape = tuple(wshape), tuple(time.shape)
        if len(tshape) != 1 or len(wshape) != 2:
            raise BadInput(f"{self.path}: time must be (T,) and weights (T, n), got {tshape} and {wshape}")
        if tshape[0] != wshape[0]:
            raise BadInput(f"{self.path}: time has {tshape[0]} records, weights {wshape[0]} "
                           f"(shapes {tshape} and {wshape})")
        if dshape is not None and tuple(dshape) != wshape:
            raise BadInput(f"{self.path}: drift has shape {tuple(dshape)}, weights {wshape}")
        if wshape[1] < 1:
            raise BadInput(f"{self.path}: weights have no columns (shape {wshape})")
        T = wshape[0]
        self.time = time[:T]
        self.n_records = T
        self.n_synapses = int(wshape[1])
        self.pre = np.arange(self.n_synapses)
        self.post = np.zeros(self.n_synapses, dtype=int)
        self.n_pre, self.n_post = self.n_synapses, 1
        self.has_drift = dshape is not None
        self._state = {}
        self._check_time()

    def _setup_run(self, f, time):
        def text(value):
            return value.decode() if isinstance(value, bytes) else str(value)

        self.status = text(f.attrs.get("status", "unknown"))
        self.rule_name = text(f.attrs["rule"]) if "rule" in f.attrs else None
        self.model = text(f.attrs["model"]) if "model" in f.attrs else None
        if "config" in f:
            raw = f["config"][()]
            try:
                self.config = tomllib.loads(text(raw))
            except tomllib.TOMLDecodeError as error:
                raise BadInput(f"{self.path}: /config is not valid TOML ({error})") from None
        rule_section = dict(self.config.get("rule", {}))
        self.rule_name = self.rule_name or rule_section.get("name")
        self.rule_error = None if self.rule_name else "the file names no rule"
        if self.rule_name:
            self.rule = RULES.get(self.rule_name)
            if self.rule is None:
                # e.g. a NumPy dynamics system: analysable with its /drift and given losses
                self.rule_error = f"rule {self.rule_name!r} is not a built-in rule"
        if self.rule is not None:
            values = {k: v for k, v in rule_section.items() if k != "name"}
            try:
                self.params = self.rule.resolve(values)
            except (KeyError, ValueError) as error:
                raise BadInput(f"{self.path}: bad rule parameter in /config: {error}") from None
        if "synapses" not in f or "pre" not in f["synapses"] or "post" not in f["synapses"]:
            raise BadInput(f"{self.path}: lacks /synapses/pre and /synapses/post")
        check_declared(self.path, "/synapses/pre", f["synapses/pre"].shape)
        check_declared(self.path, "/synapses/post", f["synapses/post"].shape)
        self.pre = f["synapses/pre"][()].astype(np.intp)
        self.post = f["synapses/post"][()].astype(np.intp)
        S = self._weights.shape[1]
        if self.pre.shape != (S,) or self.post.shape != (S,):
            raise BadInput(f"{self.path}: /synapses/pre and /post do not match the {S} weights")
        network = self.config.get("network", {})
        self.n_pre = int(network.get("n_pre", (self.pre.max() + 1) if S else 0))
        self.n_post = int(network.get("n_post", (self.post.max() + 1) if S else 0))
        if S and (self.pre.max() >= self.n_pre or self.post.max() >= self.n_post or self.pre.min() < 0
                  or self.post.min() < 0):
            raise BadInput(f"{self.path}: synapse indices exceed n_pre={self.n_pre}, n_post={self.n_post}")
        # the dense weight matrix of a record (n_post × n_pre) is built from these
        check_declared(self.path, "network.n_pre × n_post in /config", (self.n_post, self.n_pre))
        self.n_synapses = S
        self._state = {}
        if "state" in f:
            for name in f["state"]:
                d = f["state"][name]
                if d.ndim != 2 or d.shape[1] != self.n_post:
                    raise BadInput(f"{self.path}: /state/{name} is not (records, n_post={self.n_post})")
                self._state[name] = d
        wanted = tuple(self.rule.state) if self.rule is not None else ()
        self.state_names = tuple(n for n in wanted if n in self._state)
        lengths = [time.shape[0], self._weights.shape[0]]
        lengths += [self._state[n].shape[0] for n in self.state_names]
        if self._drift is not None:
            if self._drift.shape[1:] != self._weights.shape[1:]:
                raise BadInput(f"{self.path}: /drift does not match /weights in shape")
            lengths.append(self._drift.shape[0])
            self.has_drift = True
        T = min(lengths)
        if "records" in f.attrs:
            # what the writer confirmed on disk (a run stopped by a failed write)
            T = min(T, max(0, int(f.attrs["records"])))
        for data in [self._weights, self._drift, *self._state.values()]:
            if data is not None:
                T = min(T, _written_rows(data, T))
        self.time = time[:T]
        self.n_records = T
        self._rates = None
        if self.rule is not None and self.rule.activity == "spiking":
            if "rates" in f and "pre" in f["rates"] and "post" in f["rates"]:
                self._rates = (f["rates/pre"], f["rates/post"])
                self.stats_error = None
                T = min(T, self._rates[0].shape[0], self._rates[1].shape[0])
                self.time = time[:T]
                self.n_records = T
            else:
                self.stats_error = "no /rates/pre and /rates/post"
        if "inputs" in f:
            _check_inputs(self.path, f["inputs"])
        if "inputs" in f and self._rates is None:
            try:
                self.stats = read_input_stats(f["inputs"])
                self.stats_error = None
            except Exception as error:
                self.stats = None
                self.stats_error = f"/inputs unreadable ({type(error).__name__}: {error})"
            if self.stats is not None and self.stats.n != self.n_pre:
                self.stats_error = f"/inputs describe {self.stats.n} inputs, not n_pre={self.n_pre}"
                self.stats = None
            if self.stats is not None:
                # same moments, with W C shared between the drift and the losses
                self.stats = SharedProductStats(self.stats)
        self._check_time()

    def _check_time(self):
        if not np.all(np.isfinite(self.time)):
            raise BadInput(f"{self.path}: /time has non-finite values")
        if self.n_records > 1 and np.any(np.diff(self.time) <= 0):
            raise BadInput(f"{self.path}: /time is not strictly increasing")

    # -- reading -------------------------------------------------------------------
    def layout(self, with_state=True):
        """The :class:`Layout` of the records (weights, then the logged state if
        ``with_state``: all of it, or the state variables it names)."""
        names = self.state_names if with_state is True else tuple(with_state or ())
        return Layout(self.pre, self.post, self.n_pre, self.n_post, names)

    def chunk_size(self, width=None, target_bytes=CHUNK_BYTES):
        """Records per chunk: about ``target_bytes`` of weights, a multiple of the
        HDF5 chunk rows of ``/weights``."""
        width = width or max(1, self.n_synapses)
        rows = max(1, target_bytes // (8 * width))
        chunks = getattr(self._weights, "chunks", None)
        if chunks:
            rows = max(chunks[0], rows - rows % chunks[0])
        return int(rows)

    def chunks(self, size=None, overlap=0):
        """``(start, stop)`` of consecutive chunks covering records ``0 … T−1−overlap``;
        read ``[start, stop + overlap)`` to get the ``overlap`` following records. By
        default a chunk has at least ``overlap`` records, so each record is read about
        twice, not ``overlap + 1`` times (one record of 10⁶ weights is a chunk alone)."""
        size = size or max(self.chunk_size(), overlap)
        last = self.n_records - overlap
        for start in range(0, max(last, 0), size):
            yield start, min(start + size, last)

    def read(self, start=0, stop=None, with_state=True):
        """Flattened records ``[start, stop)``: weights, then the logged state (all of
        it, or the state variables named in ``with_state``)."""
        stop = self.n_records if stop is None else min(stop, self.n_records)
        names = self.state_names if with_state is True else tuple(with_state or ())
        try:
            w = np.asarray(self._weights[start:stop], float)
            if names:
                w = np.concatenate([w] + [np.asarray(self._state[n][start:stop], float)
                                          for n in names], axis=1)
        except Exception as error:
            raise BadInput(f"{self.path}: records {start}..{stop} unreadable "
                           f"({type(error).__name__})") from None
        if not np.all(np.isfinite(w)):
            raise BadInput(f"{self.path}: non-finite weights in records {start}..{stop} "
                           "(a diverged run? analyze the records before it)")
        biggest = float(np.max(np.abs(w))) if w.size else 0.0
        if biggest > MAX_ABS_VALUE:
            # squares and products of such numbers overflow to inf: no verdict from them
            raise BadInput(f"{self.path}: weights too large to analyse (|w| = {biggest:.3g} in "
                           f"records {start}..{stop}; at most {MAX_ABS_VALUE:g})")
        return w

    def weights(self, start=0, stop=None):
        """Weights of records ``[start, stop)``, shape (B, S)."""
        return self.read(start, stop, with_state=False)

    def state(self, name, start=0, stop=None):
        stop = self.n_records if stop is None else min(stop, self.n_records)
        return np.asarray(self._state[name][start:stop], float)

    @property
    def has_stats(self):
        """Whether the expected drift can be computed (input statistics or, for a
        spiking rule, the logged rates)."""
        return self.stats is not None or self._rates is not None

    def stats_for(self, start, stop):
        """Input statistics for records ``[start, stop)``: the logged ``InputStats``
        (the same for every record) or, for spiking rules, the ``SpikeRates`` of those
        records (row 0 of a run is NaN: no interval precedes the first record)."""
        if self._rates is not None:
            return SpikeRates(np.asarray(self._rates[0][start:stop], float),
                              np.asarray(self._rates[1][start:stop], float))
        return self.stats

    def rates_for(self, start, stop, window=0):
        """The logged firing rates matching records ``[start, stop)``: row ``k`` as
        logged (``window = 0``), or the mean of rows ``k+1 … k+window``, the record
        intervals covered by the weight difference ``w_{k+window} − w_k``."""
        if self._rates is None:
            raise BadInput(f"{self.path}: {self.stats_error or 'no /rates/pre and /rates/post'}")
        if not window:
            return self.stats_for(start, stop)
        h = int(window)
        out = []
        for d in self._rates:
            rows = np.asarray(d[start + 1:stop + h], float)          # rows start+1 … stop+h−1
            c = np.concatenate([np.zeros((1,) + rows.shape[1:]), np.cumsum(rows, axis=0)])
            out.append((c[h:] - c[:-h]) / h)
        return SpikeRates(out[0], out[1])

    @property
    def record_interval(self):
        """Median time between records (seconds), or None."""
        return float(np.median(np.diff(self.time))) if self.n_records > 1 else None

    @property
    def is_dynamics(self):
        """A ``kind = "dynamics"`` run (a NumPy system of :mod:`plasticity.systems`):
        ``/drift`` is the system's exact drift and its losses come from the system."""
        return self.model == "dynamics"

    def read_drift(self, start=0, stop=None):
        stop = self.n_records if stop is None else min(stop, self.n_records)
        drift = np.asarray(self._drift[start:stop], float)
        check_finite(self.path, "/drift", drift, start)
        return drift

    def close(self):
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None
        if self._npz is not None:
            self._npz.close()
            self._npz = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (f"Run({str(self.path)!r}, source={self.source!r}, rule={self.rule_name!r}, "
                f"status={self.status!r}, records={self.n_records}, weights={self.n_synapses})")


def _written_rows(data, rows):
    """How many of the first ``rows`` rows of a chunked dataset lie in chunks that were
    written: a chunk lost to a failed write reads back as zeros (the fill value), so
    the records stop before the first missing chunk."""
    chunks = data.chunks
    if not chunks or rows == 0:
        return rows
    step = chunks[0]
    per_row = 1
    for size, chunk in zip(data.shape[1:], chunks[1:]):
        per_row *= -(-size // chunk)
    try:
        if data.id.get_num_chunks() >= per_row * -(-rows // step):
            return rows
        for start in range(0, rows, step):
            if data.id.get_chunk_info_by_coord((start,) + (0,) * (data.ndim - 1)).byte_offset is None:
                return start
    except (AttributeError, ValueError, RuntimeError, KeyError):
        pass
    return rows


def _open_checked(path):
    """An untrusted HDF5 file opened read-only, its objects checked
    (:func:`~plasticity.io.trust.check_hdf5_objects`); :class:`BadInput` otherwise."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except Exception as error:
        raise BadInput(f"{path}: {_open_problem(error)}") from None
    try:
        check_hdf5_objects(path, f)
    except BaseException:
        f.close()
        raise
    return f


def _open_problem(error):
    """Why HDF5 could not open a file, in words: not HDF5, locked, not permitted, or
    damaged."""
    text = str(error)
    if "signature" in text:
        return "not an HDF5 file"
    if "lock" in text:
        return ("locked by another process (a run still being written?); analyze it when "
                "the run has ended")
    if getattr(error, "errno", None) == 13 or "Permission denied" in text or "errno = 13" in text:
        return "permission denied"
    return "cannot be opened (corrupt or truncated?)"


def _writer_alive(f):
    """Whether the process that wrote a ``running`` file still runs on this host
    (None when the file does not say, or it was written on another host)."""
    import os
    import socket

    host = f.attrs.get("writer_host")
    pid = f.attrs.get("writer_pid")
    if host is None or pid is None:
        return None
    host = host.decode() if isinstance(host, bytes) else str(host)
    if host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True if not isinstance(pid, str) else None
    return True


def _check_not_being_written(path, f):
    """A run whose writer still runs is refused: its file changes under the reader."""
    status = f.attrs.get("status")
    status = status.decode() if isinstance(status, bytes) else status
    if status == "running" and _writer_alive(f):
        raise BadInput(f"{path}: still being written (its run, process {int(f.attrs['writer_pid'])}, "
                       "is running); analyze it when the run has ended")


def _check_inputs(path, group):
    """Every number of ``/inputs`` finite and of a size the reader may load."""
    import h5py

    for name, data in group.items():
        if isinstance(data, h5py.Dataset) and data.dtype.kind in "fiuc":
            check_real(path, f"/inputs/{name}", data.dtype)
            check_declared(path, f"/inputs/{name}", data.shape, data.dtype.itemsize)
            check_finite(path, f"/inputs/{name}", data[()])


def _is_zip(path):
    """Whether the file starts like a zip archive (an .npz under another name)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def open_run(path):
    """Open a run file or a minimal trajectory file; :class:`BadInput` on any problem."""
    return Run(path)


def write_analysis(path, certificates, doc=None, arrays=None):
    """Store certificates in ``/analysis/<loss>/`` of an HDF5 file (the layout:
    :func:`plasticity.io.codecs.write_certificate`), leaving the rest of the file as it
    is. Returns False (nothing written) for ``.npz`` inputs and for a file whose status
    is still ``running`` (only its run writes it).

    The group is replaced as a whole: afterwards it holds exactly these certificates
    (the groups of other losses are deleted). While it is written its attribute
    ``complete`` is False, and readers (:func:`read_analysis`) take such a group for no
    analysis at all, so nobody sees a mix of two analyses. Rewrites do not grow the
    file: arrays of an unchanged shape are overwritten where they are, and text
    attributes are written only when they change (HDF5 does not reuse the space of
    replaced text attributes once the file was closed).

    ``arrays`` adds per-loss datasets beside each certificate's own:
    ``{loss name: {dataset name: array}}`` (e.g. the sample-path windows).
    """
    import h5py

    path = Path(path)
    if path.suffix == ".npz" or _is_zip(path):
        return False
    # the new analysis is built in memory first, then copied over the old one
    scratch = h5py.File(f"analysis-{id(certificates)}", "w", driver="core", backing_store=False)
    try:
        new = scratch.create_group("analysis")
        for cert in certificates:
            name = group_name(cert.loss_name)
            if name in new:
                del new[name]
            write_certificate(new.create_group(name), cert)
        for loss, extra in (arrays or {}).items():
            target = new.require_group(group_name(loss))
            for key, values in extra.items():
                target.create_dataset(key, data=np.asarray(values))
        if doc is not None:
            new.attrs["document"] = json.dumps(doc)
        with h5py.File(path, "r+") as f:
            status = f.attrs.get("status")
            status = status.decode() if isinstance(status, bytes) else status
            if status == "running":
                return False
            if "analysis" in f and not isinstance(f["analysis"], h5py.Group):
                del f["analysis"]
            root = f.require_group("analysis")
            root.attrs["complete"] = False
            f.flush()
            _sync_group(new, root)
            root.attrs["complete"] = True
            f.flush()
    except OSError as error:
        raise BadInput(f"{path}: cannot write /analysis ({_open_problem(error)}: "
                       f"{str(error).splitlines()[0][:200]})") from None
    finally:
        scratch.close()
    return True


def _sync_group(source, target):
    """Make ``target`` hold what ``source`` holds (groups, datasets, attributes),
    reusing the space of what is already there."""
    import h5py

    for name in list(target):
        if name not in source:
            del target[name]
    for name, item in source.items():
        if isinstance(item, h5py.Group):
            if name in target and not isinstance(target[name], h5py.Group):
                del target[name]
            _sync_group(item, target.require_group(name))
            continue
        data = item[()]
        old = target.get(name)
        if (isinstance(old, h5py.Dataset) and old.shape == item.shape and old.dtype == item.dtype
                and old.chunks is None):
            old[...] = data
        else:
            if old is not None:
                del target[name]
            target.create_dataset(name, data=data)
    keep = set(source.attrs) | {"complete"}
    for key in list(target.attrs):
        if key not in keep:
            del target.attrs[key]
    for key, value in source.attrs.items():
        if key in target.attrs and _same(target.attrs[key], value):
            continue
        target.attrs[key] = value


def _same(a, b):
    try:
        return type(a) is type(b) and bool(np.all(np.asarray(a) == np.asarray(b)))
    except Exception:  # noqa: BLE001 - incomparable: not the same
        return False


def read_analysis(path, keys=("time", "psi_deg", "kappa_min", "loss", "constant_metric",
                              "descent", "moving")):
    """The stored certificates of a file, ``{loss: {key: array, "verdict": str}}``;
    empty when there is none (or the last write did not complete). :class:`BadInput`
    for a file that is not a readable HDF5 file or whose ``/analysis`` is not a group
    of certificate groups."""
    import h5py

    path = Path(path)
    check_regular_file(path)
    out = {}
    if path.suffix == ".npz" or _is_zip(path):
        return out
    with _open_checked(path) as f:
        if "analysis" not in f:
            return out
        group = f["analysis"]
        if not isinstance(group, h5py.Group):
            raise BadInput(f"{path}: /analysis is not a group (a damaged or foreign file); "
                           "delete it and analyze again")
        if not group.attrs.get("complete", True):
            return out
        for name, g in group.items():
            if not isinstance(g, h5py.Group):
                raise BadInput(f"{path}: /analysis/{name} is not a certificate group")
            entry = {}
            for key in keys:
                if key in g:
                    data = g[key]
                    if not isinstance(data, h5py.Dataset) or data.dtype.kind not in "fiub":
                        raise BadInput(f"{path}: /analysis/{name}/{key} is not numeric")
                    check_declared(path, f"/analysis/{name}/{key}", data.shape, data.dtype.itemsize)
                    entry[key] = data[()]
            verdict = g.attrs.get("verdict", "")
            entry["verdict"] = verdict.decode() if isinstance(verdict, bytes) else str(verdict)
            out[name] = entry
    return out


# ----------------------------------------------------------------------------------
# What reports, sweeps and the command line read besides the records

def _decode(value):
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray):
        return [_decode(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_extras(path, max_spikes=2_000_000, max_array=50_000_000):
    """What a report shows besides the records, from an HDF5 run file: ``attrs`` (the
    root attributes, decoded), ``model_spec`` (dict or None), ``spikes``
    (``{population: (t, i)}``, at most ``max_spikes`` each) with ``spikes_total``
    (``{population: count}``), ``analysis_doc`` (the stored JSON document or None) and
    ``analysis`` (``{loss: {dataset: array, "attrs": dict}}``, datasets of at most
    ``max_array`` numbers)."""
    import h5py

    path = Path(path)
    check_regular_file(path)
    out = {"attrs": {}, "model_spec": None, "spikes": {}, "spikes_total": {},
           "analysis_doc": None, "analysis": {}}
    with _open_checked(path) as f:
        out["attrs"] = {k: _decode(v) for k, v in f.attrs.items()}
        if "model_spec" in f and isinstance(f["model_spec"], h5py.Dataset):
            try:
                out["model_spec"] = tomllib.loads(_decode(f["model_spec"][()]))
            except (ValueError, TypeError, AttributeError):
                pass
        if "spikes" in f and isinstance(f["spikes"], h5py.Group):
            for population, g in f["spikes"].items():
                if isinstance(g, h5py.Group) and "t" in g and "i" in g:
                    n = min(g["t"].shape[0], g["i"].shape[0])
                    m = min(n, max_spikes)
                    out["spikes"][population] = (np.asarray(g["t"][:m], float),
                                                 np.asarray(g["i"][:m], int))
                    out["spikes_total"][population] = n
        if "analysis" in f and not isinstance(f["analysis"], h5py.Group):
            raise BadInput(f"{path}: /analysis is not a group (a damaged or foreign file); "
                           "delete it and analyze again")
        if "analysis" in f and f["analysis"].attrs.get("complete", True):
            root = f["analysis"]
            document = root.attrs.get("document")
            if document is not None:
                try:
                    out["analysis_doc"] = json.loads(_decode(document))
                except ValueError:
                    pass
            for loss, g in root.items():
                if not isinstance(g, h5py.Group):
                    continue
                arrays = {k: np.asarray(g[k][()]) for k in g
                          if isinstance(g[k], h5py.Dataset) and g[k].size < max_array}
                arrays["attrs"] = {k: _decode(v) for k, v in g.attrs.items()}
                out["analysis"][loss] = arrays
    return out


def read_summary(path):
    """``{"status", "device", "records", "last_time"}`` of a run file (None where
    unknown), for one-line summaries; never raises."""
    import h5py

    out = {"status": None, "device": None, "records": None, "last_time": None}
    try:
        with h5py.File(path, "r") as f:
            out["status"] = _decode(f.attrs.get("status"))
            out["device"] = _decode(f.attrs.get("device"))
            if "time" in f and isinstance(f["time"], h5py.Dataset):
                out["records"] = int(f["time"].shape[0])
                if out["records"]:
                    out["last_time"] = float(f["time"][-1])
    except (OSError, KeyError, ValueError):
        pass
    return out


def read_input_arrays(path):
    """Every dataset (``name``) and attribute (``@name``) of a run file's ``/inputs``,
    to compare the inputs of several runs; empty without ``/inputs``."""
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        if "inputs" not in f or not isinstance(f["inputs"], h5py.Group):
            return out
        f["inputs"].visititems(lambda name, obj: out.__setitem__(name, obj[()])
                               if isinstance(obj, h5py.Dataset) else None)
        out.update({f"@{k}": v for k, v in f["inputs"].attrs.items()})
    return out
