"""sha256 of files: model weights (checked before torch loads them) and the inputs a run records in provenance.json
(so the review server can tell the images it is given are the ones the run read). No torch, no pipeline: the Slicer
panel and the review server import this before the user has installed torch."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_of(*paths: Path | str) -> str:
    """sha256 of a file, or of several files read one after the other in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def input_sha256(path: Path | str) -> str:
    """The checksum ``lnstaging run`` records for an input: a file's sha256, or that of a (DICOM) folder's files read
    in sorted order."""
    path = Path(path)
    return sha256_of(*sorted(p for p in path.rglob("*") if p.is_file())) if path.is_dir() else sha256_of(path)
