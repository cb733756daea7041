"""``plasticity_randn()``: the standard normal draws of cpp_standalone programs (NumPy's
ziggurat linked into the program). Built and run in a child process (Brian2's device
is global state), into a temporary folder."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy import stats

from plasticity.sim.normal import numpy_random_paths

pytestmark = pytest.mark.skipif(numpy_random_paths() is None,
                                reason="this NumPy ships no libnpyrandom")

PROGRAM = textwrap.dedent("""
    import json, sys
    import brian2 as b2
    from plasticity.sim.normal import normal_function

    folder, seed = sys.argv[1], int(sys.argv[2])
    b2.set_device("cpp_standalone", directory=folder, build_on_run=True)
    b2.seed(seed)
    func = normal_function()
    groups = [b2.NeuronGroup(500, "x : 1", name=f"g{j}", namespace={"plasticity_randn": func})
              for j in range(2)]
    for group in groups:
        group.run_regularly("x = plasticity_randn()", when="start")
    monitors = [b2.StateMonitor(group, "x", record=True, when="end") for group in groups]
    b2.Network(*groups, *monitors).run(40 * b2.defaultclock.dt)
    print(json.dumps([m.x[:].ravel().tolist() for m in monitors]))
""")


def _draws(tmp_path, seed, name):
    done = subprocess.run([sys.executable, "-c", PROGRAM, str(tmp_path / name), str(seed)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return np.array(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.slow
def test_standalone_normal_draws(tmp_path):
    first = _draws(tmp_path, 11, "a")
    assert first.shape == (2, 20_000)
    for draws in first:
        # 20 000 draws: a wrong scale or shift would be seen far beyond these bounds
        assert abs(draws.mean()) < 4 / np.sqrt(draws.size)
        assert abs(draws.var() - 1) < 4 * np.sqrt(2 / draws.size)
        assert stats.kstest(draws, "norm").pvalue > 1e-3
    # two code objects: two different streams, uncorrelated
    assert not np.array_equal(first[0], first[1])
    assert abs(np.corrcoef(first[0], first[1])[0, 1]) < 4 / np.sqrt(first.shape[1])
    # the seed given to brian2.seed decides the draws
    np.testing.assert_array_equal(_draws(tmp_path, 11, "b"), first)
    assert not np.array_equal(_draws(tmp_path, 12, "c")[0], first[0])
