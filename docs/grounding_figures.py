"""Reproduce the Oja figure and numbers of docs/analysis.md, "Three answers".

    .venv/bin/python docs/grounding_figures.py [OJA_RUN.h5 [ENSEMBLE_RUN.h5 ...]]

Without arguments it runs ``experiments/oja_pca.toml`` (seed 1) and, for the ensemble,
six seeds of the same config with a shared start (``inputs.rotation = "identity"``,
``network.init.distribution = "constant"``, value 0.2, 60 s), into a temporary
folder. It analyses them (``analyze_file``, ``analyze_ensemble``), writes
docs/figures/oja_three_answers.png — the sample-path windows over time (descent /
undecided / ascent, the loss change of each window with ±2 standard errors) beside
ψ(t) of the expected drift — and prints the three answers as JSON.
"""

import json
import sys
import tempfile
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from plasticity.analysis import analyze_file  # noqa: E402
from plasticity.analysis.ensemble import analyze_ensemble  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIG = ROOT / "docs" / "figures"
SHARED_START = ['inputs.rotation="identity"', 'network.init.distribution="constant"',
                'network.init.value=0.2', 'simulation.duration="60 s"']


def simulate(folder):
    from plasticity.config import load_config
    from plasticity.sim import run

    config = ROOT / "experiments" / "oja_pca.toml"
    single = run(load_config(config, seed=1), out_dir=folder / "single", progress=False)
    seeds = [run(load_config(config, SHARED_START, seed=s), out_dir=folder / "ensemble", progress=False)
             for s in range(1, 7)]
    return single, seeds


def figure(path, doc, out):
    with h5py.File(path, "r") as f:
        g = f["analysis/rayleigh"]
        t, psi = g["time"][()], g["psi_deg"][()]
        t0, t1 = g["sample_path_t0"][()], g["sample_path_t1"][()]
        change, se, call = g["sample_path_change"][()], g["sample_path_se"][()], g["sample_path_call"][()]
    sp = next(r for r in doc["results"] if r["loss"] == "rayleigh")["sample_path"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True,
                                   gridspec_kw={"height_ratios": [1, 1.4]})
    ax1.plot(t, psi, lw=0.8, color="k")
    ax1.set_ylabel("ψ (degrees)")
    ax1.set_title("Oja, loss rayleigh: angle of the expected drift to −∇L (in expectation)")
    colours = {-1: "tab:green", 0: "0.6", 1: "tab:red"}
    labels = {-1: "descent (significant)", 0: "undecided", 1: "ascent (significant)"}
    mid = 0.5 * (t0 + t1)
    for c in (-1, 0, 1):
        sel = call == c
        if sel.any():
            ax2.errorbar(mid[sel], change[sel], yerr=2 * se[sel], fmt="o", ms=3, lw=0.8,
                         color=colours[c], label=f"{labels[c]}: {sel.mean():.0%}")
        for a, b in zip(t0[sel], t1[sel]):
            ax2.axvspan(a, b, color=colours[c], alpha=0.08, lw=0)
    ax2.axhline(0, color="k", lw=0.5)
    lin = 10.0 ** np.floor(np.log10(max(1e-12, float(np.median(se)))))
    ax2.set_yscale("symlog", linthresh=lin)
    top = 10.0 ** np.ceil(np.log10(max(lin, float(np.max(np.abs(change) + 2 * se)))))
    decades = [top / 10 ** k for k in range(int(round(np.log10(top / lin))) + 1)][::2]
    ax2.set_yticks(sorted([-d for d in decades] + [0.0] + decades))
    ax2.set_xlabel("time (s)")
    ax2.set_ylabel("L(w_b) − L(w_a) per window")
    ax2.set_title(f"along the path: {sp['windows']} windows of {sp['window']} records "
                  f"({sp['window_s']:g} s), ±2 s.e., Holm at {sp['alpha']:g}")
    ax2.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv):
    with tempfile.TemporaryDirectory() as tmp:
        if argv:
            single, seeds = Path(argv[0]), [Path(p) for p in argv[1:]]
        else:
            single, seeds = simulate(Path(tmp))
        doc = analyze_file(single)
        fig = figure(single, doc, FIG / "oja_three_answers.png")
        ensemble = analyze_ensemble(seeds) if len(seeds) >= 2 else None
    answers = {
        "consistency": doc["consistency"],
        "expectation": [{k: r[k] for k in ("loss", "verdict", "descent_fraction", "psi_deg", "kappa_min")}
                        for r in doc["results"]],
        "sample_path": [{"loss": r["loss"], **r["sample_path"]} for r in doc["results"]],
        "ensemble": None if ensemble is None else {
            "seeds": ensemble["seeds"], "spread": ensemble["spread"],
            "results": [{k: r[k] for k in ("loss", "verdict", "descent_fraction", "psi_deg", "kappa_min",
                                           "bootstrap", "record_tests", "window", "window_s",
                                           "drift_relative_se")} for r in ensemble["results"]]},
        "figure": str(fig.relative_to(ROOT)),
    }
    print(json.dumps(answers, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
