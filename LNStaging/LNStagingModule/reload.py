"""Developer-mode Reload: the library is reloaded too, not only the module file (Slicer's reloadScriptedModule
re-executes LNStaging.py only, so LNStagingLib and LNStagingModule would stay the already-imported versions)."""

from __future__ import annotations

import sys

RELOADED_PACKAGES = ("LNStagingLib", "LNStagingModule")


def forget_library_modules(modules: dict | None = None) -> list[str]:
    """Remove LNStagingLib and LNStagingModule (and their submodules) from ``modules`` (sys.modules) so the next
    import reads their files again; returns the names removed."""
    modules = sys.modules if modules is None else modules
    names = [name for name in modules if name.split(".")[0] in RELOADED_PACKAGES]
    for name in names:
        del modules[name]
    return sorted(names)
