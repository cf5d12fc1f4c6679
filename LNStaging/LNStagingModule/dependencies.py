"""Python dependencies installed on first use (after asking), never at import, never replacing Slicer's own
numpy / SimpleITK / vtk. torch comes from the PyTorch extension (PyTorchUtils), not from this file."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Iterable

REQUIREMENTS_FILE = Path(__file__).resolve().parents[1] / "Resources" / "requirements.txt"
PROTECTED = ("numpy", "SimpleITK", "vtk", "torch")  # Slicer's own, or the PyTorch extension's


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
    """Pins of the protected packages as installed now (a pip constraints file): pip may not touch them."""
    lines = []
    for name in PROTECTED:
        try:
            lines.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return "\n".join(lines) + "\n"


def install(requirements: list[str]) -> None:
    """Install inside Slicer: slicer.pydeps.pip_ensure (Slicer >= 5.11) or slicer.util.pip_install with a
    constraints file. The caller has asked the user first."""
    import tempfile

    import slicer

    if protected_in(requirements):
        raise ValueError(f"refusing to install Slicer's own packages: {protected_in(requirements)}")
    try:
        import slicer.pydeps as pydeps
    except ImportError:
        pydeps = None
    if pydeps is not None and hasattr(pydeps, "pip_ensure"):
        from packaging.requirements import Requirement

        pydeps.pip_ensure([Requirement(r) for r in requirements], skip_packages=list(PROTECTED), requester="LNStaging")
        return
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write(constraints_text())
    slicer.util.pip_install(["-c", fh.name, *requirements])
