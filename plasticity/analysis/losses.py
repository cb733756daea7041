"""Losses: value and gradient, batched over records (docs/math.md §8).

A :class:`Loss` maps the flattened plastic vectors of ``T`` records, an array ``(T, n)``,
to ``(values (T,), gradients (T, n))``. The built-in losses of the rules are written on
the dense weights ``W`` (B, n_post, n_pre) with the input moments of
:class:`plasticity.inputs.InputStats` (``moment(W, k) = E[σ(y)^k]``,
``cross(W, k) = E[x σ(y)^k]``) and summed over postsynaptic neurons:

=================  ==========================================  ==============================
name               L(W)                                        ∇L
=================  ==========================================  ==============================
variance           −½ E[σ(y)²]  (Hebbian)                      −E[x σ(y)]  (σσ' = σ for relu)
variance           −½ Var σ(y)  (covariance rule, linear σ)    −(E[xσ] − E[σ] E[x σ'])
input_variance     −½ wᵀCw  (covariance rule, relu, Gaussian)  −Cw
rayleigh           −½ wᵀRw / wᵀw,  R = E[xxᵀ] = C + μμᵀ        −(Rw − ρw)/‖w‖², ρ = wᵀRw/wᵀw
norm               (‖w‖² − 1)²                                 4(‖w‖² − 1) w
intrator_cooper    −(⅓E[σ³] − ¼E[σ²]²)                         −(E[xσ²] − E[σ²] E[xσ])
triplet_bcm        Σ g·w, g = −r_x y (a y − b) (y: measured)   g  (triplet STDP, in rates)
quadratic          ½ (w − w*)ᵀ H (w − w*)                      H (w − w*)
=================  ==========================================  ==============================

With these signs each rule's drift is ``−η ∇L`` or descends ``L`` (docs/math.md §8),
but only for the models and inputs listed in :data:`PAIRINGS` (:func:`rule_losses`
offers a candidate only where it holds; docs/analysis.md, "Where each candidate loss
holds"):

- Hebbian, ``variance``: ``f = η E[xσ] = −η ∇L`` exactly for linear and relu
  neurons (``σσ' = σ``);
- fast-threshold BCM, ``intrator_cooper``: exactly, linear and relu;
- covariance rule, ``variance``: exactly for linear neurons (``f = η C w``). For relu
  neurons ``f = η Cov(x, σ(y))`` is *not* the gradient of ``−½ Var σ(y)`` (it ascends
  it at some ``w``); with Gaussian inputs Stein's lemma gives
  ``f = η P(y > 0) C w``, natural gradient (scalar metric ``η P(y > 0)``) of
  ``input_variance`` ``= −½ wᵀCw``; with other inputs no candidate is offered;
- Oja, ``rayleigh``: descended for linear neurons (``f·∇L = −η(‖Rw‖² − (wᵀRw)²/‖w‖²)/‖w‖² ≤ 0``,
  Cauchy–Schwarz), but *not strictly* on the rays through eigenvectors of ``R``
  (there ``∇L = 0`` while ``f = η λ(1 − ‖w‖²) w ≠ 0`` off the unit sphere); ``norm``
  is descended for linear and relu neurons (``f·∇L = −4η E[σ²](‖w‖² − 1)² ≤ 0``) but
  not strictly on the unit sphere. Their sum ``rayleigh + c·norm`` (any ``c > 0``) is
  strictly descended at every point that is not a fixed point (linear neurons): the
  pipeline's ``combined`` loss finds such a ``c``. For relu neurons Oja's drift
  ascends ``rayleigh`` at some ``w``: only ``norm`` is offered.

The gradient with respect to the plastic state variables (e.g. BCM's θ) is zero:
these losses depend on the weights.

Users pass their own loss as ``path/to/module.py:name`` (:func:`load_user_loss`):
``name`` is a function ``(T, n) -> (values (T,), gradients (T, n))`` or a
:class:`Loss`.

Reference: Shoji, Suzuki & Kozachkov, arXiv:2409.16422; Intrator & Cooper (1992).
"""

import importlib.util
from pathlib import Path

import numpy as np
from scipy.special import ndtr

from ..errors import BadInput

__all__ = ["Loss", "RateLoss", "quadratic_loss", "rule_losses", "make_loss", "load_user_loss",
           "resolve_loss", "LOSSES", "RATE_LOSSES", "mean_value_gradient", "PAIRINGS",
           "pairing_holds"]


