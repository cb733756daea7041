"""Reproduce the numbers and figures of docs/no_loss.md.

    .venv/bin/python docs/no_loss_figures.py [BCM_BRIAN2_RUN.h5]

Runs the four dynamics experiments (numpy, seconds), analyses them and the Brian2
BCM run (if given: ``plasticity run experiments/bcm_slow_threshold.toml``), writes
docs/figures/no_loss_*.png and prints the numbers as JSON.
"""

import json
import sys
import tempfile
import tomllib
from pathlib import Path
from types import SimpleNamespace

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from plasticity.analysis.certificate import certify  # noqa: E402
from plasticity.analysis.linear import factor_linear_drift  # noqa: E402
from plasticity.analysis.lyapunov import fit_quadratic_loss  # noqa: E402
from plasticity.analysis.metrics import batch_metric_stats  # noqa: E402
from plasticity.analysis.recurrence import find_recurrence  # noqa: E402
from plasticity.analysis.window import linear_window_descent, smallest_window  # noqa: E402
from plasticity.analysis import analyze_file, open_run  # noqa: E402
from plasticity.analysis.pipeline import dynamics_system  # noqa: E402
from plasticity.config import load_config  # noqa: E402
from plasticity.sim import run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIG = ROOT / "docs" / "figures"
GRID = [0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0]


def system_from_file(path):
    with open_run(path) as opened:
        return dynamics_system(opened)


def load(path):
    with h5py.File(path, "r") as f:
        out = {"t": f["time"][()], "W": f["weights"][()]}
        if "drift" in f:
            out["F"] = f["drift"][()]
        if "state/theta" in f:
            out["theta"] = f["state/theta"][()]
    return out


def save(fig, name):
    fig.tight_layout()
    fig.savefig(FIG / name, dpi=80)
    plt.close(fig)


def brief(cert):
    keys = ("descent_fraction", "psi_deg", "kappa_min", "verdict")
    return {k: cert[k] for k in keys if k in cert}


