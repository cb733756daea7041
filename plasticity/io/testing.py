"""A minimal run-file writer for tests, benchmarks and examples: whole arrays at once,
independent of the streaming :class:`~plasticity.io.writer.RunFile`."""

import numpy as np

from .codecs import write_input_stats
from .layout import Layout


def config_toml(rule_name, params, n_pre, n_post, model="linear_rate", name="synthetic", seed=1):
    """A small resolved config (TOML text) as the runner stores it in ``/config``."""
    lines = [f'name = "{name}"', f"seed = {int(seed)}", "", "[network]", f'model = "{model}"',
             f"n_pre = {n_pre}", f"n_post = {n_post}", "", "[rule]", f'name = "{rule_name}"']
    lines += [f"{k} = {float(v)!r}" for k, v in params.items()]
    return "\n".join(lines) + "\n"


def write_run_file(path, time, weights, *, rule_name, params, stats, n_pre, n_post, pre=None,
                   post=None, state=None, status="complete", model="linear_rate", chunk=None,
                   compression=True, seed=1):
    """Write a complete run file in one go (the layout of :class:`RunFile`, written
    independently of it, so a mismatch between the reader and the recorder is caught).

    ``weights`` (T, S) in synapse order ``pre``, ``post`` (default: all-to-all,
    post-major); ``state`` a dict ``{name: (T, n_post)}``.
    """
    import h5py

    weights = np.asarray(weights, float)
    T, S = weights.shape
    if pre is None:
        layout = Layout.dense_full(n_pre, n_post)
        pre, post = layout.pre, layout.post
    row_bytes = 8 * max(1, S)
    chunk = chunk or max(1, min(4096, (1 << 20) // row_bytes))
    extra = dict(compression="gzip", compression_opts=1, shuffle=True) if compression else {}
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "plasticity-run"
        f.attrs["format_version"] = 1
        f.attrs["status"] = status
        f.attrs["rule"] = rule_name
        f.attrs["model"] = model
        f.attrs["seed"] = int(seed)
        f["config"] = config_toml(rule_name, params, n_pre, n_post, model, seed=seed)
        f.create_dataset("time", data=np.asarray(time, float), maxshape=(None,))
        f.create_dataset("weights", data=weights, maxshape=(None, S),
                         chunks=(min(chunk, T), max(1, S)), **extra)
        f["synapses/pre"] = np.asarray(pre, "i8")
        f["synapses/post"] = np.asarray(post, "i8")
        for name, values in (state or {}).items():
            f.create_dataset(f"state/{name}", data=np.asarray(values, float))
        if stats is not None:
            write_input_stats(f.create_group("inputs"), stats)
    return path
