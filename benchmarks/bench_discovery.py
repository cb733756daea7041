"""Benchmark: loss discovery on 10 000 weights × 1 000 records against one certificate
pass over the same file.

The file is a minimal HDF5 trajectory (``/time``, ``/weights``; no rule, no drift, as a
trajectory from another simulator would be), gzip-1 + shuffle chunks as the recorder
writes them. The trajectory is Euler steps of ``ẇ = −M∇L`` with a diagonal-plus-low-rank
quadratic L and a diagonal-plus-low-rank SPD metric M. Both passes use the window
drift with the window chosen from the data:

- certificate pass: ``certify_run(run, [loss], drift="window")`` against one loss
  (½‖w − w_T‖²), what ``plasticity analyze --loss`` does per loss;
- discovery: ``discover_losses(run)`` (separable and quadratic families: window
  choice, one scan for the range and the principal directions, one feature pass, the
  LPs).

The same is timed on a noisy version of the trajectory (Gaussian increments added at
every step), where the window is longer and discovery uses Itô sums over single
records. Reports the time ratios (goal ≤ 10) and the peak traced memory of discovery at
``--records`` and at half as many records (goal: flat in the number of records).

Run::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_discovery.py [--records 1000]
        [--weights 10000] [--repeat 3] [--write]

``--write`` replaces the section "## Loss discovery: 10 000 weights × 1 000 records" of
``benchmarks/RESULTS.md``.
"""

import argparse
import platform
import re
import tempfile
import time
import tracemalloc
from pathlib import Path

import h5py
import numpy as np

from plasticity.analysis import Loss, certify_run, open_run
from plasticity.analysis.discovery import discover_losses

HEADING = "## Loss discovery: 10 000 weights × 1 000 records"


def make_file(path, n, T, seed=0, noise=0.0):
    """Euler steps of the planted dynamics; ``noise``: standard deviation of Gaussian
    increments added to every weight at every step (a noisy sample path)."""
    rng = np.random.default_rng(seed)
    d = rng.uniform(0.7, 1.4, n)
    Q = 0.5 * rng.standard_normal((n, 3)) / np.sqrt(n)
    c = 0.1 * rng.standard_normal(n)
    V = np.linalg.qr(rng.standard_normal((n, 2)))[0]
    s = np.array([5.0, 2.0])
    w = c + rng.standard_normal(n) + V @ rng.standard_normal(2) * 3
    dt, per = 0.01, 2
    with h5py.File(path, "w") as f:
        rows = max(1, (1 << 20) // (8 * n))
        data = f.create_dataset("weights", (T, n), dtype="f8", chunks=(rows, n),
                                compression="gzip", compression_opts=1, shuffle=True)
        for k in range(T):
            data[k] = w
            for _ in range(per):
                g = 0.5 * (w - c) + (((w - c) @ V) * s) @ V.T
                w = w - dt * (g * d + (g @ Q) @ Q.T)
                if noise:
                    w = w + noise * rng.standard_normal(n)
        f["time"] = np.arange(T) * dt * per


def certificate_pass(path):
    with open_run(path) as run:
        ref = run.weights(run.n_records - 1, run.n_records)[0]
        loss = Loss("half", lambda w: (0.5 * np.sum((w - ref) ** 2, 1), w - ref))
        return certify_run(run, [loss], drift="window")[0]


def discovery(path):
    with open_run(path) as run:
        return discover_losses(run)


def best_of(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def peak(fn):
    tracemalloc.start()
    fn()
    out = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--weights", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    T, n = args.records, args.weights
    MiB = 1 << 20
    with tempfile.TemporaryDirectory() as tmp:
        path, half = Path(tmp) / "big.h5", Path(tmp) / "half.h5"
        noisy = Path(tmp) / "noisy.h5"
        t0 = time.perf_counter()
        make_file(path, n, T)
        make_file(half, n, T // 2)
        t_make = time.perf_counter() - t0
        make_file(noisy, n, T, noise=0.05)
        certificate_pass(path)                                   # warm-up
        t_cert, cert = best_of(lambda: certificate_pass(path), args.repeat)
        t_disc, (found, info) = best_of(lambda: discovery(path), args.repeat)
        mem_full, mem_half = peak(lambda: discovery(path)), peak(lambda: discovery(half))
        mem_cert = peak(lambda: certificate_pass(path))
        t_cert_noisy, _ = best_of(lambda: certificate_pass(noisy), args.repeat)
        t_disc_noisy, (found_noisy, info_noisy) = best_of(lambda: discovery(noisy), args.repeat)
        size = path.stat().st_size
    ratio = t_disc / t_cert
    lines = [
        HEADING, "",
        f"Command: `OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_discovery.py "
        f"--records {T} --weights {n} --repeat {args.repeat}{' --write' if args.write else ''}`", "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, NumPy {np.__version__}; "
        f"best of {args.repeat}. (Shared development machine: times are indicative.)", "",
        f"Minimal HDF5 trajectory, {n} weights × {T} records (no rule, no /drift; gzip-1+shuffle, "
        f"file {size / MiB:.1f} MiB, weights {T * n * 8 / MiB:.1f} MiB in memory; generated in "
        f"{t_make:.1f} s). Window drift, window {info['window']} record(s) chosen from the data.", "",
        "| pass | time (s) | peak traced memory (MiB) |",
        "|---|---|---|",
        f"| one certificate pass (window drift, one loss) | {t_cert:.2f} | {mem_cert / MiB:.1f} |",
        f"| loss discovery (separable + quadratic families) | {t_disc:.2f} | {mem_full / MiB:.1f} |",
        f"| loss discovery, same trajectory with {T // 2} records | | {mem_half / MiB:.1f} |",
        f"| noisy path (σ = 0.05 per step added; window {info_noisy['window']}): certificate pass "
        f"| {t_cert_noisy:.2f} | |",
        f"| noisy path: loss discovery (Itô sums over single records) | {t_disc_noisy:.2f} | |", "",
        f"- time ratio discovery / certificate pass: **{ratio:.2f}** smooth, "
        f"**{t_disc_noisy / t_cert_noisy:.2f}** noisy (goal ≤ 10)",
        f"- peak memory of discovery at {T} vs {T // 2} records: **{mem_full / MiB:.1f} vs "
        f"{mem_half / MiB:.1f} MiB** (goal: flat in the number of records)",
        "- found: " + ", ".join(f"{d.family} (held-out descent {d.heldout_descent_fraction:.3f})"
                                for d in found if d.found) + "; certificate verdict of the "
        f"reference loss: {cert.verdict}; noisy path found: "
        + (", ".join(d.family for d in found_noisy if d.found) or "none"), "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        results = Path(__file__).with_name("RESULTS.md")
        old = results.read_text()
        pattern = re.compile(re.escape(HEADING) + r".*?(?=\n## |\Z)", re.S)
        new = pattern.sub(lambda _: text.rstrip() + "\n", old) if pattern.search(old) else \
            old.rstrip() + "\n\n" + text
        results.write_text(new)


if __name__ == "__main__":
    main()
