"""Check the API contract of Testing/test_slicer_api_contract.py against a Slicer *source* tree at a git ref.

There is no slicer-core wheel of 5.10, so for 5.10 the contract is checked by reading Slicer's headers: every
listed MRML method must appear in a header of the ref (as a declaration or a vtkSetMacro/vtkGetMacro/
vtkBooleanMacro name). Coarse (a whole-word match in any header, not in the class's own), so it catches removed or
renamed methods, not moved ones. A developer tool (needs a clone of github.com/Slicer/Slicer), not part of the test suite.

    python scripts/check_slicer_source_api.py /path/to/Slicer.git v5.10.0
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def contract() -> dict[str, list[str]]:
    tree = ast.parse((ROOT / "Testing" / "test_slicer_api_contract.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "CONTRACT":
            return ast.literal_eval(node.value)
    raise SystemExit("CONTRACT not found")


def header_has(git_dir: str, ref: str, method: str) -> bool:
    names = {method}
    for prefix in ("Set", "Get"):
        if method.startswith(prefix):
            names.add(method[len(prefix):])  # vtkSetMacro(Name, ...) declares SetName
    if method.endswith(("On", "Off")):
        names.add(re.sub(r"(On|Off)$", "", method))  # vtkBooleanMacro(Name, ...) declares NameOn/NameOff
    for name in names:
        done = subprocess.run(["git", "--git-dir", git_dir, "grep", "-l", "-w", name, ref, "--", "*.h"],
                              capture_output=True, text=True)
        if done.stdout.strip():
            return True
    return False


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    git_dir, ref = sys.argv[1], sys.argv[2]
    missing = [f"{cls}.{m}" for cls, methods in contract().items() if not cls.startswith("vtk.")
               for m in methods if not header_has(git_dir, ref, m)]
    if missing:
        print(f"{ref}: not found in any header: {', '.join(missing)}")
        return 1
    print(f"{ref}: every MRML method of the contract is declared in a header")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
