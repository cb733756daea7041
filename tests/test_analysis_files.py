"""Run files: reading (the run-file layout, minimal HDF5/.npz), analyze_file's JSON
document, the /analysis group, bad files, figures, and no Brian2 import."""

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from plasticity.analysis import (Layout, analyze_file, format_table, open_run)
from plasticity.report import write_run_report
from plasticity.analysis.synthetic import euler_trajectory, write_run_file
from plasticity.errors import BadInput
from plasticity.inputs import InputStats
from plasticity.rules import get_rule

N_PRE, N_POST = 6, 2


def make_run(path, rule_name="oja", steps=300, status="complete", stats=None, pre_major=False,
             state=False, **params):
    rng = np.random.default_rng(0)
    stats = stats or InputStats.gaussian(N_PRE, rng, spectrum=[4, 2, 1, 0.5, 0.5, 0.5],
                                         rotation="random")
    rule = get_rule(rule_name)
    params = rule.resolve({"eta": 0.01, **params})
    layout = Layout.dense_full(N_PRE, N_POST, state=("theta",) if state else ())
    w0 = rng.uniform(0.05, 0.3, layout.size)
    t, R = euler_trajectory(rule, params, stats, layout, w0, 0.5, steps)
    weights = R[:, :N_PRE * N_POST]
    pre, post = layout.pre, layout.post
    if pre_major:   # Brian2's order: synapse i*n_post + j
        order = np.lexsort((post, pre))
        weights, pre, post = weights[:, order], pre[order], post[order]
    st = {"theta": R[:, N_PRE * N_POST:]} if state else None
    write_run_file(path, t, weights, rule_name=rule_name, params=params, stats=stats, n_pre=N_PRE,
                   n_post=N_POST, pre=pre, post=post, state=st, status=status, chunk=16)
    return path


def test_oja_run_document_and_storage(tmp_path):
    path = make_run(tmp_path / "oja.h5", pre_major=True)
    with h5py.File(path, "r") as f:
        before = f["weights"][()].copy()
        attrs = dict(f.attrs)
    doc = analyze_file(path)
    json.dumps(doc, allow_nan=False)              # strict JSON
    assert doc["rule"] == "oja" and doc["status"] == "complete" and doc["records"] == 301
    by_loss = {r["loss"]: r for r in doc["results"]}
    assert set(by_loss) == {"rayleigh", "norm", "combined"}
    r = by_loss["rayleigh"]
    for key in ("loss", "drift", "records", "descent_fraction", "psi_deg", "kappa_min",
                "constant_metric", "euclidean", "verdict"):
        assert key in r
    assert set(r["psi_deg"]) == {"median", "p95", "max"}
    assert r["drift"] == "expected" and r["descent_fraction"] == 1.0
    assert r["verdict"] == "natural-gradient" and r["euclidean"] is False
    assert by_loss["combined"]["descent_fraction"] == 1.0
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["weights"][()], before)
        assert {k: v for k, v in f.attrs.items()} == attrs
        g = f["analysis/rayleigh"]
        assert g["psi"].shape == (301,) and g.attrs["verdict"] == "natural-gradient"
        assert json.loads(g.attrs["summary"])["verdict"] == "natural-gradient"
        assert g["constant_metric"].shape == (12, 12)
    # analysing again replaces the group
    analyze_file(path, ["rayleigh"])
    table = format_table(doc)
    assert "rayleigh" in table and "natural-gradient" in table
    out = analyze_file(path, ["norm"])
    assert out["results"][0]["loss"] == "norm"


def test_hebbian_and_bcm_runs(tmp_path):
    doc = analyze_file(make_run(tmp_path / "h.h5", "hebbian", steps=60))
    assert doc["results"][0]["verdict"] == "gradient"
    stats = InputStats.from_patterns(2.0 * np.eye(4, N_PRE) + 0.1, transfer="relu")
    # slow threshold, logged θ
    doc = analyze_file(make_run(tmp_path / "bcm.h5", "bcm", steps=100, stats=stats, state=True,
                                tau_theta=5.0))
    (r,) = doc["results"]
    assert r["loss"] == "intrator_cooper" and r["drift"] == "expected"


def test_killed_run_uses_shorter_length(tmp_path):
    path = make_run(tmp_path / "killed.h5", status="running")
    with h5py.File(path, "r+") as f:
        t = f["time"][()]
        del f["time"]
        f.create_dataset("time", data=t[:250])
    with open_run(path) as run:
        assert run.n_records == 250 and run.status == "running"
        assert run.weights(240, 300).shape == (10, 12)
        assert sum(b - a for a, b in run.chunks(size=7)) == 250
    doc = analyze_file(path, ["rayleigh"])
    assert doc["results"][0]["records"] == 250 and doc["status"] == "running"


