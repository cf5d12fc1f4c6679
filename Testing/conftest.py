"""Shared pytest fixtures: where the vendored real data lives, and a small phantom case."""

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "Data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA
