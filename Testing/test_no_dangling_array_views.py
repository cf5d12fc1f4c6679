"""A SimpleITK array view of a temporary image reads freed memory (it crashed the pipeline on a 512x512x300 CT):
no code of ours (library, module, tests, benchmarks) may take a view of an expression that is not a named, live image."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = ("LNStagingLib", "LNStaging", "Testing", "benchmarks", "scripts")


def test_array_views_are_taken_of_named_images_only():
    offenders = []
    for path in (p for folder in CODE for p in (ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "GetArrayViewFromImage"
                    and node.args and not isinstance(node.args[0], (ast.Name, ast.Attribute, ast.Subscript))):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
