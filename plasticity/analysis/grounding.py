"""Verdicts grounded in what the simulation did: the streaming passes that
:func:`~plasticity.analysis.pipeline.certify_run` runs beside the certificate.

- :class:`ConsistencyPass`: do the logged increments follow the rule's expected drift?
  (:mod:`.consistency`; rate rules certified with the ``expected`` drift);
- :class:`SamplePathPass`: window by window, is the loss resolved to go down (or up)
  above the noise? (:mod:`.sample_path`; every loss).

:func:`attach_sample_path` puts the results into the certificates: ``basis`` (what the
verdict is about: ``expectation``, ``sample-path`` or ``ensemble``), ``sample_path``
(the summary), and, for the ``window`` drift, the rule that ``not-descent`` needs a
window whose ascent is significant: without one, a pointwise ``not-descent`` is
``undecided`` (noise, not a contradiction).
"""

from .consistency import ConsistencyTest
from .drift import expected_drift, slaved_state
from .losses import RateLoss
from .sample_path import MIN_WINDOW, SamplePath, sample_path_window

__all__ = ["ConsistencyPass", "SamplePathPass", "attach_sample_path", "BASIS", "BASIS_TEXT"]

#: the basis of a verdict, by drift kind
BASIS = {"expected": "expectation", "given": "expectation", "window": "sample-path",
         "ensemble": "ensemble"}
#: how the table says it
BASIS_TEXT = {"expectation": "in expectation", "sample-path": "along the path",
              "ensemble": "over {n} seeds"}


class ConsistencyPass:
    """Collects the residuals of the increments against the expected drift.

    The drift is the one the simulation steps with: where the certificate sets a fast
    state variable to its fixed point (BCM's θ, adiabatic limit), the test evaluates
    the rule's drift at the *logged* state instead, since that is the θ the simulated
    weights moved with (the adiabatic drift is the certificate's idealisation)."""

    def __init__(self, run):
        self.run = run
        self.test = None
        self._offset = 0
        self._logged = ()

    def start(self, kind, h):
        run = self.run
        rule = run.rule
        # the expected drift of a rule at the logged input statistics (rate rules) or at
        # the rates logged over each record interval (spiking rules, rate-limit drift);
        # a dynamics run's /drift is exact and its trajectory deterministic: no test
        if kind == "expected" and rule is not None:
            self.test = ConsistencyTest(run.n_synapses, run.n_records)
            self._logged = tuple(run.state_names)
            self._slaved = bool(slaved_state(rule, run.params, run.record_interval))

    def feed(self, time, weights, drift, losses):
        if self.test is None or drift is None:
            return
        start = self._offset
        self._offset += len(time)
        if self._slaved and self._logged:
            run = self.run
            S = run.n_synapses
            w = run.read(start, start + len(time), with_state=self._logged)
            drift = expected_drift(run.rule, run.params, run.stats_for(start, start + len(time)),
                                   run.layout(with_state=self._logged), w, include_state=False)[:, :S]
        self.test.add(time, weights, drift)

    def result(self):
        if self.test is None:
            return None
        out = self.test.finish()
        if out is not None and self._logged:
            out["state"] = "logged" if self._slaved else "logged (as in the certificate)"
        return out


class SamplePathPass:
    """Window-by-window loss changes for each loss (rate losses are left out: they are
    bound to one chunk's rates record by record)."""

    def __init__(self, run, losses, window=None):
        self.run = run
        self.losses = list(losses)
        self.window = window
        self.path = None
        self.h = None

    def start(self, kind, h):
        window = self.window
        if kind == "window":
            window = max(h, MIN_WINDOW)
        self.h = sample_path_window(self.run.n_records, window)
        usable = [loss for loss in self.losses if not isinstance(loss, RateLoss)]
        if self.h is not None and usable:
            self._usable = [i for i, loss in enumerate(self.losses) if not isinstance(loss, RateLoss)]
            run = self.run
            self.path = SamplePath([self.losses[i] for i in self._usable], self.h,
                                   end=lambda k: (run.time[k], run.weights(k, k + 1)[0]),
                                   n_records=run.n_records)

    def feed(self, time, weights, drift, losses):
        if self.path is not None:
            self.path.add(time, weights, [losses[i] for i in self._usable])

    def results(self):
        """One per loss: the :func:`~plasticity.analysis.sample_path.classify` dict, or None."""
        out = [None] * len(self.losses)
        if self.path is not None:
            for i, result in zip(self._usable, self.path.finish()):
                out[i] = result
        return out


def attach_sample_path(certs, results):
    """Add ``basis`` and ``sample_path`` to each certificate; apply the ``not-descent``
    rule of the window drift (see the module doc). Returns ``{loss name: arrays}``."""
    arrays = {}
    for cert, result in zip(certs, results):
        cert.extra["basis"] = BASIS.get(cert.drift_kind, "expectation")
        cert.extra["sample_path"] = None if result is None else result["summary"]
        if result is None:
            continue
        arrays[cert.loss_name] = result
        if (cert.drift_kind == "window" and cert.verdict == "not-descent"
                and result["summary"]["ascent_significant"] == 0):
            cert.extra["pointwise_verdict"] = cert.verdict
            cert.verdict = "undecided"
    return arrays