class Loss:
    """A loss ``L(w)`` evaluated on many records at once.

    Parameters
    ----------
    name : str
    function : callable
        ``function(w)`` with ``w`` of shape (T, n) returns ``(values (T,), grads (T, n))``.
    description : str, optional
    """

    def __init__(self, name, function, description=""):
        self.name = str(name)
        self.function = function
        self.description = description

    def value_and_grad(self, w):
        """``(values, gradients)`` of shapes (T,) and (T, n) for ``w`` of shape (T, n)
        (a single vector (n,) gives a scalar and an (n,) gradient)."""
        w = np.asarray(w, float)
        single = w.ndim == 1
        if single:
            w = w[None, :]
        out = self.function(w)
        if not isinstance(out, tuple) or len(out) != 2:
            got = type(out).__name__ + (f" of {len(out)}" if isinstance(out, (tuple, list)) else "")
            raise BadInput(f"loss {self.name!r} must return (values, gradients), got {got}")
        values, grads = (np.asarray(part) for part in out)
        for what, part in (("values", values), ("gradients", grads)):
            if part.dtype.kind not in "fiu":
                raise BadInput(f"loss {self.name!r} returned {what} of type {part.dtype}, not real "
                               "numbers")
        values = values.astype(float)
        grads = grads.astype(float)
        if values.shape != (w.shape[0],) or grads.shape != w.shape:
            raise BadInput(f"loss {self.name!r} returned shapes {values.shape} and {grads.shape} "
                           f"for weights of shape {w.shape}; expected ({w.shape[0]},) and {w.shape}")

        if single:
            return float(values[0]), grads[0]
        return values, grads

    def value(self, w):
        return self.value_and_grad(w)[0]

    def grad(self, w):
        return self.value_and_grad(w)[1]

    def __repr__(self):
        return f"Loss({self.name!r})"


# -- the mean-value gradient (docs/math.md §4) -----------------------------------------
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(4)


def mean_value_gradient(loss, w0, w1):
    """``ḡ = ∫₀¹ ∇L(w0 + s(w1 − w0)) ds`` for each row (4-point Gauss–Legendre: exact
    when ∇L is a polynomial of degree ≤ 7 along the segment), so that
    ``ḡ·(w1 − w0) = L(w1) − L(w0)`` (docs/math.md §4).

    Returns ``(ḡ (T, n), L(w0) (T,), L(w1) (T,))``.
    """
    w0 = np.asarray(w0, float)
    d = np.asarray(w1, float) - w0
    gbar = np.zeros_like(w0)
    for node, weight in zip(_GL_NODES, _GL_WEIGHTS):
        s = 0.5 * (node + 1.0)
        gbar += 0.5 * weight * loss.value_and_grad(w0 + s * d)[1]
    v0 = loss.value_and_grad(w0)[0]
    v1 = loss.value_and_grad(w0 + d)[0]
    return gbar, v0, v1


# -- built-in losses on dense weights ----------------------------------------------
def _cross_indicator(stats, W):
    """``E[x σ'(y)]``: the mean for linear σ; ``E[x 1{y > 0}]`` for relu."""
    if stats.transfer == "linear":
        return np.broadcast_to(stats.mean, W.shape)
    if stats.kind == "patterns":
        Y = np.einsum("...ji,ki->...kj", W, stats.patterns) > 0
        return np.einsum("k,...kj,ki->...ji", stats.probabilities, Y.astype(float), stats.patterns)
    # Gaussian, Stein's lemma: E[x 1{y>0}] = μ P(y>0) + C w p_y(0)
    m = W @ stats.mean
    WC = stats.product(W)   # memoised per chunk by SharedProductStats
    s = np.sqrt(np.clip(np.sum(WC * W, -1), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(s > 0, m / np.where(s > 0, s, 1.0), np.where(m > 0, np.inf, -np.inf))
        density = np.where(s > 0, np.exp(-0.5 * np.where(s > 0, z, 0) ** 2)
                           / (np.sqrt(2 * np.pi) * np.where(s > 0, s, 1.0)), 0.0)
    return ndtr(z)[..., None] * stats.mean + density[..., None] * WC


def _variance_hebbian(stats):
    def dense(W):
        return -0.5 * stats.moment(W, 2).sum(-1), -stats.cross(W, 1)
    return dense, "−½ E[σ(y)²], summed over postsynaptic neurons"


def _variance_centred(stats):
    def dense(W):
        m1 = stats.moment(W, 1)
        value = -0.5 * (stats.moment(W, 2) - m1 ** 2).sum(-1)
        grad = -(stats.cross(W, 1) - m1[..., None] * _cross_indicator(stats, W))
        return value, grad
    return dense, "−½ Var σ(y), summed over postsynaptic neurons"


def _rayleigh(stats):
    mean = np.asarray(stats.mean, float)
    centred = not np.any(mean)

    def dense(W):
        # R W = C W + μ (μ·w): one shared BLAS product (see inputs.SharedProductStats)
        RW = stats.product(W)
        if not centred:
            RW = RW + (W @ mean)[..., None] * mean
        wRw = np.sum(RW * W, -1)
        ww = np.sum(W * W, -1)
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = wRw / ww
            grad = -(RW - rho[..., None] * W) / ww[..., None]
        return -0.5 * rho.sum(-1), grad
    return dense, "−½ wᵀRw / wᵀw per postsynaptic neuron (R = E[xxᵀ]), summed"


def _norm(stats):
    def dense(W):
        excess = np.sum(W * W, -1) - 1.0
        return (excess ** 2).sum(-1), 4.0 * excess[..., None] * W
    return dense, "(‖w‖² − 1)² per postsynaptic neuron, summed"


def _intrator_cooper(stats):
    from ..rules.bcm import intrator_cooper

    def dense(W):
        return intrator_cooper(W, stats)
    return dense, "−(⅓E[σ(y)³] − ¼E[σ(y)²]²), summed over postsynaptic neurons"


def _input_variance(stats):
    def dense(W):
        CW = stats.product(W)
        return -0.5 * np.sum(CW * W, -1).sum(-1), -CW
    return dense, "−½ wᵀCw (variance of the summed input) per postsynaptic neuron, summed"


def _norm_per_synapse(layout):
    """``norm`` on a sparse layout: the squared norms of each neuron's incoming weights
    summed per postsynaptic neuron (a sparse n_post × S sum), no dense ``W``."""
    from scipy.sparse import csr_matrix

    S = layout.n_synapses
    onto = csr_matrix((np.ones(S), (layout.post, np.arange(S))), shape=(layout.n_post, S))

    def function(w):
        w = np.asarray(w, float)[:, :S]
        excess = (onto @ (w * w).T).T - 1.0              # (B, n_post)
        grad = np.zeros((w.shape[0], layout.size))
        grad[:, :S] = 4.0 * excess[:, layout.post] * w
        return (excess ** 2).sum(-1), grad
    return function


#: built-in losses on dense weights: name -> builder(stats) -> (dense function, description)
LOSSES = {
    "input_variance": _input_variance,
    "variance": _variance_hebbian,
    "rayleigh": _rayleigh,
    "norm": _norm,
    "intrator_cooper": _intrator_cooper,
}
#: rule-specific variants: (rule, name) -> builder
RULE_VARIANTS = {("covariance", "variance"): _variance_centred}
#: losses that need no input statistics
_NO_STATS = {"norm"}


def make_loss(name, stats, layout, rule_name=None, params=None):
    """The built-in loss ``name`` on the flattened records of ``layout``.

    Parameters
    ----------
    name : str
        One of :data:`LOSSES`.
    stats : InputStats or None
        Input statistics (needed by all but ``norm``).
    layout : Layout
    rule_name : str, optional
        Picks a rule-specific variant (``covariance`` → centred variance).
    params : dict, optional
        The rule's parameters in SI: needed by the spiking rules' rate losses
        (:data:`RATE_LOSSES`, e.g. ``triplet_bcm``), which are returned as
        :class:`RateLoss` (``stats`` unused: they read the logged rates).

    Raises
    ------
    BadInput
        Unknown name, or statistics needed but missing.
    """
    if name in RATE_LOSSES:
        if params is None:
            from ..rules import RULES
            owner = [r for r in RULES.values() if name in r.losses]
            if not owner:
                raise BadInput(f"loss {name!r} needs the parameters of its rule")
            params = owner[0].resolve({})
        return RATE_LOSSES[name](params, layout)
    builder = RULE_VARIANTS.get((rule_name, name)) or LOSSES.get(name)
    if builder is None:
        raise BadInput(f"unknown loss {name!r} (built-in: {', '.join(sorted(LOSSES) + sorted(RATE_LOSSES))}; "
                       "or path/to/module.py:name)")
    if stats is None and name not in _NO_STATS:
        raise BadInput(f"loss {name!r} needs the input statistics (/inputs), which the run lacks")
    dense, description = builder(stats)
    if name == "norm" and not layout.full:
        return Loss(name, _norm_per_synapse(layout), description)

    def function(w):
        W, _ = layout.dense(w)
        values, dW = dense(W)
        return values, layout.flat(dW)
    return Loss(name, function, description)


def rule_losses(rule_name, stats, layout, params=None):
    """The candidate losses of a rule (its module's ``losses`` tuple) as :class:`Loss`
    objects. The rate rules' parameters do not enter their losses (η only scales the
    drift); the spiking rules' rate losses (:data:`RATE_LOSSES`) need ``params`` and
    are :class:`RateLoss` objects, bound to each chunk's logged rates by the pipeline."""
    from ..rules import get_rule
    rule = get_rule(rule_name)
    for name in rule.losses:
        if (rule_name, name) not in RULE_VARIANTS and name not in LOSSES and name not in RATE_LOSSES:
            raise BadInput(f"loss {name!r} of rule {rule_name!r} is not implemented in the analysis "
                           f"layer (built-in: {', '.join(sorted(LOSSES))}); pass --loss path/to/module.py:name")
    return [make_loss(name, stats, layout, rule_name, params) for name in rule.losses
            if pairing_holds(rule_name, name, stats)]


#: where a rule's candidate loss is descended by its drift: (rule, loss) -> (test on the
#: input statistics, the condition in words); pairings not listed hold for every model
#: and input the rule runs with (docstring above; docs/analysis.md)
PAIRINGS = {
    ("oja", "rayleigh"): (lambda s: s.transfer == "linear",
                          "linear neurons (for relu the drift ascends it at some w)"),
    ("covariance", "variance"): (lambda s: s.transfer == "linear",
                                 "linear neurons (for relu the drift is not its gradient)"),
    ("covariance", "input_variance"): (lambda s: s.transfer != "linear" and s.kind == "gaussian",
                                       "relu neurons with Gaussian inputs (Stein's lemma); for "
                                       "linear neurons it equals variance"),
}


def pairing_holds(rule_name, loss_name, stats):
    """Whether ``loss_name`` is a true candidate of ``rule_name`` for these input
    statistics (the model's transfer and the kind of inputs): :data:`PAIRINGS`."""
    entry = PAIRINGS.get((rule_name, loss_name))
    if entry is None or stats is None:
        return True
    return bool(entry[0](getattr(stats, "base", stats)))


# -- losses of spiking rules, in firing rates --------------------------------------
class RateLoss(Loss):
    """A loss whose form depends on the firing rates logged with each record
    (``/rates/pre``, ``/rates/post`` of a spiking run). It is evaluated through
    :meth:`at`, which returns a plain :class:`Loss` for the records of one chunk;
    calling it unbound is an error.

    Parameters
    ----------
    name : str
    builder : callable
        ``builder(rates)`` with a :class:`plasticity.rules.SpikeRates` of B records
        returns a function ``(B, n) -> (values, gradients)``.
    """

    def __init__(self, name, builder, description=""):
        def unbound(w):
            raise BadInput(f"loss {name!r} needs the logged firing rates (/rates/pre, /rates/post) "
                           "of a spiking run")
        super().__init__(name, unbound, description)
        self.builder = builder

    def at(self, rates):
        """The loss for the records whose rates are ``rates`` (B records)."""
        return Loss(self.name, self.builder(rates), self.description)


def _triplet_bcm(params, layout):
    """The triplet rule's BCM-like objective (:func:`plasticity.rules.triplet.bcm_objective`)
    with ``y`` held at the measured postsynaptic rate of each record: the gradient per
    synapse is ``g = −r_x y (a y − b)`` and, for a consistent value (docs/math.md §4), the
    value is the linear loss ``Σ_s g_s w_s`` that this gradient belongs to."""
    from ..rules.triplet import bcm_objective

    def builder(rates):
        pre = np.asarray(rates.pre, float)
        post = np.asarray(rates.post, float)

        def function(w):
            w = np.asarray(w, float)
            B = w.shape[0]
            if pre.shape[0] != B or post.shape[0] != B:
                raise BadInput(f"loss 'triplet_bcm': rates of {pre.shape[0]} records for {B} records")
            S = layout.n_synapses
            if layout.full:
                W, _ = layout.dense(w)
                _, dW = bcm_objective(W, pre, params, rates_post=post)
                g = layout.flat(dW)
            else:
                # per synapse, −r_x y (a y − b) at its two neurons' rates (no dense W)
                a = params["A3_plus"] * params["tau_plus"] * params["tau_y"]
                b = params["A2_minus"] * params["tau_minus"] - params["A2_plus"] * params["tau_plus"]
                y = post[:, layout.post]
                g = np.zeros((B, layout.size))
                g[:, :S] = -(y * (a * y - b)) * pre[:, layout.pre]
            return np.einsum("bs,bs->b", g[:, :S], w[:, :S]), g
        return function
    return RateLoss("triplet_bcm", builder,
                    "−Σ_post Φ(y), Φ(y) = a y³/3 − b y²/2 (triplet STDP), y = measured post rate; "
                    "value: the linear loss Σ g·w of that gradient")


#: losses of spiking rules in rates: name -> builder(params, layout) -> RateLoss
RATE_LOSSES = {"triplet_bcm": _triplet_bcm}


def quadratic_loss(H, w_star, name="quadratic"):
    """``L(w) = ½ (w − w*)ᵀ H (w − w*)``, ``∇L = H (w − w*)`` (docs/math.md §6)."""
    H = np.asarray(H, float)
    w_star = np.asarray(w_star, float)

    def function(w):
        d = w - w_star
        Hd = d @ H.T
        return 0.5 * np.sum(d * Hd, -1), Hd
    return Loss(name, function, "½ (w − w*)ᵀ H (w − w*)")


# -- users' losses -----------------------------------------------------------------
def load_user_loss(spec):
    """A :class:`Loss` from ``"path/to/module.py:name"``.

    ``name`` in the module is either a :class:`Loss` or a function taking ``(T, n)``
    weights and returning ``(values (T,), gradients (T, n))``.

    Raises
    ------
    BadInput
        One line naming the file or the name: missing file, import error, missing or
        non-callable attribute.
    """
    path_text, sep, attr = str(spec).rpartition(":")
    if not sep or not path_text or not attr:
        raise BadInput(f"--loss {spec!r}: expected a built-in name or path/to/module.py:name")
    path = Path(path_text)
    if not path.is_file():
        raise BadInput(f"--loss {spec!r}: no such file {path_text}")
    try:
        module_spec = importlib.util.spec_from_file_location(f"plasticity_user_loss_{path.stem}", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    except SystemExit as error:
        raise BadInput(f"--loss {spec!r}: importing {path_text} called sys.exit({error.code!r})") from None
    except Exception as error:  # a user's module may raise anything
        message = str(error).splitlines()[0] if str(error) else ""
        raise BadInput(f"--loss {spec!r}: importing {path_text} failed: "
                       f"{type(error).__name__}: {message}") from None
    if not hasattr(module, attr):
        raise BadInput(f"--loss {spec!r}: {path_text} defines no {attr!r}")
    obj = getattr(module, attr)
    if isinstance(obj, Loss):
        return obj
    if not callable(obj):
        raise BadInput(f"--loss {spec!r}: {attr!r} is not callable")

    def function(w):
        try:
            out = obj(w)
        except SystemExit as error:
            raise BadInput(f"--loss {spec!r}: {attr} called sys.exit({error.code!r})") from None
        except Exception as error:
            message = str(error).splitlines()[0] if str(error) else ""
            raise BadInput(f"--loss {spec!r}: {attr} raised {type(error).__name__}: {message}") from None
        if isinstance(out, tuple) and len(out) == 2:
            for what, part in zip(("values", "gradients"), out):
                part = np.asarray(part)
                if part.dtype.kind in "fiu" and part.ndim and part.shape[0]:
                    finite = np.isfinite(part.reshape(part.shape[0], -1)).all(axis=1)
                    if not finite.all():
                        # never a verdict from non-finite numbers (the built-in losses
                        # mark records without a value, like the first record of spike
                        # rates, with NaN themselves)
                        raise BadInput(f"--loss {spec!r}: {attr} returned non-finite {what} (first "
                                       f"at row {int(np.flatnonzero(~finite)[0])} of the "
                                       f"{part.shape[0]} records given to it)")
        return out
    return Loss(attr, function, f"user loss {spec}")


def resolve_loss(spec, stats, layout, rule_name=None, params=None):
    """A loss from a name, a ``module.py:name`` spec, or a :class:`Loss` (returned as is)."""
    if isinstance(spec, Loss):
        return spec
    if ":" in str(spec) or str(spec).endswith(".py"):
        return load_user_loss(spec)
    return make_loss(spec, stats, layout, rule_name, params)
