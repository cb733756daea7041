"""Say "compiling (first run only)" on stderr while Brian2 builds code it has not cached.

The first run of a model spends seconds to minutes compiling (Cython extensions on
the runtime device, a C++ program on cpp_standalone) with nothing on screen. Brian2
caches what it builds, so later runs start at once. :func:`install` wraps the two
places where Brian2 decides to build — the Cython extension manager's module loader
(it builds when the module file is missing) and the standalone device's ``build``
(it compiles when the folder holds no program yet) — and prints the line once per
process, before the build starts. Nothing else changes: the wrapped methods are
called as they were.
"""

import os
import sys

_said = False


def _say(stream):
    global _said
    if not _said:
        _said = True
        print("plasticity: compiling (first run only) …", file=stream, flush=True)


def install(stream=None):
    """Wrap Brian2's build entry points (idempotent). Safe if Brian2's internals differ:
    then nothing is wrapped and no notice is printed."""
    stream = stream or sys.stderr
    try:
        from brian2.codegen.runtime.cython_rt.extension_manager import CythonExtensionManager
        from brian2.devices.cpp_standalone.device import CPPStandaloneDevice
    except ImportError:
        return False
    load = CythonExtensionManager._load_module
    if not getattr(load, "_plasticity_notice", False):
        def _load_module(self, module_path, *args, **kwargs):
            if not os.path.isfile(module_path):
                _say(stream)
            return load(self, module_path, *args, **kwargs)
        _load_module._plasticity_notice = True
        CythonExtensionManager._load_module = _load_module
    build = CPPStandaloneDevice.build
    if not getattr(build, "_plasticity_notice", False):
        def _build(self, *args, **kwargs):
            directory = kwargs.get("directory", args[0] if args else "output")
            program = "main.exe" if os.name == "nt" else "main"
            if kwargs.get("compile", True) and not os.path.isfile(os.path.join(str(directory), program)):
                _say(stream)
            return build(self, *args, **kwargs)
        _build._plasticity_notice = True
        CPPStandaloneDevice.build = _build
    return True
