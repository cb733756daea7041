"""Importing Brian2 without matplotlib, for processes that never plot.

Brian2's package ``__init__`` starts with ``from pylab import *`` (inside
``try/except ImportError``, falling back to NumPy's namespace when matplotlib is
missing), and its ``Quantity`` class body imports ``matplotlib`` to check for one old
version. Neither is used to simulate anything, but together they import matplotlib and
pyplot, which is 0.5–1 s of every ``plasticity run`` on a typical machine: a good part
of the whole start-up.

:func:`import_brian2` imports Brian2 with ``pylab`` and ``matplotlib`` made
unimportable for the duration of that import only (a ``None`` entry in
``sys.modules`` makes ``import`` raise :class:`ImportError`, which is exactly the case
Brian2 handles: matplotlib not installed). The entries are removed again afterwards,
so matplotlib stays importable for everything that follows.

``pytest`` is hidden the same way: Brian2's ``brian2.tests`` imports it (a few hundred
ms) only for ``brian2.test()``, its own test suite, which then reports pytest missing.

The only difference it makes: the ``brian2`` namespace lacks pyplot's names
(``plot``, ``show``, …), so ``from brian2 import *`` then brings no plotting functions.
That is why the command line uses it (``plasticity run`` never plots and runs no user
code after the import), while importing :mod:`plasticity.sim` from a notebook leaves
Brian2's import alone. If Brian2 or matplotlib is already imported, nothing changes.
"""

import json
import os
import shutil
import sys
from pathlib import Path

#: the modules Brian2's import would load only to re-export or version-check them, or
#: for its own test suite
_HIDDEN = ("pylab", "matplotlib", "pytest", "_pytest")


def import_brian2():
    """Import and return :mod:`brian2` without importing matplotlib (see the module)."""
    if "brian2" in sys.modules:
        return sys.modules["brian2"]
    hidden = [name for name in _HIDDEN if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None       # `import name` now raises ImportError
    try:
        import brian2
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    return brian2


def prepare_run_process():
    """What ``plasticity run`` does before a Brian2 run: :func:`import_brian2`, then
    :func:`gc.freeze`. Brian2 calls ``gc.collect()`` before every run (and the
    standalone path once more); with Brian2, SymPy and the rest imported, each full
    collection walks a few hundred thousand objects that are never garbage (0.1–0.3 s
    each). Freezing moves them out of the collector's view; objects created later
    are collected as usual. Only for a process that exists to run (the command line),
    never on import of the package."""
    import gc

    brian2 = import_brian2()
    cache_brian2_templates(_cache_folder() / "templates")
    gc.collect()
    gc.freeze()
    return brian2


def _cache_folder():
    """plasticity's cache folder: ``$PLASTICITY_CACHE``, else ``$XDG_CACHE_HOME/plasticity``
    (``~/.cache/plasticity``); the standalone builds live in its ``standalone``."""
    root = os.environ.get("PLASTICITY_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "plasticity"


def cache_brian2_templates(folder):
    """Keep Brian2's compiled code templates in ``folder`` across processes.

    Brian2 renders its code (C++, Cython, the standalone project's main, makefile, …)
    from Jinja2 templates that every process compiles again on first use: about 0.2 s
    of each ``plasticity run`` on cpp_standalone. Jinja2's own
    :class:`~jinja2.FileSystemBytecodeCache` on Brian2's template environments keeps
    the compiled templates (keyed by the template's name and checked against its
    source, written atomically). Uses the ``templater.env`` of Brian2's code object
    classes; a Brian2 version without them is left as it is.
    """
    from jinja2 import FileSystemBytecodeCache

    try:
        from brian2.codegen.runtime.cython_rt import CythonCodeObject
        from brian2.codegen.runtime.numpy_rt import NumpyCodeObject
        from brian2.devices.cpp_standalone.codeobject import CPPStandaloneCodeObject
    except ImportError:
        return
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    cache = FileSystemBytecodeCache(str(folder))
    for cls in (CPPStandaloneCodeObject, CythonCodeObject, NumpyCodeObject):
        env = getattr(getattr(cls, "templater", None), "env", None)
        if env is not None and env.bytecode_cache is None:
            env.bytecode_cache = cache


def _flag_cache_path(root):
    return Path(root) / "compiler_flags.json"


def load_compiler_flag_checks(root):
    """Seed Brian2's record of which C++ compiler flags work from ``root``.

    Before its first C++ build in a process, Brian2 compiles a test program once per
    compiler flag (``-O3``, ``-march=native``, …) to drop unsupported ones: about
    0.1 s per flag, every process. The answers depend only on the compiler, so they
    are kept in ``root/compiler_flags.json``, keyed by the compiler's command and the
    size and modification time of its executable (a changed compiler is asked again).
    Uses Brian2's module-level ``cpp_prefs._compiler_flag_compatibility``; if a Brian2
    version lacks it, this does nothing and Brian2 checks as usual.
    """
    from brian2.codegen import cpp_prefs

    known = getattr(cpp_prefs, "_compiler_flag_compatibility", None)
    if not isinstance(known, dict):
        return
    try:
        saved = json.loads(_flag_cache_path(root).read_text())
    except (OSError, ValueError):
        return
    for compiler, stamp, flag, works in saved if isinstance(saved, list) else ():
        if _compiler_stamp(compiler) == stamp:
            known.setdefault((compiler, flag), bool(works))


def save_compiler_flag_checks(root):
    """Store Brian2's compiler flag checks under ``root`` (see
    :func:`load_compiler_flag_checks`); errors writing the file are ignored."""
    from brian2.codegen import cpp_prefs

    known = getattr(cpp_prefs, "_compiler_flag_compatibility", None)
    if not isinstance(known, dict) or not known:
        return
    rows = [[compiler, _compiler_stamp(compiler), flag, bool(works)]
            for (compiler, flag), works in known.items()]
    path = _flag_cache_path(root)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(rows))
        os.replace(temporary, path)        # atomic: concurrent runs never read half a file
    except OSError:
        pass


def _compiler_stamp(command):
    """Size and mtime of the compiler's executable (None if it cannot be found)."""
    executable = shutil.which(command.split()[0]) if command.split() else None
    if executable is None:
        return None
    info = os.stat(executable)
    return [info.st_size, info.st_mtime_ns]
