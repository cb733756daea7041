"""Figures of docs/spiking.md from run files:

    python docs/figures/spiking_figures.py SONG_HARD.h5 SONG_SOFT.h5 TRIPLET.h5

(runs of experiments/stdp_song2000.toml, the same with --set rule.bounds='"soft"', and
experiments/triplet_bcm.toml). Writes small PNGs next to this script and prints the
numbers quoted in the docs."""

import sys
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from plasticity.rules import RULES, SpikeRates  # noqa: E402
from plasticity.rules.triplet import Triplet  # noqa: E402

HERE = Path(__file__).resolve().parent


def song(hard, soft):
    fig, axes = plt.subplots(1, 3, figsize=(9, 2.6), dpi=80)
    for path, label in ((hard, "additive"), (soft, "multiplicative")):
        with h5py.File(path) as f:
            w, t = f["weights"], f["time"][()]
            w_max = 0.01
            first, last = w[0] / w_max, w[-1] / w_max
            rate = f["rates/post"][1:, 0]
            counts, _ = np.histogram(last, bins=10, range=(0, 1))
            print(f"{label}: final histogram (10 bins of w/g_max) {counts.tolist()}; post rate "
                  f"first 5 s {rate[:50].mean():.1f} Hz, last 10 s {rate[-100:].mean():.1f} Hz; "
                  f"wall {f.attrs['wall_time']:.1f} s")
            if label == "additive":
                axes[0].hist(first, bins=20, range=(0, 1), color="0.6")
                axes[0].set_title("t = 0 s", fontsize=9)
                axes[1].hist(last, bins=20, range=(0, 1), color="C0")
                axes[1].set_title(f"additive, t = {t[-1]:.0f} s", fontsize=9)
            else:
                axes[2].hist(last, bins=20, range=(0, 1), color="C1")
                axes[2].set_title(f"multiplicative, t = {t[-1]:.0f} s", fontsize=9)
    for ax in axes:
        ax.set_xlabel("w / g_max")
    axes[0].set_ylabel("synapses")
    fig.tight_layout()
    fig.savefig(HERE / "song2000_histograms.png")


def triplet(path):
    with h5py.File(path) as f:
        t = f["time"][()]
        w = f["weights"][()]
        post = f["synapses/post"][()]
        rx = np.nanmean(f["rates/pre"][1:])
        ry = np.nanmean(f["rates/post"][1:], axis=0)
    T = t[-1] - t[0]
    drift = np.array([(w[-1, post == j] - w[0, post == j]).mean() / T for j in range(ry.size)])
    params = RULES["triplet"].resolve({"w_max": 5.0})
    grid = np.linspace(0, 42, 200)
    pred, _ = RULES["triplet"].drift(np.zeros((1, grid.size, 1)), {},
                                     SpikeRates(np.array([[rx]]), grid[None]), params)
    theta = Triplet.threshold(params)
    fig, ax = plt.subplots(figsize=(4.2, 2.8), dpi=80)
    ax.axhline(0, color="0.7", lw=0.8)
    ax.axvline(theta, color="0.7", ls="--", lw=0.8)
    ax.plot(grid, pred[0, :, 0], label="rate limit")
    ax.plot(ry, drift, "o", label="simulated")
    ax.set_xlabel("post rate (Hz)")
    ax.set_ylabel("mean dw/dt (1/s)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "triplet_threshold.png")
    print("triplet: post rates", np.round(ry, 1).tolist())
    print("triplet: measured drift", np.round(drift, 4).tolist())
    print("triplet: predicted", np.round(RULES["triplet"].drift(np.zeros((1, ry.size, 1)), {},
          SpikeRates(np.array([[rx]]), ry[None]), params)[0][0, :, 0], 4).tolist())


if __name__ == "__main__":
    song(sys.argv[1], sys.argv[2])
    triplet(sys.argv[3])
