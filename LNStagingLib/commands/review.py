"""``lnstaging review DIR``: review the results of a run (or a batch) in a web browser (docs/REVIEW.md)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from .. import NOT_FOR_CLINICAL_USE


def register(sub) -> None:
    parser = sub.add_parser("review", help="review results in a web browser (trame-slicer; loopback by default)",
                            description="Serve the review of a results folder of 'lnstaging run' (or of a 'run-batch' "
                                        "output folder: a case chooser) as a web page: PET/CT views, candidates, "
                                        "accept/reject, operating point, contour correction, RTSTRUCT export. "
                                        "Every change is saved at once to CASE/review/. See docs/REVIEW.md.")
    parser.add_argument("dir", type=Path, metavar="DIR", help="results folder, or a folder of results folders")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; any other address requires the printed token)")
    parser.add_argument("--ct", type=Path, help="the CT of the case: a file or DICOM folder (default: the one the run "
                                                "read, from provenance.json)")
    parser.add_argument("--pet", type=Path, help="the PET of the case: an SUV file or DICOM folder (default: the run's)")
    parser.add_argument("--data", type=Path, help="cohort folder (docs/DATASET.md) holding each case's ct/pet")
    parser.add_argument("--ct-dicom", type=Path,
                        help="CT DICOM folder for the RTSTRUCT export (a batch: a folder with one sub-folder per case; "
                             "default: the run's CT when it was a DICOM folder)")
    parser.add_argument("--require-token", action="store_true",
                        help="require the access token even on loopback (a machine shared with other users)")
    parser.add_argument("--allow-other-images", action="store_true",
                        help="accept a CT/PET whose checksum differs from the run's inputs (provenance.json), e.g. "
                             "the same scan converted to another format; by default such images are refused")
    parser.add_argument("--rescore-model", metavar="CKPT|ID",
                        help="a stage-2 model trained with --reveal-labels, as a file or a catalogue id (e.g. "
                             "demo-cls-rescore): each accept/reject re-scores the pending candidates (switch it off "
                             "on the page)")
    parser.add_argument("--reviewer", metavar="NAME", default="",
                        help="your name, saved with each decision and shown in the reviewed report (UTC times are "
                             "always saved; it can also be typed on the page)")
    parser.add_argument("--read-only", action="store_true",
                        help="show the review without taking its lock (a second look while another server owns the "
                             "folder): decisions, edits and exports are refused and nothing is written")
    parser.set_defaults(func=main)


def check_port_free(host: str, port: int) -> None:
    """Fail with a one-line message before loading anything when the address cannot be bound."""
    import socket

    from ..errors import LNStagingError

    if port == 0:
        return
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        raise LNStagingError(f"Cannot listen on {host}:{port} ({error.strerror}): choose another --port "
                             "(0 = any free port) or --host.") from None


def note(text: str) -> None:
    print(f"lnstaging review: {text}", file=sys.stderr, flush=True)


def check_cases(cases, allow_other_images: bool) -> None:
    """Before loading anything: saved reviews readable, images those of the run (one-line errors, notes)."""
    from ..web.cases import check_images_match_run
    from ..web.validation import check_review_folder

    for case in cases:
        for text in check_review_folder(case.review_dir):
            note(text)
        if not allow_other_images:
            text = check_images_match_run(case)
            if text:
                note(text)


def _stop_on_sigterm():
    """SIGTERM ends the server like Ctrl-C (the lock is released, the review flushed); while serving, aiohttp's own
    handler does the same."""
    def stop(signum, _frame):
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, stop)


def main(args) -> int:
    from ..web import review_lock
    from ..web.cases import find_cases

    cases = find_cases(args.dir, ct=args.ct, pet=args.pet, data=args.data, ct_dicom=args.ct_dicom)
    if args.rescore_model:  # a file or a catalogue id; a wrong one is a one-line error before anything is served
        from ..models.catalogue import resolve_model_file

        args.rescore_model, _ = resolve_model_file(args.rescore_model, "cls")
    previous_handler = _stop_on_sigterm()
    locks = []
    try:
        read_only = getattr(args, "read_only", False)
        locks = [] if read_only else review_lock.acquire_all(case.results_dir for case in cases)
        for lock in locks:
            if lock.takeover_message():
                note(lock.takeover_message())
            for text in review_lock.clean_stale_temporaries(lock.folder):
                note(f"{lock.folder}: {text}")
        check_cases(cases, args.allow_other_images)
        check_port_free(args.host, args.port)
        return serve(args, cases)
    finally:
        review_lock.release_all(locks)
        signal.signal(signal.SIGTERM, previous_handler)


def serve(args, cases) -> int:
    from ..web.security import is_loopback, new_token

    token = new_token() if args.require_token or not is_loopback(args.host) else None
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")  # server-side rendering, no display
    start = time.perf_counter()
    from ..web.app import ReviewApp, review_url

    sys.argv = sys.argv[:1]  # trame parses sys.argv for its own options; ours are already parsed
    read_only = getattr(args, "read_only", False)
    app = ReviewApp(cases, token=token, rescore_model=args.rescore_model, reviewer=args.reviewer,
                    read_only=read_only)

    def announce(**_):
        port = app.server.port
        print(f"LNStaging review of {len(cases)} case(s) ready in {time.perf_counter() - start:.1f} s: "
              f"{review_url(args.host, port, token)}", flush=True)
        if read_only:
            print("Read-only: nothing is saved here; decisions, edits and exports are refused.", flush=True)
        if token:
            print("The page needs the token in the URL above; requests without it are refused.", flush=True)
        print(NOT_FOR_CLINICAL_USE, flush=True)

    app.server.controller.on_server_ready.add(announce)
    try:
        app.start(args.host, args.port)
    finally:
        app.shutdown()
    return 0
