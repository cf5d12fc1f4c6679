"""The ``lnstaging`` command. Thin: each sub-command lives in LNStagingLib/commands/<name>.py.

A sub-command module defines ``register(subparsers)`` which adds its parser and sets ``func``.
User errors (LNStagingError) print one line and exit non-zero, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from . import NOT_FOR_CLINICAL_USE, __version__
from .docs_links import link_docs
from .errors import LNStagingError
from .io.memory import ITK_ALLOCATION_FAILURE  # light: os and pathlib only (--help must stay fast)

# Order is the order shown in --help.
COMMAND_MODULES = (
    "run", "run_batch", "candidates", "demo", "suv", "phantom", "dataset", "attention", "priors",
    "train", "evaluate", "cv", "predict_volumes", "export", "review", "report", "models",
)


# Modules of pyproject.toml's optional extras: a command that needs one that is missing says what to install.
EXTRA_OF_MODULE = {"slicer": "web", "trame": "web", "trame_slicer": "web", "trame_client": "web",
                   "trame_vuetify": "web", "trame_server": "web", "undo_stack": "web", "wslink": "web", "aiohttp": "web"}


class Parser(argparse.ArgumentParser):
    """argparse with the docs/*.md pages its help names shown as URLs (the installed tool has no docs/ folder)."""

    def format_help(self) -> str:
        return link_docs(super().format_help())

    def format_usage(self) -> str:
        return link_docs(super().format_usage())


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="lnstaging",
        description=f"Lymph node detection, classification and contouring on PET/CT. {NOT_FOR_CLINICAL_USE}",
    )
    parser.add_argument("--version", action="version", version=f"lnstaging {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output (never patient identifiers)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__package__}.commands.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__package__}.commands.{name}":
                raise
            continue  # not built yet
        module.register(sub)
    return parser


OUT_OF_MEMORY = ("out of memory: close other programs, use a machine with more memory, or crop the images to the "
                 "region of interest.")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except LNStagingError as error:
        print(f"lnstaging {args.command}: error: {link_docs(str(error))}", file=sys.stderr)
        return error.exit_code
    except ModuleNotFoundError as error:
        if not error.name or error.name.split(".")[0] == __package__:
            raise  # our own module missing is a bug of the installation, not a choice of the user
        print(f"lnstaging {args.command}: error: {missing_package_advice(error.name)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lnstaging {args.command}: interrupted; nothing was written.", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"lnstaging {args.command}: error: {OUT_OF_MEMORY}", file=sys.stderr)
        return 1
    except RuntimeError as error:
        if ITK_ALLOCATION_FAILURE not in str(error):
            raise
        print(f"lnstaging {args.command}: error: {OUT_OF_MEMORY}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"lnstaging {args.command}: error: {describe_os_error(error)}", file=sys.stderr)
        return 2


def missing_package_advice(module: str) -> str:
    """One line for a Python package this command needs and this environment lacks: what to install."""
    top = module.split(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    install = f"pip install 'lnstaging[{extra}]'" if extra else f"pip install {top}"
    return (f"this command needs the Python package '{top}', which is not installed: {install} "
            "(in a checkout: pip install -r requirements.lock).")


def describe_os_error(error: OSError) -> str:
    """One line for a file-system failure (disk full, read-only, permission): what failed, and what to do."""
    import errno

    where = f" ({error.filename})" if getattr(error, "filename", None) else ""
    reason = error.strerror or type(error).__name__
    advice = {errno.ENOSPC: "free some space or write to another disk",
              errno.EDQUOT: "free some space or write to another disk",
              errno.EROFS: "write to a folder on a writable disk",
              errno.EACCES: "check the permissions, or write to another folder",
              errno.EPERM: "check the permissions (or an immutable file), or write to another folder",
              errno.ENOENT: "check the path"}.get(error.errno, "check the path and the disk")
    return f"{reason}{where}: {advice}; files already there were left as they were."


if __name__ == "__main__":
    sys.exit(main())
