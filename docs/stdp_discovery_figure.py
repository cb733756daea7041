"""Figure of the loss discovered in Brian2's Song–Miller–Abbott STDP example.

    python examples/brian2_stdp.py /tmp/song100.npz 100
    .venv/bin/python docs/stdp_discovery_figure.py /tmp/song100.npz [/tmp/song30.npz]

Runs ``analyze_file`` on each trajectory (no loss given: loss discovery), prints the
discovery section and the coefficients as JSON, and writes
docs/figures/stdp_discovered_loss.png: the discovered per-synapse loss φ(w) next to
the histogram of the weights at the start and at the end of the run.
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from plasticity.analysis import analyze_file  # noqa: E402
from plasticity.analysis.discovery import SeparableFamily  # noqa: E402

FIG = Path(__file__).resolve().parent / "figures" / "stdp_discovered_loss.png"


def separable_phi(result, w):
    """φ(w) of a ``discovered:separable`` result (up to a constant)."""
    basis = result["basis"]
    names = list(result["coefficients"])
    lo = basis["mid"] - basis["half"]
    hi = basis["mid"] + basis["half"]
    family = SeparableFamily(lo, hi, any(n.startswith("-log(u+") for n in names),
                             any(n.startswith("-log(1+") for n in names))
    theta = np.array([result["coefficients"][n] for n in family.names])
    return family.function(theta)(w[:, None])[0]


def main(paths):
    fig, axes = plt.subplots(len(paths), 2, figsize=(9, 3.2 * len(paths)), squeeze=False)
    report = {}
    for row, path in zip(axes, paths):
        doc = analyze_file(path, store=False)
        report[str(path)] = {"discovery": doc["discovery"],
                             "results": [{k: r[k] for k in ("loss", "coefficients", "descent_fraction",
                                                             "verdict")} for r in doc["results"]]}
        data = np.load(path)
        W, t = data["weights"], data["time"]
        g_max = W.max()
        sep = [r for r in doc["results"] if r["loss"] == "discovered:separable"]
        ax = row[0]
        if sep:
            w = np.linspace(W.min(), W.max(), 200)
            phi = separable_phi(sep[0], w)
            ax.plot(w / g_max, phi - phi.min(), color="C3")
            ax.set_ylabel("φ(w) (arbitrary units)")
        else:
            ax.text(0.5, 0.5, "no separable loss found", ha="center", transform=ax.transAxes)
        ax.set_xlabel("w / g_max")
        ax.set_title(f"discovered:separable, {t[-1]:.0f} s run")
        ax = row[1]
        bins = np.linspace(0, 1, 21)
        ax.hist(W[0] / g_max, bins, alpha=0.6, label=f"t = {t[0]:.0f} s")
        ax.hist(W[-1] / g_max, bins, alpha=0.6, label=f"t = {t[-1]:.0f} s")
        ax.set_xlabel("w / g_max")
        ax.set_ylabel("synapses")
        ax.legend(fontsize=8)
        ax.set_title("weights")
    fig.tight_layout()
    FIG.parent.mkdir(exist_ok=True)
    fig.savefig(FIG, dpi=100)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main([Path(p) for p in sys.argv[1:]])
