"""Loss discovery (plasticity.analysis.discovery): planted losses are recovered, closed
orbits yield none, and the quadratic Lyapunov LP agrees where both run."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from plasticity.analysis import open_run
from plasticity.analysis.discovery import discover_losses, fit_margin
from plasticity.analysis.lyapunov import fit_quadratic_loss


def random_metric(n, rng, rank=3):
    """A random SPD metric ``M = D + QQᵀ`` applied without forming it (n up to 10⁴):
    D uniform in [0.7, 1.4], Q Gaussian of rank 3 (condition number about 2–3)."""
    d = rng.uniform(0.7, 1.4, n)
    Q = 0.5 * rng.standard_normal((n, rank)) / np.sqrt(n) * np.sqrt(n / max(n, 10))
    return lambda g: g * d + (g @ Q) @ Q.T


def planted(kind, n, seed=0):
    """Euler steps of ``ẇ = −M∇L`` with a known ``L``; returns (time, weights, drift,
    true gradient function). ``separable``: ``Σ φ(w_i)``, ``φ' = (w−c) + 2(w−c)³``;
    ``lowrank``: ``½(w−c)ᵀ(½I + V diag(5, 2) Vᵀ)(w−c)``, V (n, 2) orthonormal. Runs until
    the slowest mode has decayed to about 1% (records at the round-off level of a
    converged run say nothing about the loss)."""
    rng = np.random.default_rng(seed)
    M = random_metric(n, rng)
    if kind == "separable":
        c = 0.3
        grad = lambda w: (w - c) + 2.0 * (w - c) ** 3        # noqa: E731
        w = rng.uniform(-1.0, 1.5, n)
        T = 200
    else:
        c = 0.1 * rng.standard_normal(n)
        V = np.linalg.qr(rng.standard_normal((n, 2)))[0]
        s = np.array([5.0, 2.0])
        grad = lambda w: 0.5 * (w - c) + (((w - c) @ V) * s) @ V.T   # noqa: E731
        w = c + rng.standard_normal(n) + V @ rng.standard_normal(2) * 3
        T = 300
    dt, per = 0.01, 5
    W, F = [], []
    for _ in range(T):
        W.append(w.copy())
        F.append(-M(grad(w)))
        for _ in range(per):
            w = w - dt * M(grad(w))
    return np.arange(T) * dt * per, np.array(W), np.array(F), grad


def discover(tmp_path, t, W, F=None, **kw):
    path = tmp_path / "traj.npz"
    arrays = {"time": t, "weights": W} if F is None else {"time": t, "weights": W, "drift": F}
    np.savez(path, **arrays)
    with open_run(path) as run:
        return discover_losses(run, **kw)


def heldout_cosines(found, W, grad):
    """Cosine between the discovered and the true gradient on the held-out records."""
    G = found.loss.value_and_grad(W)[1]
    Gt = grad(W)
    cos = np.sum(G * Gt, 1) / (np.linalg.norm(G, axis=1) * np.linalg.norm(Gt, axis=1))
    held = found.heldout & np.isfinite(found.margins)
    return cos[:held.size][held]


@pytest.mark.parametrize("n", [10, 10_000])
@pytest.mark.parametrize("kind,family", [("separable", "separable"), ("lowrank", "quadratic")])
@pytest.mark.parametrize("given", [True, False])
def test_planted_loss_recovered(tmp_path, n, kind, family, given):
    if n > 100 and not given and kind == "lowrank":
        pytest.skip("covered by the given-drift case (same records); keeps the quick suite quick")
    t, W, F, grad = planted(kind, n)
    results, info = discover(tmp_path, t, W, F if given else None, families=[family])
    assert info["drift"] == ("given" if given else "window")
    found = results[0]
    assert found.found, found.summary()
    assert found.heldout_descent_fraction == 1.0 and found.heldout_margin > 0
    cos = heldout_cosines(found, W, grad)
    assert cos.size > 0.4 * len(t)
    assert cos.min() >= 0.95, (cos.min(), np.median(cos))


def test_wrong_family_is_not_credited_with_the_loss(tmp_path):
    """The separable family cannot express a low-rank quadratic: whatever it fits, its
    gradient is not the true one (the cosine test above can fail)."""
    t, W, F, grad = planted("lowrank", 10)
    found = discover(tmp_path, t, W, F, families=["separable"])[0][0]
    assert heldout_cosines(found, W, grad).min() < 0.95


def rotation(turns=1.5, T=600):
    t = np.linspace(0, 2 * np.pi * turns, T)
    W = np.stack([np.cos(t), np.sin(t)], 1) * 2.0 + 0.5
    F = np.stack([-np.sin(t), np.cos(t)], 1) * 2.0
    return t, W, F


def limit_cycle(T=3000):
    def vdp(_t, z):
        return [z[1], (1 - z[0] ** 2) * z[1] - z[0]]
    t = np.linspace(0, 60, T)
    W = solve_ivp(vdp, (0, 60), [0.5, 0.0], t_eval=t, rtol=1e-9, atol=1e-12).y.T
    F = np.array([vdp(0, z) for z in W])
    return t, W, F


@pytest.mark.parametrize("orbit", [rotation, limit_cycle])
@pytest.mark.parametrize("given", [True, False])
def test_closed_orbits_yield_no_loss(tmp_path, orbit, given):
    t, W, F = orbit()
    results, _ = discover(tmp_path, t, W, F if given else None)
    assert results and not any(r.found for r in results), [r.summary() for r in results]


@pytest.mark.parametrize("orbit", [rotation, limit_cycle])
def test_analyze_calls_closed_orbits_no_loss_exists(tmp_path, orbit):
    from plasticity.analysis import analyze_file

    t, W, F = orbit()
    path = tmp_path / "orbit.npz"
    np.savez(path, time=t, weights=W)
    doc = analyze_file(path)
    assert doc["recurrence"] is not None and doc["verdict"] == "no-loss-exists"
    assert doc["discovery"]["found"] == []


@pytest.mark.parametrize("case", ["planted", "rotation", "limit_cycle"])
def test_lyapunov_lp_agrees(tmp_path, case):
    """Where both run (n ≤ 60, given drift): a loss exists for one iff for the other."""
    if case == "planted":
        t, W, F, _ = planted("lowrank", 10)
    else:
        t, W, F = rotation() if case == "rotation" else limit_cycle()
    results, _ = discover(tmp_path, t, W, F, families=["quadratic"])
    lyapunov = fit_quadratic_loss(W, F)
    assert results[0].found == lyapunov.exists == (case == "planted")


def test_fit_margin_lp():
    """Rows −C·θ: a separable set has a positive margin, an opposed pair has none."""
    rng = np.random.default_rng(1)
    theta_true = np.array([1.0, -0.5, 0.25])
    X = rng.standard_normal((200, 3))
    C = -X * np.sign(X @ theta_true)[:, None]          # −C_k·θ_true = |X_k·θ_true| > 0
    theta, best = fit_margin(C)
    assert best > 0 and np.all(-C @ theta > 0)
    theta, best = fit_margin(np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]))
    assert best <= 1e-12


def test_cli_analyze_without_loss_and_report_with_loss(tmp_path, capsys):
    from plasticity.cli import main

    t, W, F, _ = planted("separable", 10)
    path = tmp_path / "traj.npz"
    np.savez(path, time=t, weights=W)
    assert main(["analyze", str(path)]) == 0
    out = capsys.readouterr().out
    assert "loss discovery" in out and "discovered:separable" in out
    module = tmp_path / "user.py"
    module.write_text("import numpy as np\ndef half(w):\n    return 0.5 * np.sum(w * w, 1), w\n")
    assert main(["report", str(path), "--loss", f"{module}:half"]) == 0
    page = capsys.readouterr().out.splitlines()[-1]
    assert page.endswith(".html") and "half" in open(page).read()
    bad = tmp_path / "notes.h5"
    bad.write_text("hello\n")
    for argv in (["report", str(bad)], ["report", str(path), "--loss", "nonsense"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("plasticity: error:"), err
    assert not list(tmp_path.glob("notes_*.png"))


def noisy_path(seed, drift_scale, n=100, T=300, dt=0.1, sigma=0.02):
    """Euler–Maruyama steps of ``dw = −drift_scale·M∇L dt + σ dB`` with the separable
    L of :func:`planted` (drift_scale = 0: a random walk)."""
    rng = np.random.default_rng(seed)
    M = random_metric(n, rng)
    w = rng.uniform(-1.0, 1.5, n)
    W = []
    for _ in range(T):
        W.append(w.copy())
        g = (w - 0.3) + 2.0 * (w - 0.3) ** 3
        w = w - drift_scale * dt * M(g) + sigma * np.sqrt(dt) * rng.standard_normal(n)
    return np.arange(T) * dt, np.array(W)


def test_noise_calibration_random_walks_find_no_loss(tmp_path):
    """False alarms: 20 random walks (no drift). A random walk moves, on average,
    towards its own last record and its weights spread; neither may be called a loss.
    Measured: 0 of 20 for either family; the bound allows 2."""
    false_alarms = 0
    for seed in range(20):
        t, W = noisy_path(seed, 0.0)
        results, info = discover(tmp_path, t, W)
        assert info["window"] > 1                      # noise-dominated: a window was needed
        false_alarms += any(r.found for r in results)
    assert false_alarms <= 2


def test_noise_power_weak_drift_is_found(tmp_path):
    """Power: the same noise with a weak drift (−0.05 M∇L): the separable loss is
    found in at least 8 of 10 paths, and its gradient points with the true one."""
    found = 0
    for seed in range(10):
        t, W = noisy_path(seed, 0.05)
        (result,), info = discover(tmp_path, t, W, families=["separable"])
        assert info["window"] > 1
        if result.found:
            grad = lambda w: (w - 0.3) + 2.0 * (w - 0.3) ** 3    # noqa: E731
            found += np.median(heldout_cosines(result, W, grad)) > 0.9
    assert found >= 8


def test_rule_family_picks_the_true_candidate(tmp_path):
    """The ``rule`` family (a rule's own candidates): with the true loss and a wrong one
    among the candidates, the fit leans on the true one."""
    from plasticity.analysis import Loss

    t, W, F, grad = planted("separable", 10)
    true = Loss("true", lambda w: (np.sum(0.5 * (w - 0.3) ** 2 + 0.5 * (w - 0.3) ** 4, 1), grad(w)))
    wrong = Loss("wrong", lambda w: (np.sum(w, 1), np.ones_like(w)))
    (result,), _ = discover(tmp_path, t, W, F, families=["rule"], rule_losses=[true, wrong])
    assert result.found
    coef = dict(zip(result.names, result.coefficients))
    assert coef["true"] > 0 and abs(coef["wrong"]) < 0.1 * coef["true"]


@pytest.mark.slow
def test_brian2_stdp_example_end_to_end(tmp_path):
    """examples/brian2_stdp.py for 5 s of model time, then ``plasticity analyze`` on the
    .npz without a loss: exit 0, recurrence test and discovery reported."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "song.npz"
    subprocess.run([sys.executable, str(root / "examples" / "brian2_stdp.py"), str(out), "5"],
                   check=True, capture_output=True, timeout=600)
    data = np.load(out)
    assert data["weights"].shape == (50, 1000) and data["time"].shape == (50,)
    from plasticity.cli import main

    assert main(["analyze", str(out), "--json"]) == 0


def rate_run(path, seed=0, n_pre=20, n_post=2, T=300, dt=0.1, noise=0.002):
    """A spiking-run file (rule ``stdp``, no known loss) whose weights follow a rate rule
    ``dw_s = −η r_pre y (y − 10 Hz) dt + noise``, y the postsynaptic rate of the record
    interval (drawn between 2 and 20 Hz), with ``/rates/pre`` and ``/rates/post``."""
    import h5py

    from plasticity.analysis.synthetic import write_run_file

    rng = np.random.default_rng(seed)
    pre = np.tile(np.arange(n_pre), n_post)
    post = np.repeat(np.arange(n_post), n_pre)
    r_pre = rng.uniform(5, 30, (T, n_pre))
    y = rng.uniform(2, 20, (T, n_post))
    w = rng.uniform(0.2, 0.8, n_pre * n_post)
    W = [w.copy()]
    for k in range(1, T):        # the step into record k uses the rates of interval k
        g = -r_pre[k, pre] * y[k, post] * (y[k, post] - 10.0)
        w = w - 2e-5 * dt * g + noise * rng.standard_normal(w.size)
        W.append(w.copy())
    write_run_file(path, np.arange(T) * dt, np.array(W), rule_name="stdp", params={}, stats=None,
                   n_pre=n_pre, n_post=n_post, pre=pre, post=post)
    r_pre[0], y[0] = np.nan, np.nan
    with h5py.File(path, "r+") as f:
        f["rates/pre"], f["rates/post"] = r_pre, y
    return r_pre, y, pre, post


def test_rates_family_recovers_a_rate_objective(tmp_path):
    """The rates family on a spiking-run file: the planted objective's gradient
    ``−r_pre y (y − 10)`` is recovered (cosine ≥ 0.95 on held-out windows, coefficients
    of y and y² in the planted ratio within 20%)."""
    path = tmp_path / "rates.h5"
    r_pre, y, pre, post = rate_run(path)
    with open_run(path) as run:
        (result,), info = discover_losses(run, families=["rates"])
    assert result.found, result.summary()
    c = result.coefficients
    scale = result.basis["post_rate_scale_hz"]
    # gradient per synapse: r_pre Σ_p θ_p (y/scale)^p, planted ∝ r_pre (10 y − y²)
    ratio = (c[2] / scale ** 2) / (c[1] / scale)
    assert abs(c[0]) < 0.2 * np.abs(c).max()
    assert ratio == pytest.approx(-1 / 10.0, rel=0.2)
    k = np.flatnonzero(result.heldout & np.isfinite(result.margins))
    h = info["window"]
    for row in k[::10]:
        # the gradients over the window's steps, averaged (the window's change is their sum)
        ys, rs = y[row + 1:row + h + 1][:, post], r_pre[row + 1:row + h + 1][:, pre]
        fitted = np.mean(rs * sum(t * (ys / scale) ** p for p, t in enumerate(c)), axis=0)
        planted = np.mean(-rs * ys * (ys - 10.0), axis=0)
        assert fitted @ planted / np.linalg.norm(fitted) / np.linalg.norm(planted) >= 0.95


def test_short_trajectory_skips_discovery_without_failing(tmp_path):
    path = tmp_path / "short.npz"
    np.savez(path, time=np.arange(3.0), weights=np.array([[0.0, 1.0], [0.1, 0.9], [0.2, 0.8]]))
    from plasticity.analysis import analyze_file, format_table

    doc = analyze_file(path)
    assert "too few" in doc["discovery"]["skipped"] and doc["results"] == []
    assert "loss discovery skipped" in format_table(doc)
