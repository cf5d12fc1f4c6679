"""Python dependencies installed on first use (after asking), never at import, never replacing Slicer's own
numpy / SimpleITK / vtk / pydicom / scipy (a pip constraints file pins them at the installed versions). torch comes
from the PyTorch extension (PyTorchUtils), not from this file."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Iterable

REQUIREMENTS_FILE = Path(__file__).resolve().parents[1] / "Resources" / "requirements.txt"
PROTECTED = ("numpy", "SimpleITK", "vtk", "pydicom", "torch")  # Slicer's own, or the PyTorch extension's
# Pinned at their installed versions while installing (Slicer ships scipy and pillow too): never up- or downgraded.
CONSTRAINED = (*PROTECTED, "scipy", "pillow")


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def read_requirements(path: Path | str = REQUIREMENTS_FILE) -> list[str]:
    lines = []
    for raw in Path(path).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def requirement_name(requirement: str) -> str:
    try:
        from packaging.requirements import Requirement

        return Requirement(requirement).name
    except Exception:  # packaging missing or unusual line: take the leading name
        import re

        return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]


def protected_in(requirements: Iterable[str]) -> list[str]:
    protected = {_normalise(p) for p in PROTECTED}
    return [r for r in requirements if _normalise(requirement_name(r)) in protected]


def missing(requirements: Iterable[str]) -> list[str]:
    """Requirements not installed, or installed in a version outside the specifier."""
    out = []
    for requirement in requirements:
        name = requirement_name(requirement)
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            out.append(requirement)
            continue
        try:
            from packaging.requirements import Requirement

            if not Requirement(requirement).specifier.contains(installed, prereleases=True):
                out.append(requirement)
        except ImportError:
            pass
    return out


def constraints_text() -> str:
    """Pins of Slicer's own packages as installed now (a pip constraints file): pip may not touch them."""
    lines = []
    for name in CONSTRAINED:
        try:
            lines.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return "\n".join(lines) + "\n"


def write_constraints(folder: Path | str | None = None) -> Path:
    import tempfile

    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="LNStaging-pip-"))
    path = folder / "constraints.txt"
    path.write_text(constraints_text())
    return path


def install(requirements: list[str]) -> bool:
    """Install inside Slicer with Slicer's own numpy/SimpleITK/vtk/pydicom/scipy pinned by a constraints file:
    ``slicer.packaging.pip_ensure`` (Slicer 5.12; it offers the restart itself), else ``slicer.util.pip_install``
    (Slicer 5.10). Returns True when the caller should offer a restart. The caller has asked the user first."""
    import slicer

    if protected_in(requirements):
        raise ValueError(f"refusing to install Slicer's own packages: {protected_in(requirements)}")
    constraints = write_constraints()
    try:
        from slicer import packaging as slicer_packaging
    except ImportError:
        slicer_packaging = None
    if slicer_packaging is not None and hasattr(slicer_packaging, "pip_ensure"):
        slicer_packaging.pip_ensure(list(requirements), constraints=str(constraints), prompt_install=False,
                                    prompt_restart=True, requester="LNStaging")
        return False
    slicer.util.pip_install(["-c", str(constraints), *requirements])
    return True
