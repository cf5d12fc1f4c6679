"""`lnstaging --help` and every sub-command's --help stay quick: building and parsing imports no torch, MONAI or
trame (each costs seconds); the libraries are imported by the command that runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "monai", "trame", "torch_geometric", "vtk", "slicer"}

# Walk every (sub-)command, ask for its --help in-process, and report what got imported.
_PROBE = r"""
import argparse, contextlib, io, json, sys
from LNStagingLib.cli import build_parser

def commands(parser, prefix=()):
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from commands(child, prefix + (name,))

paths = list(commands(build_parser()))
texts = {}
for path in paths:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            build_parser().parse_args([*path, "--help"])
        except SystemExit:
            pass
    texts[" ".join(path)] = out.getvalue()
print(json.dumps({"modules": sorted({m.split(".")[0] for m in sys.modules}), "help": texts}))
"""


def _python(code: str, *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *flags, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=120)


def test_every_help_imports_no_torch_monai_or_trame():
    done = _python(_PROBE)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert len(report["help"]) >= 20, sorted(report["help"])  # the walk reached the nested commands
    assert all(text.startswith("usage: lnstaging") for text in report["help"].values())
    assert "--tumor" in report["help"]["run"] and "--data" in report["help"]["train seg"]
    heavy = sorted(set(report["modules"]) & set(HEAVY))
    assert not heavy, f"--help imported {heavy}"


def test_parsing_a_command_line_imports_nothing_heavy():
    """What the interpreter imports to parse `lnstaging run ...` (before the command itself runs)."""
    imports = _python("from LNStagingLib.cli import build_parser; build_parser().parse_known_args(['run'])",
                      "-X", "importtime").stderr
    names = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in imports.splitlines() if "|" in line}
    assert "argparse" in names and "LNStagingLib" in names  # the probe saw the imports
    assert not names & set(HEAVY | {"numpy", "SimpleITK", "scipy"}), sorted(names & set(HEAVY | {"numpy", "SimpleITK", "scipy"}))
