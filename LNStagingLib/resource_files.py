"""Where the tool's own data lives: Resources/ (model catalogue + schema, demo weights + model cards, demo case).

One answer for the three layouts the library runs in:
- an installed wheel: the package data folder ``LNStagingLib/Resources`` (pyproject.toml maps the repository's
  Resources/ there), located with importlib.resources;
- a source checkout, or the Slicer extension (its CMakeLists installs Resources/ beside LNStagingLib): the folder
  ``Resources`` next to the LNStagingLib folder.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from pathlib import Path

_MARKER = "Models.json"


@lru_cache(maxsize=1)
def resources_dir() -> Path:
    """The Resources folder holding Models.json; the checkout's path (for a clear error) when none is found."""
    package = Path(str(files("LNStagingLib"))).resolve()  # a folder: wheels and checkouts are not zipped
    inside, beside = package / "Resources", package.parent / "Resources"
    for folder in (inside, beside):
        if (folder / _MARKER).is_file():
            return folder
    return beside


def resource_path(*parts: str) -> Path:
    """A file or folder under Resources/, e.g. ``resource_path("DemoCase")``."""
    return resources_dir().joinpath(*parts)
