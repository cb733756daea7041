"""The codecs of the run file's groups: ``/inputs`` (input statistics) and
``/analysis`` (certificates). Writers and readers of each group sit together here, so
the layout of a group is defined in one place."""

import json

import numpy as np

from ..inputs import InputStats

#: a diagonal covariance above this many inputs is written as its diagonal blocks only
DIAGONAL_BLOCK = 512
#: side of those blocks (HDF5 chunks): smaller blocks are less to compress (n × 128
#: values instead of n × 512: 0.035 s instead of 0.09 s for 10⁴ inputs) and a dense read
#: of the whole matrix is no slower
DIAGONAL_CHUNK = 128


# ----------------------------------------------------------------------------------
# /inputs

def write_input_stats(group, stats):
    """``/inputs`` of a rate run: attrs ``kind`` (gaussian | patterns), ``transfer``;
    datasets ``mean``, ``covariance`` (and ``variances`` when diagonal), ``patterns``
    and ``probabilities``."""
    group.attrs["kind"] = stats.kind
    group.attrs["transfer"] = stats.transfer
    group["mean"] = stats.mean
    n = stats.n
    if stats.diagonal:
        group["variances"] = stats.variances
    if stats.diagonal and n > DIAGONAL_BLOCK:
        # a large diagonal covariance: chunked, only the diagonal blocks written (the
        # other chunks read back as the fill value 0), so neither time nor file size
        # goes as n²; readers see the same dense dataset
        block = DIAGONAL_CHUNK
        data = group.create_dataset("covariance", shape=(n, n), dtype="f8", fillvalue=0.0,
                                    chunks=(block, block), compression="gzip", compression_opts=1)
        for start in range(0, n, block):
            stop = min(n, start + block)
            data[start:stop, start:stop] = np.diag(stats.variances[start:stop])
    else:
        group["covariance"] = stats.covariance
    if stats.patterns is not None:
        group["patterns"] = stats.patterns
        group["probabilities"] = stats.probabilities


def write_poisson_inputs(group, rates, modulation=None, gain=None, interval=None, modulation_kind=None):
    """``/inputs`` of a spiking run: ``kind = "poisson"`` and the configured Poisson
    ``rates`` (Hz) of the presynaptic side (for a recurrent network: the external drive
    per neuron). No moments: the rate-model moments do not describe spike trains.

    With modulated rates, ``rate_i(t) = max(0, rates_i + gain·x_i(t))``: the group is the
    modulation's input statistics (as in a rate run, so :func:`read_input_stats` reads
    it) plus ``rates`` and the attrs ``poisson = True``, ``modulation``, ``gain`` (Hz),
    ``interval`` (s), ``baseline`` (Hz, when one rate for all) and ``rate`` (the
    formula)."""
    rates = np.asarray(rates, float)
    if modulation is None:
        group.attrs["kind"] = "poisson"
        group.attrs["transfer"] = "spiking"
    else:
        write_input_stats(group, modulation)
        group.attrs["poisson"] = True
        group.attrs["modulation"] = modulation_kind
        group.attrs["gain"] = float(gain)
        group.attrs["interval"] = float(interval)
        if np.ptp(rates) == 0:
            group.attrs["baseline"] = float(rates[0])
        group.attrs["rate"] = ("rate_i(t) = max(0, rates_i + gain * x_i(t)) Hz, x drawn "
                               "from these statistics every interval and held")
    group["rates"] = rates
    group["rates"].attrs["unit"] = "Hz"


def read_input_stats(group):
    """The :class:`~plasticity.inputs.InputStats` of an ``/inputs`` group (rate runs,
    or the modulation of Poisson inputs); ValueError for Poisson inputs without one."""
    kind = _text(group.attrs["kind"])
    transfer_name = _text(group.attrs.get("transfer", "linear"))
    if kind == "patterns":
        return InputStats.from_patterns(group["patterns"][()], group["probabilities"][()], transfer_name)
    if kind != "gaussian":
        raise ValueError(f"inputs of kind {kind!r} have no rate statistics")
    if "variances" in group:   # diagonal: never read the n×n dataset
        return InputStats("gaussian", group["mean"][()], transfer=transfer_name,
                          variances=group["variances"][()])
    return InputStats("gaussian", group["mean"][()], group["covariance"][()], transfer_name)


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


# ----------------------------------------------------------------------------------
# /analysis

def group_name(loss_name):
    """The ``/analysis`` subgroup of a loss."""
    return str(loss_name).replace("/", "_") or "loss"


def write_certificate(group, cert):
    """One certificate in ``/analysis/<loss>/``: the per-record arrays ``time``, ``psi``
    (radians), ``psi_deg``, ``kappa_min``, ``alpha``, ``descent``, ``moving``, ``loss``;
    the fitted ``constant_metric`` (n × n) when there is one; attributes with the
    summary (``summary``: the JSON entry; ``verdict``, ``descent_fraction``, ``drift``,
    ``records``)."""
    for key in ("time", "psi", "kappa_min", "alpha", "loss"):
        group.create_dataset(key, data=np.asarray(getattr(cert, key), float))
    group.create_dataset("psi_deg", data=cert.psi_deg)
    group.create_dataset("descent", data=cert.descent.astype(np.int8))
    group.create_dataset("moving", data=cert.moving.astype(np.int8))
    if cert.constant_metric is not None:
        group.create_dataset("constant_metric", data=cert.constant_metric)
    summary = cert.summary()
    group.attrs["summary"] = json.dumps(summary)
    group.attrs["verdict"] = summary["verdict"]
    group.attrs["drift"] = summary["drift"]
    group.attrs["records"] = summary["records"]
    dfrac = summary["descent_fraction"]
    group.attrs["descent_fraction"] = np.nan if dfrac is None else dfrac
