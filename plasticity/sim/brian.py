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

The only difference it makes: the ``brian2`` namespace lacks pyplot's names
(``plot``, ``show``, …), so ``from brian2 import *`` then brings no plotting functions.
That is why the command line uses it (``plasticity run`` never plots and runs no user
code after the import), while importing :mod:`plasticity.sim` from a notebook leaves
Brian2's import alone. If Brian2 or matplotlib is already imported, nothing changes.
"""

import sys

#: the modules Brian2's import would load only to re-export or version-check them
_HIDDEN = ("pylab", "matplotlib")


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
