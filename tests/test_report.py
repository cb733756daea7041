"""Reports: the page of a run, of a sweep, of a comparison; the CLI that explains itself.

Every page is parsed (html.parser): it parses, every image is a data: URI, nothing is
loaded from an http(s) address, and the verdict table holds the numbers that
``plasticity analyze --json`` prints for the same file.
"""

import copy
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tomli_w

from conftest import BASE_CONFIG, EXPERIMENTS, ROOT, last_line
from report_support import check_self_contained, check_verdicts, parse_page, write_sweep

from plasticity.cli import main


def run_cli(capsys, *args):
    """``plasticity ARGS`` in this process: (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as stop:             # argparse's own usage errors
        code = stop.code
    out = capsys.readouterr()
    return code, out.out, out.err


def tiny_run(tmp_path, capsys, name="tiny", seed=3, overrides=()):
    cfg = copy.deepcopy(BASE_CONFIG)
    cfg["name"] = name
    path = tmp_path / f"{name}.toml"
    path.write_text(tomli_w.dumps(cfg))
    (tmp_path / "runs").mkdir(exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix=f"{name}-{seed}-", dir=tmp_path / "runs"))
    args = ["run", path, "--out", out, "-q", "--seed", seed]
    for o in overrides:
        args += ["--set", o]
    assert main([str(a) for a in args]) == 0
    capsys.readouterr()                     # the run's own output
    (run,) = out.glob("*.h5")
    return run


def analyze_json(capsys, path):
    code, out, err = run_cli(capsys, "analyze", path, "--json")
    assert code == 0, err
    return json.loads(out)


# -- run pages ------------------------------------------------------------------------

def test_run_page_is_self_contained_and_holds_the_verdicts(tmp_path, capsys):
    run = tiny_run(tmp_path, capsys)
    code, out, err = run_cli(capsys, "report", run)
    assert code == 0, err
    page_path = Path(last_line(out))
    assert page_path == run.with_suffix(".html") and page_path.exists()
    page = parse_page(page_path)
    check_self_contained(page)
    check_verdicts(page, analyze_json(capsys, run))
    text = " ".join(page.text)
    # the config with units, the versions, the status, the verdict in words
    assert "10 ms" in text and "record.every" in text
    assert "numpy" in text and "complete" in text
    assert "descends" in text
    # Oja: the alignment figure is there, no figure of another experiment
    assert "Alignment with the top eigenvector" in text
    assert "BCM" not in text and "raster" not in text.lower()


def test_run_page_png_format_writes_the_figures_only(tmp_path, capsys):
    run = tiny_run(tmp_path, capsys)
    code, out, err = run_cli(capsys, "report", run, "--format", "png")
    assert code == 0, err
    written = [Path(line) for line in out.split()]
    assert written and all(p.suffix == ".png" and p.stat().st_size > 1000 for p in written)
    assert not run.with_suffix(".html").exists()
    assert any(p.name.endswith("_eigenvector.png") for p in written)


def test_report_of_an_npz_with_a_loss(tmp_path, capsys):
    """A trajectory from elsewhere: --loss certifies it, the page shows the verdict."""
    t = np.arange(0, 3, 0.01)
    H = np.diag([4.0, 2.0, 1.0, 0.5, 0.25])
    w = np.zeros((t.size, 5))
    w[0] = 1.0
    for k in range(1, t.size):
        w[k] = w[k - 1] - 0.01 * 0.5 * H @ w[k - 1]
    path = tmp_path / "traj.npz"
    np.savez(path, time=t, weights=w)
    loss = f"{ROOT / 'examples' / 'quadratic_loss.py'}:quadratic"
    code, out, err = run_cli(capsys, "report", path)
    assert code == 0, err        # no rule, no loss: the page says why, no verdict
    assert "pass --loss" in parse_page(last_line(out)).source
    code, out, err = run_cli(capsys, "report", path, "--loss", loss)
    assert code == 0, err
    page = parse_page(last_line(out))
    check_self_contained(page)
    code, out2, _ = run_cli(capsys, "analyze", path, "--loss", loss, "--json")
    check_verdicts(page, json.loads(out2))


@pytest.mark.parametrize("name", ["lti_nonnormal", "momentum", "feedback_alignment", "bcm_slow_meanfield"])
def test_page_of_each_dynamics_experiment(tmp_path, capsys, name):
    """The NumPy experiments (no Brian2): quick, so not marked slow."""
    out = tmp_path / name
    short = {"lti_nonnormal": 4, "momentum": 10, "feedback_alignment": 4, "bcm_slow_meanfield": 40}[name]
    assert main(["run", str(EXPERIMENTS / f"{name}.toml"), "--out", str(out), "-q",
                 "--set", f"simulation.duration={short}"]) == 0
    (run,) = out.glob("*.h5")
    _check_experiment_page(run, capsys)


def _check_experiment_page(run, capsys):
    code, out, err = run_cli(capsys, "report", run)
    assert code == 0, err
    page = parse_page(last_line(out))
    check_self_contained(page)
    document = analyze_json(capsys, run)
    if document["results"]:
        check_verdicts(page, document)
    return page


SPIKING_SHORT = {"triplet_bcm": "3 s", "stdp_song2000": "3 s", "stdp_patterns": "2 s",
                 "ei_network_stdp": "0.3 s", "ei_network_large": "0.1 s"}
RATE_SHORT = {"oja_pca": "10 s", "hebbian_variance": "10 s", "bcm_selectivity": "10 s",
              "bcm_slow_threshold": "20 s"}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RATE_SHORT) + sorted(SPIKING_SHORT))
def test_page_of_each_brian2_experiment(tmp_path, capsys, name):
    duration = {**RATE_SHORT, **SPIKING_SHORT}[name]
    out = tmp_path / name
    assert main(["run", str(EXPERIMENTS / f"{name}.toml"), "--out", str(out), "-q",
                 "--set", f'simulation.duration="{duration}"', "--device", "runtime"]) == 0
    (run,) = out.glob("*.h5")
    page = _check_experiment_page(run, capsys)
    text = " ".join(page.text)
    expected = {"oja_pca": "Alignment with the top eigenvector", "hebbian_variance": "Alignment with the top eigenvector",
                "bcm_selectivity": "BCM: responses to each pattern", "bcm_slow_threshold": "BCM: responses to each pattern",
                "triplet_bcm": "Triplet rule: weight change against the postsynaptic rate",
                "stdp_song2000": "Weight histogram at the start, middle and end",
                "stdp_patterns": "Input and output firing rates", "ei_network_stdp": "Spike raster",
                "ei_network_large": "Firing rates of the network's neurons"}[name]
    assert expected in text


def test_every_shipped_experiment_has_a_page_test():
    shipped = {p.stem for p in EXPERIMENTS.glob("*.toml")}
    tested = set(RATE_SHORT) | set(SPIKING_SHORT) | {"lti_nonnormal", "momentum", "feedback_alignment",
                                                     "bcm_slow_meanfield"}
    assert shipped == tested


# -- sweep and compare pages ----------------------------------------------------------

STABILITY = {"0.02 Hz": -0.1, "0.05 Hz": 0.05, "0.1 Hz": 0.2}


def make_sweep(tmp_path, capsys):
    runs = [(eta, seed, tiny_run(tmp_path, capsys, seed=seed, overrides=[f'rule.eta="{eta}"']))
            for eta in STABILITY for seed in (1, 2)]
    return write_sweep(tmp_path / "sweep_eta", runs, STABILITY)


def test_sweep_page(tmp_path, capsys):
    sweep = make_sweep(tmp_path, capsys)
    code, out, err = run_cli(capsys, "report", sweep)
    assert code == 0, err
    assert Path(last_line(out)) == sweep / "report.html"
    page = parse_page(sweep / "report.html")
    check_self_contained(page)
    text = " ".join(page.text)
    # phase diagram, ψ/κ curves and the stability figure; the zero crossing between
    # 0.02 and 0.05 Hz: linear interpolation of -0.1 → 0.05 gives 0.04 Hz
    assert "Verdict over the grid" in text and "ψ and κ_min against rule.eta" in text
    assert "Zero crossing: ≈ 0.04" in text
    # each run linked to its page, which exists
    pages = [sweep / href for href in page.links]
    assert len({p.name for p in pages}) == 6
    for p in pages:
        assert p.exists() and p.suffix == ".html"
        check_self_contained(parse_page(p))


def test_compare_page(tmp_path, capsys, monkeypatch):
    a = tiny_run(tmp_path, capsys, seed=1)
    b = tiny_run(tmp_path, capsys, seed=2, overrides=['rule.eta="0.1 Hz"'])
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "compare", a, b)
    assert code == 0, err
    page = parse_page(tmp_path / last_line(out))
    check_self_contained(page)
    assert len(page.images) == 1
    header, *rows = page.verdict_rows
    docs = [analyze_json(capsys, p) for p in (a, b)]
    assert len(rows) == sum(len(d["results"]) for d in docs)
    assert {r[0] for r in rows} == {"tiny s1", "tiny s2"}


# -- bad input --------------------------------------------------------------------------

@pytest.mark.parametrize("args, expected", [
    (["report", "{tmp}/missing.h5"], "no such file"),
    (["report", "{tmp}/notes.h5"], "not an HDF5 file"),
    (["report", "{tmp}"], "no sweep.csv"),
    (["report", "{tmp}/notes.h5", "--format", "svg"], "invalid choice"),
    (["compare", "{tmp}/missing.h5"], "no such file"),
    (["compare", "{tmp}/notes.h5", "{tmp}/missing.h5"], "not an HDF5 file"),
    (["compare"], "required"),
])
def test_report_and_compare_bad_input(tmp_path, capsys, args, expected):
    (tmp_path / "notes.h5").write_text("not hdf5 at all\n")
    before = sorted(tmp_path.iterdir())
    code, out, err = run_cli(capsys, *[a.format(tmp=tmp_path) for a in args])
    assert code == 2
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err
    assert sorted(tmp_path.iterdir()) == before


# -- the CLI explains itself ------------------------------------------------------------

def test_plasticity_alone_prints_usage(capsys):
    code, out, err = run_cli(capsys)
    assert code == 0
    assert out.startswith("usage: plasticity") and "report" in out and "compare" in out


def test_every_option_is_documented():
    from plasticity.cli import _parser

    parser, sub = _parser()
    for name, command in sub.choices.items():
        text = command.format_help()
        for action in command._actions:
            if action.help is None or action.help == "==SUPPRESS==":
                pytest.fail(f"plasticity {name}: {action.option_strings or action.dest} has no help")
            for option in action.option_strings:
                assert option in text


def test_analyze_prints_a_legend_and_explains(tmp_path, capsys):
    run = tiny_run(tmp_path, capsys)
    code, out, err = run_cli(capsys, "analyze", run)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert any(line.startswith("moving: ") and "resid cI" in line for line in lines)
    code, out, err = run_cli(capsys, "analyze", "--explain")
    assert code == 0
    for verdict in ("gradient", "natural-gradient-constant", "natural-gradient", "not-descent",
                    "no-loss-exists", "fixed-point"):
        assert re.search(rf"^  {re.escape(verdict)}\s+\S", out, re.M), verdict


def test_validate_prints_units_seed_and_cost(capsys):
    config = EXPERIMENTS / "triplet_bcm.toml"
    code, out, err = run_cli(capsys, "validate", config, "--seed", "7", "--set", 'simulation.duration="5 s"')
    assert code == 0, err
    assert re.search(r"^seed\s+7$", out, re.M)
    assert re.search(r"^simulation\.duration\s+5 s$", out, re.M)
    assert re.search(r"^rule\.tau_plus\s+16\.8 ms$", out, re.M)
    assert re.search(r"^inputs\.post_rates\s+\[2 Hz, 5 Hz", out, re.M)
    assert "network.init.low" not in out          # a constant init ignores the uniform bounds
    assert "synapses: 200" in out and "steps: 50,000" in out and "records: 6 " in out


def test_set_errors_name_set(capsys):
    code, out, err = run_cli(capsys, "validate", EXPERIMENTS / "triplet_bcm.toml",
                             "--set", "rule.tau_plus=abc")
    assert code == 2
    assert err.startswith("plasticity: error: --set rule.tau_plus=abc: ") and "triplet_bcm.toml" not in err


def test_misspelt_section_is_named(tmp_path, capsys):
    cfg = copy.deepcopy(BASE_CONFIG)
    cfg["simulaton"] = cfg.pop("simulation")
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(cfg))
    code, out, err = run_cli(capsys, "validate", path)
    assert code == 2
    assert "unknown section 'simulaton', did you mean 'simulation'?" in err


def test_finished_run_prints_a_summary_line(tmp_path, cli, write_config):
    cfg = copy.deepcopy(BASE_CONFIG)
    done = cli("run", write_config(cfg), "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    summary = [line for line in done.stderr.splitlines() if line.startswith("plasticity: complete")]
    assert summary and re.search(r"device runtime, 51 records, wall time \d+\.\d s", summary[0])


def test_report_never_imports_brian2(tmp_path):
    """The report reads run files only: a page is made without loading Brian2."""
    import subprocess

    t = np.linspace(0, 1, 50)
    np.savez(tmp_path / "t.npz", time=t, weights=np.exp(-t)[:, None] * np.ones((1, 5)))
    code = ("import sys; from plasticity.report import write_run_report; "
            f"write_run_report({str(tmp_path / 't.npz')!r}, "
            f"losses=[{str(ROOT / 'examples' / 'quadratic_loss.py')!r} + ':quadratic']); "
            "assert 'brian2' not in sys.modules, 'brian2 loaded'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# -- a real browser ---------------------------------------------------------------------

def chromium():
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def render(page, tmp_path, name):
    """Screenshot ``page`` in headless Chromium: ``(screenshot path, console lines)``.
    Console messages come on stderr as ``...:CONSOLE(line)] "message", source: ...``."""
    import subprocess

    shot = tmp_path / f"{name}.png"
    done = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={tmp_path / ('profile-' + name)}", "--enable-logging=stderr", "--v=0",
         f"--screenshot={shot}", "--window-size=1200,2000", Path(page).resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert shot.exists(), done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return shot, console


def not_blank(shot):
    """The share of pixels that differ from the most common colour (the background)."""
    import matplotlib.image as mpimg

    rgb = (mpimg.imread(shot)[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    colours, counts = np.unique(rgb, axis=0, return_counts=True)
    return 1.0 - counts.max() / counts.sum()


@pytest.mark.skipif(chromium() is None, reason="headless Chromium not installed "
                    "(Debian: apt-get install chromium); the browser test is skipped")
def test_pages_render_in_chromium(tmp_path, capsys):
    # the detector itself: a page with a console error and a missing image is caught
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><p>x</p><img src="missing.png"><script>console.error("boom")</script></body></html>')
    _, console = render(bad, tmp_path, "bad")
    assert any("boom" in line for line in console), console
    blank = tmp_path / "blank.html"
    blank.write_text("<html><body></body></html>")
    shot, _ = render(blank, tmp_path, "blank")
    assert not_blank(shot) < 0.001
    # the page of one run and of one sweep
    sweep = make_sweep(tmp_path, capsys)
    assert run_cli(capsys, "report", sweep)[0] == 0
    run_page = next((sweep / "runs").glob("*.html"))
    for name, page in (("run", run_page), ("sweep", sweep / "report.html")):
        shot, console = render(page, tmp_path, name)
        assert console == [], console
        assert not_blank(shot) > 0.05, f"{name} page renders (nearly) blank"


# -- results of the statistics layer, when a file has them --------------------------------

def test_page_shows_consistency_bases_and_sample_path_windows(tmp_path, capsys):
    """Fields other analyses may store (the consistency test, the basis of each result,
    per-window sample-path arrays) are rendered when present."""
    import h5py

    run = tiny_run(tmp_path, capsys)
    document = analyze_json(capsys, run)
    document["consistency"] = {"statistic": 12.5, "dof": 8, "p_value": 0.13, "consistent": True,
                               "window": 5}
    for r, basis in zip(document["results"], ("expectation", "sample-path", "ensemble")):
        r["basis"] = basis
    with h5py.File(run, "r+") as f:
        f["analysis"].attrs["document"] = json.dumps(document)
        g = f["analysis"][document["results"][0]["loss"]]
        g["sample_path_time"] = np.linspace(0.05, 0.45, 5)
        g["sample_path_psi_deg"] = np.array([40.0, 42.0, 39.0, 45.0, 41.0])
    code, out, err = run_cli(capsys, "report", run)
    assert code == 0, err
    page = parse_page(last_line(out))
    check_self_contained(page)
    text = " ".join(page.text)
    assert "agree with the rule's expected drift" in text and "p = 0.13" in text
    header = page.verdict_rows[0]
    assert "basis" in header
    bases = [row[header.index("basis")] for row in page.verdict_rows[1:]]
    assert bases[:3] == ["in expectation", "along the path", "over seeds"]
    assert "Along the path: windows of the simulated weight changes" in text


def test_compile_notice_is_said_once_and_only_when_building(monkeypatch):
    import io

    from brian2.codegen.runtime.cython_rt.extension_manager import CythonExtensionManager

    from plasticity.sim import compile_notice

    calls = []
    monkeypatch.setattr(CythonExtensionManager, "_load_module", lambda self, path, *a, **k: calls.append(path))
    monkeypatch.setattr(compile_notice, "_said", False)
    stream = io.StringIO()
    compile_notice.install(stream)
    CythonExtensionManager._load_module(None, __file__)                # cached: silent
    assert stream.getvalue() == ""
    CythonExtensionManager._load_module(None, "/nonexistent/module.so")  # to be built
    CythonExtensionManager._load_module(None, "/nonexistent/other.so")
    assert stream.getvalue() == "plasticity: compiling (first run only) …\n"
    assert calls == [__file__, "/nonexistent/module.so", "/nonexistent/other.so"]