def test_minimal_formats(tmp_path):
    rng = np.random.default_rng(1)
    T, n = 200, 4
    t = np.arange(T) * 0.1
    W = np.exp(-t)[:, None] * rng.standard_normal(n)      # ẇ = −w: gradient of ½‖w‖²
    module = tmp_path / "user.py"
    module.write_text("import numpy as np\n"
                      "def half(w):\n    return 0.5 * np.sum(w * w, 1), w\n")
    spec = f"{module}:half"
    np.savez(tmp_path / "traj.npz", time=t, weights=W)
    doc = analyze_file(tmp_path / "traj.npz", [spec])
    (r,) = doc["results"]
    assert r["drift"] == "window" and r["window"] == 1 and r["verdict"] == "gradient"
    assert doc["stored"] is False
    with h5py.File(tmp_path / "traj.h5", "w") as f:
        f["time"] = t
        f["weights"] = W
        f["drift"] = -W
    doc = analyze_file(tmp_path / "traj.h5", [spec])
    assert doc["results"][0]["drift"] == "given" and doc["results"][0]["verdict"] == "gradient"
    with h5py.File(tmp_path / "traj.h5", "r") as f:
        assert "analysis/half/psi" in f
    # no rule and no loss: losses are discovered (ẇ = −w descends ½‖w‖², a separable loss)
    doc = analyze_file(tmp_path / "traj.npz")
    assert "discovered:separable" in doc["discovery"]["found"]
    found = {r["loss"]: r for r in doc["results"]}
    assert found["discovered:separable"]["verdict"] == "gradient"
    assert found["discovered:separable"]["heldout_descent_fraction"] == 1.0


def bad_files(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("hello\n")
    good = make_run(tmp_path / "good.h5")
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[:3000])
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f.attrs["format"] = "something-else"
        f["data"] = np.zeros(3)
    no_inputs = make_run(tmp_path / "noinputs.h5")
    with h5py.File(no_inputs, "r+") as f:
        del f["inputs"]
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as f:
        f["time"] = np.zeros(0)
        f["weights"] = np.zeros((0, 3))
    npz = tmp_path / "bad.npz"
    np.savez(npz, time=np.arange(3.0))
    backwards = tmp_path / "backwards.npz"
    np.savez(backwards, time=np.array([0.0, 2.0, 1.0]), weights=np.zeros((3, 2)))
    return {
        tmp_path / "missing.h5": "no such file",
        text: "not an HDF5 file",
        truncated: "h5",
        foreign: "not a plasticity run",
        no_inputs: "input statistics",
        empty: "no records",
        npz: "lacks the array 'weights'",
        backwards: "not strictly increasing",
        tmp_path: "directory",
    }


def test_unknown_rule_is_analysed_by_discovery(tmp_path):
    """A run of a rule this version does not know: its weights are still a trajectory."""
    bad_rule = make_run(tmp_path / "badrule.h5")
    with h5py.File(bad_rule, "r+") as f:
        f.attrs["rule"] = "nonsense"
    doc = analyze_file(bad_rule)
    assert "'nonsense' is not a built-in rule" in doc["note"] and "discovery" in doc


def test_bad_files_are_one_line_bad_input(tmp_path):
    for path, message in bad_files(tmp_path).items():
        with pytest.raises(BadInput) as info:
            analyze_file(path, ["rayleigh"] if "noinputs" in str(path) else None)
        text = str(info.value)
        assert message in text and "\n" not in text, (path, text)
    with pytest.raises(BadInput, match="unknown loss"):
        analyze_file(tmp_path / "good.h5", ["nope"])


def test_report_writes_pngs(tmp_path):
    path = make_run(tmp_path / "oja.h5", steps=100)
    paths = write_run_report(path, fmt="png")
    assert len(paths) >= 4
    for p in paths:
        data = open(p, "rb").read(8)
        assert data.startswith(b"\x89PNG")


def test_analysis_never_imports_brian2(tmp_path):
    path = make_run(tmp_path / "oja.h5", steps=50)
    code = ("import sys; import plasticity.analysis as a; import plasticity.report;"
            f"a.analyze_file({str(path)!r}); "
            "bad = [m for m in sys.modules if m.split('.')[0] == 'brian2']; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_spiking_rule_uses_logged_rates(tmp_path):
    rule = get_rule("stdp")
    params = rule.resolve({})
    T, n_pre = 20, 5
    t = np.arange(T) * 1.0
    weights = np.linspace(0.1, 0.2, T)[:, None] * np.ones(n_pre)
    path = tmp_path / "stdp.h5"
    write_run_file(path, t, weights, rule_name="stdp", params={}, stats=None, n_pre=n_pre, n_post=1)
    with h5py.File(path, "r+") as f:
        rates = np.full((T, n_pre), 15.0)
        rates[0] = np.nan
        f["rates/pre"] = rates
        post = np.full((T, 1), 10.0)
        post[0] = np.nan
        f["rates/post"] = post
        del f["config"]
        f["config"] = "[rule]\nname = \"stdp\"\n"
    module = tmp_path / "lin.py"
    module.write_text("import numpy as np\ndef lin(w):\n    return -w.sum(1), -np.ones_like(w)\n")
    doc = analyze_file(path, [f"{module}:lin"], drift="expected")
    (r,) = doc["results"]
    assert r["drift"] == "expected" and r["undefined_records"] == 1
    assert r["records"] == T
    assert params  # the defaults resolved


def test_metric_at_record(tmp_path):
    from plasticity.analysis import make_loss, metric_at

    path = make_run(tmp_path / "oja.h5", steps=40)
    doc = analyze_file(path, ["rayleigh"])
    with open_run(path) as run:
        loss = make_loss("rayleigh", run.stats, run.layout(with_state=False), "oja")
        M = metric_at(run, 5, loss)
    with h5py.File(path, "r") as f:
        assert M.psi == pytest.approx(f["analysis/rayleigh/psi"][5], rel=1e-10)
    assert doc["results"][0]["verdict"] == "natural-gradient"
