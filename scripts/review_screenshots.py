#!/usr/bin/env python
"""The two pictures of docs/images: the browser review (review.png) and page 1 of the reviewed report as Chromium
prints it (report_page1.png, PDF -> PNG with poppler's pdftoppm).

  python scripts/review_screenshots.py RESULTS [--ct CT --pet PET] [--ct-dicom DIR] [--out docs/images] [--suffix S]

Without --ct/--pet the run's recorded images are used (a PET-only run: the PET alone); --suffix names the pictures
review<S>.png and report_page1<S>.png (e.g. --suffix _pet_only).

RESULTS is copied first (its review is never touched). On the page: two candidates accepted, one rejected, the first
selected, a click beside it to show the linked crosshair; then the report is downloaded and printed to A4.
Needs Debian's chromium; poppler's pdftoppm when present (else a screenshot of the page in print media).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from review_browser_benchmark import start_server  # noqa: E402

VIEWPORT = {"width": 1500, "height": 950}


def status(base: str) -> dict:
    with urllib.request.urlopen(base + "/lnstaging/status.json", timeout=30) as response:
        return json.loads(response.read())


def wait_until(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise RuntimeError("the page did not reach the expected state")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--ct", type=Path)
    parser.add_argument("--pet", type=Path)
    parser.add_argument("--suffix", default="", help="added to the picture names, e.g. _pet_only")
    parser.add_argument("--ct-dicom", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "images")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / args.results.name
        shutil.copytree(args.results, work, ignore=shutil.ignore_patterns("review", "export"))
        extra = ["--ct-dicom", str(args.ct_dicom.resolve())] if args.ct_dicom else []
        proc, url = start_server(repo, work, args.ct and args.ct.resolve(), args.pet and args.pet.resolve(),
                                 extra=extra)
        base = url.split("?")[0].rstrip("/")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                            args=["--headless", "--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
                page.goto(url)
                page.wait_for_selector("[id^=cand-]", timeout=60000)
                ids = [int(i.split("-")[1]) for i in page.eval_on_selector_all("[id^=cand-]", "c => c.map(e => e.id)")]
                page.fill("#reviewer", "Dr A. Reader")
                page.keyboard.press("Enter")
                wait_until(lambda: status(base)["reviewer"] == "Dr A. Reader")
                for cid, button in ((ids[0], "accept"), (ids[1], "accept"), (ids[2], "reject")):
                    page.click(f"#{button}-{cid}")
                    wait_until(lambda c=cid: status(base)["decisions"][str(c)] != "pending")
                page.click(f"#cand-{ids[0]}")
                wait_until(lambda: status(base)["selected"]["id"] == ids[0])
                x, y = status(base)["selected"]["views"]["axial"]["xy"]
                box = page.locator("#views img").first.bounding_box()
                page.mouse.click(box["x"] + x + 60, box["y"] + y - 50)  # beside the node: the linked crosshair
                wait_until(lambda: status(base)["crosshair_ras"] != status(base)["selected"]["centroid_ras"])
                page.wait_for_timeout(2500)
                page.evaluate("document.querySelector('#candidates').scrollIntoView()")
                page.wait_for_timeout(800)
                args.out.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out / f"review{args.suffix}.png"))
                with page.expect_download() as download:
                    page.click("#download-report")
                report = Path(tmp) / "report.html"
                shutil.copy(download.value.path(), report)
                printer = browser.new_page()
                printer.goto(report.as_uri())
                pdf = Path(tmp) / "report.pdf"
                printer.pdf(path=str(pdf), format="A4", prefer_css_page_size=True, print_background=True)
                if not shutil.which("pdftoppm"):  # no poppler: the page as printed, on an A4 viewport at 96 dpi
                    printer.emulate_media(media="print")
                    printer.set_viewport_size({"width": 794, "height": 1123})
                    printer.screenshot(path=str(args.out / f"report_page1{args.suffix}.png"), full_page=True)
                browser.close()
            if shutil.which("pdftoppm"):
                subprocess.run(["pdftoppm", "-png", "-r", "110", "-f", "1", "-l", "1", "-singlefile", str(pdf),
                                str(args.out / f"report_page1{args.suffix}")], check=True)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    print(args.out / f"review{args.suffix}.png", args.out / f"report_page1{args.suffix}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
