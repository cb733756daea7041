"""The figure of docs/studies.md: BCM's τ_θ sweep as a phase diagram.

    plasticity sweep experiments/sweeps/bcm_tau_theta.toml --out /tmp/studies --workers 2
    python docs/studies_figures.py /tmp/studies/bcm_tau_theta/sweep.csv

Top: the leading real part of the Jacobian's eigenvalues at the fixed point each run
ends up at (``stability_max_real``, one dot per seed), with the mean-field value at the
selective fixed point w = (2, 0), θ = 2 of two unit patterns (the (w₁, θ) block has
trace η − 1/τ_θ and determinant η/τ_θ; the w₂ direction, at the rectifier's kink,
gives −η·p·θ/2 = −0.5 by central differences). Bottom: the verdict of each run.
"""

import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

VERDICTS = ["gradient", "natural-gradient", "not-descent", "no-loss-exists"]
COLOURS = {"gradient": "tab:green", "natural-gradient": "tab:olive", "not-descent": "tab:orange",
           "no-loss-exists": "tab:red"}


def main(table, out=Path(__file__).parent / "figures" / "bcm_tau_theta.png", eta=1.0):
    with open(table, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["status"] == "complete"]
    tau = np.array([float(r["rule.tau_theta"]) for r in rows])
    real = np.array([float(r["stability_max_real"]) if r["stability_max_real"] else np.nan for r in rows])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1.3]})
    grid = np.linspace(tau.min(), tau.max(), 400)
    lam = np.array([np.roots([1.0, -(eta - 1 / t), eta / t]) for t in grid])
    top.plot(grid, lam.real.max(axis=1), color="0.6", lw=1.5,
             label="mean field, selective fixed point: the (w₁, θ) pair")
    # w₂ sits at the rectifier's kink (y₂ = max(0, w₂) = 0): one-sided slopes −η·p·θ
    # and 0, which central differences average
    top.axhline(-eta * 0.5 * 2.0 / 2, color="0.6", ls="--", lw=1,
                label="w₂ at the rectifier's kink (central differences)")
    jitter = (np.array([int(r["seed"]) for r in rows]) - 2) * 0.008
    top.scatter(tau + jitter, real, c=[COLOURS.get(r["verdict"], "k") for r in rows], s=22,
                zorder=3, label="runs (one dot per seed)")
    top.axhline(0, color="k", lw=0.6)
    top.axvline(1 / eta, color="k", ls=":", lw=0.8)
    top.set_ylabel("stability_max_real (1/s)")
    top.legend(loc="lower right", fontsize=8)
    top.set_title("BCM, two patterns: linear stability and verdict across η·τ_θ = 1")
    for r, t, j in zip(rows, tau, jitter):
        v = r["verdict"]
        bottom.scatter(t + j, VERDICTS.index(v) if v in VERDICTS else -1, color=COLOURS.get(v, "k"), s=22)
    bottom.set_yticks(range(len(VERDICTS)), VERDICTS, fontsize=8)
    bottom.set_ylim(-0.5, len(VERDICTS) - 0.5)
    bottom.axvline(1 / eta, color="k", ls=":", lw=0.8)
    bottom.set_xlabel("τ_θ (s)   (η = 1 Hz: the dotted line is η·τ_θ = 1)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main(*sys.argv[1:2])