def main():
    numbers = {}
    tmp = Path(tempfile.mkdtemp())
    runs = {}
    for name in ("lti_nonnormal", "feedback_alignment", "momentum", "bcm_slow_meanfield"):
        runs[name] = run(load_config(ROOT / "experiments" / f"{name}.toml"), out_dir=tmp, progress=False)

    # -- LTI -------------------------------------------------------------------------
    A = np.array([[-1.0, 10.0], [0.0, -2.0]])
    s = system_from_file(runs["lti_nonnormal"])
    d = load(runs["lti_nonnormal"])
    v, g = s.losses["norm2"](d["W"])
    res = smallest_window(s.drift, s.losses["norm2"], d["W"], [0.0] + GRID, jacobian=s.jacobian)
    factor = factor_linear_drift(A)
    numbers["lti"] = {
        "norm2": brief(certify(d["F"], g, v, d["t"], "norm2").summary()),
        "directions": {str(T): linear_window_descent(A, T) for T in (0.0, 0.1, 0.5, 1, 2, 2.5, 3)},
        "trajectory_window": res.summary(),
        "factorization": {"exists": factor.exists, "eig_M": np.linalg.eigvalsh(factor.M).tolist(),
                          "eig_H": np.linalg.eigvalsh(factor.H).tolist()},
        "quadratic_fit": fit_quadratic_loss(d["W"], d["F"]).summary(),
        "recurrence": find_recurrence(d["W"], d["t"]),
    }
    fig, ax = plt.subplots(1, 3, figsize=(11, 3.2))
    ax[0].plot(d["t"], v, label="‖w‖²")
    ax[0].set(xlabel="t", ylabel="‖w(t)‖²", title="LTI: ‖w‖² grows transiently")
    Ts = np.linspace(0.01, 4, 200)
    from scipy.linalg import expm
    ax[1].plot(Ts, [np.linalg.norm(expm(A * T), 2) for T in Ts])
    ax[1].axhline(1, color="k", lw=0.5)
    ax[1].set(xlabel="T", ylabel="‖e^{AT}‖₂", title="descent everywhere iff < 1")
    ax[2].plot(res.grid, res.descent_fraction, "o-")
    ax[2].set(xlabel="window T (0: ‖w‖² itself)", ylabel="fraction of records descended",
              title=f"trajectory: smallest T = {res.T:g}")
    save(fig, "no_loss_lti.png")

    # -- feedback alignment -------------------------------------------------------------
    s = system_from_file(runs["feedback_alignment"])
    d = load(runs["feedback_alignment"])
    v, g = s.losses["task"](d["W"])
    st = batch_metric_stats(d["F"], g)
    psi = np.degrees(st["psi"])
    align = s.alignment(d["W"])
    live = v > 1e-10 * v[0]        # before the loss reaches round-off
    idx = [int(np.searchsorted(d["t"], x)) for x in (0, 0.25, 0.5, 1, 2, 3, 5)]
    numbers["feedback_alignment"] = {
        "n": int(d["W"].shape[1]),
        "task": brief(certify(d["F"][live], g[live], v[live], d["t"][live], "task").summary()),
        "at": {f"{d['t'][i]:.2f}": {"psi_deg": float(psi[i]), "kappa_min": float(st["kappa_min"][i]),
                                    "alignment": float(align[i]), "loss": float(v[i])} for i in idx},
        "recurrence": find_recurrence(d["W"], d["t"]),
    }
    fig, ax = plt.subplots(1, 3, figsize=(11, 3.2))
    ax[0].semilogy(d["t"][live], v[live])
    ax[0].set(xlabel="t", ylabel="task loss", title="feedback alignment: task loss")
    ax[1].plot(d["t"][live], psi[live])
    ax[1].axhline(90, color="k", lw=0.5)
    ax[1].set(xlabel="t", ylabel="ψ (deg)", title="angle to −∇(task loss)")
    ax[2].plot(d["t"][live], align[live])
    ax[2].set(xlabel="t", ylabel="cos(W₂ᵀ, B)", title="alignment with feedback")
    save(fig, "no_loss_feedback_alignment.png")

    # -- momentum --------------------------------------------------------------------------
    s = system_from_file(runs["momentum"])
    d = load(runs["momentum"])
    mom = {}
    wins = {}
    for name, loss in s.losses.items():
        v, g = loss(d["W"])
        r = smallest_window(s.drift, loss, d["W"], GRID + [8.0, 12.0], jacobian=s.jacobian, max_records=400)
        wins[name] = r
        mom[name] = {"loss": brief(certify(d["F"], g, v, d["t"], name).summary()),
                     "fg_at_start": float(d["F"][0] @ g[0]), "window": r.summary()}
    mom["quadratic_fit"] = fit_quadratic_loss(d["W"], d["F"]).summary()
    mom["recurrence"] = find_recurrence(d["W"], d["t"])
    numbers["momentum"] = mom
    fig, ax = plt.subplots(1, 2, figsize=(8, 3.2))
    for name, loss in s.losses.items():
        ax[0].semilogy(d["t"], loss(d["W"])[0], label=name)
    ax[0].legend()
    ax[0].set(xlabel="t", title="heavy ball: energy and objective")
    for name, r in wins.items():
        ax[1].plot(r.grid, r.descent_fraction, "o-", label=name)
    ax[1].set(xlabel="window T", ylabel="fraction of records descended", title="window losses")
    ax[1].legend()
    save(fig, "no_loss_momentum.png")

    # -- BCM, slow threshold: mean field and Brian2 --------------------------------------------
    s = system_from_file(runs["bcm_slow_meanfield"])
    d = load(runs["bcm_slow_meanfield"])
    v, g = s.losses["intrator_cooper"](d["W"])
    rec = find_recurrence(d["W"], d["t"])
    numbers["bcm_slow_meanfield"] = {
        "intrator_cooper": brief(certify(d["F"], g, v, d["t"], "intrator_cooper").summary()),
        "quadratic_fit": fit_quadratic_loss(d["W"], d["F"]).summary(),
        "recurrence": rec.summary() if rec else None}
    panels = [("mean field (numpy)", d["t"], d["W"][:, :2], d["W"][:, 2], rec)]
    if len(sys.argv) > 1:
        b = load(sys.argv[1])
        X = np.hstack([b["W"], b["theta"]])
        Fb = s.drift(X)        # the same mean-field drift as the Brian2 rule's expectation
        # the recurrence and the verdict as `plasticity analyze` finds them: on the mean
        # field integrated from the first record (basis "mean-field"), not the noisy path
        doc = analyze_file(sys.argv[1], store=False, discover=False, stability=False)
        rec_doc = doc["recurrence"]
        rec_b = None if rec_doc is None else SimpleNamespace(t_i=rec_doc["t_first"], t_j=rec_doc["t_return"])
        numbers["bcm_slow_threshold_brian2"] = {
            "records": int(X.shape[0]),
            "analyze": [brief(r) for r in doc["results"]],
            "quadratic_fit": fit_quadratic_loss(X, Fb).summary(),
            "recurrence": rec_doc, "recurrence_note": doc.get("recurrence_note")}
        panels.append(("Brian2 (stochastic; recurrence of its mean field)", b["t"], b["W"],
                       b["theta"][:, 0], rec_b))
    fig, ax = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.4), squeeze=False)
    for a, (title, t, Wm, th, r) in zip(ax[0], panels):
        a.plot(t, Wm[:, 0], lw=0.8, label="w₁")
        a.plot(t, Wm[:, 1], lw=0.8, label="w₂")
        a.plot(t, th, lw=0.8, label="θ")
        if r is not None:
            for tt in (r.t_i, r.t_j):
                a.axvline(tt, color="k", ls="--", lw=0.7)
        a.set(xlabel="t (s)", title=f"BCM slow θ, {title}" + ("\nrecurrence at dashed lines" if r else ""))
        a.legend(fontsize=7)
    save(fig, "no_loss_bcm.png")

    def clean(x):
        if hasattr(x, "summary"):
            return x.summary()
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, (np.floating, np.integer, np.bool_)):
            return x.item()
        return x

    print(json.dumps(clean(numbers), indent=1))


if __name__ == "__main__":
    main()
