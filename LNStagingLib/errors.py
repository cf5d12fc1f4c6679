"""One exception family whose messages tell a clinician what to do.

The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``; no traceback for these.
"""


class LNStagingError(Exception):
    """Base of every error the user can act on. The message says what is wrong and what to do."""

    exit_code = 2


class InputFileError(LNStagingError):
    """A file or folder is missing, unreadable or not what it claims to be."""


class ImageFormatError(LNStagingError):
    """An image has the wrong dimension, type, or holds NaN/Inf."""


class DicomError(LNStagingError):
    """A DICOM object is incomplete or inconsistent (missing tags, broken references)."""


class MissingTagError(DicomError):
    """A DICOM tag needed for a computation is absent; the message names the tag and the CLI option to supply it."""


class GeometryError(LNStagingError):
    """Images do not share a frame of reference, do not overlap, or are on incompatible grids."""


class AnatomyError(LNStagingError):
    """Organ/vessel masks are empty, unknown or unusable."""


class DatasetError(LNStagingError):
    """A cohort folder does not follow docs/DATASET.md."""


class ModelError(LNStagingError):
    """A model file is missing, has a wrong checksum, or does not fit the requested task."""


class ExportError(LNStagingError):
    """A DICOM export cannot be written correctly."""


class OutputError(LNStagingError):
    """An output cannot be written safely: it would replace an input, a working folder or a review, or the disk
    cannot hold it. Raised before any work is done (LNStagingLib/io/outputs.py)."""


class ResourceError(LNStagingError):
    """The machine lacks what a run needs (memory), found before any work (LNStagingLib/io/memory.py)."""


class Cancelled(LNStagingError):
    """The user cancelled a long-running step."""

    exit_code = 130
