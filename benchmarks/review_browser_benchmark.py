#!/usr/bin/env python
"""How long the browser review makes a reader wait, measured in headless Chromium (Playwright) on a real server:

  jump   click a candidate name until the axial view shows the new image
  slice  one step of the axial slice slider (keyboard on its thumb) until the new image arrives
  paint  one brush stroke (12 mouse moves over 45 px) until the new image arrives and the stroke is saved

Each figure is the median (and range) of ``--repeats`` actions. The server is ``lnstaging review`` from ``--repo``
(a checkout), so the same script measures the code before (e.g. /work/main) and after a change on the same case:

  python benchmarks/review_browser_benchmark.py RESULTS --ct CT --pet PET [--repo PATH] [--repeats 5]

Run it with ``nice`` on a shared machine; it prints one JSON line. Needs Debian's chromium.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

IMG = "#views img"


def start_server(repo: Path, results: Path, ct: Path, pet: Path) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONPATH=str(repo), VTK_DEFAULT_OPENGL_WINDOW="vtkEGLRenderWindow", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "LNStagingLib", "review", str(results), "--ct", str(ct), "--pet",
                             str(pet), "--port", "0", "--host", "127.0.0.1"], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    for raw in proc.stdout:
        match = re.search(r"ready in .*?: (http://\S+)", raw.decode(errors="replace"))
        if match:
            return proc, match.group(1)
        if time.monotonic() > deadline:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError("the review server did not start")


def status(base: str) -> dict:
    with urllib.request.urlopen(base + "/lnstaging/status.json", timeout=30) as response:
        return json.loads(response.read())


def timed_until_new_image(page, action, timeout_ms: int = 20000) -> float:
    """Seconds from the action to the moment the axial view's image changed (the reader sees the result)."""
    before = page.eval_on_selector(IMG, "img => img.src")
    start = time.perf_counter()
    action()
    page.wait_for_function("([sel, before]) => document.querySelector(sel).src !== before", arg=[IMG, before],
                           timeout=timeout_ms, polling=10)
    return time.perf_counter() - start


def summary(values: list[float]) -> dict:
    return {"median_s": round(statistics.median(values), 3), "min_s": round(min(values), 3),
            "max_s": round(max(values), 3), "n": len(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--ct", type=Path, required=True)
    parser.add_argument("--pet", type=Path, required=True)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / args.results.name  # a copy: the benchmark's review never touches the given folder
        shutil.copytree(args.results, work, ignore=shutil.ignore_patterns("review", "export"))
        proc, url = start_server(args.repo.resolve(), work, args.ct.resolve(), args.pet.resolve())
        base = url.split("?")[0].rstrip("/")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                            args=["--headless", "--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport={"width": 1400, "height": 850})
                page.goto(url)
                page.wait_for_selector("[id^=cand-]", timeout=60000)
                page.wait_for_timeout(2000)
                ids = [int(i.split("-")[1]) for i in page.eval_on_selector_all(
                    "[id^=cand-]", "cells => cells.map(c => c.id)")]
                jumps = []
                for k in range(args.repeats):
                    target = ids[(k + 1) % len(ids)]
                    jumps.append(timed_until_new_image(page, lambda: page.click(f"#cand-{target}")))
                    page.wait_for_timeout(300)
                thumb = page.locator(".slice-slider .v-slider-thumb").first
                steps = []
                for k in range(args.repeats):
                    thumb.focus()
                    key = "ArrowRight" if k % 2 == 0 else "ArrowLeft"
                    steps.append(timed_until_new_image(page, lambda: page.keyboard.press(key)))
                    page.wait_for_timeout(300)
                page.click(f"#cand-{ids[0]}")
                page.wait_for_timeout(1000)
                page.click("#tool-paint")
                page.wait_for_timeout(500)
                strokes = []
                for k in range(args.repeats):
                    box = page.locator(IMG).first.bounding_box()
                    x, y = status(base)["selected"]["views"]["axial"]["xy"]
                    saved = status(base)["saved_at"]

                    def stroke():
                        page.mouse.move(box["x"] + x, box["y"] + y + 4 * k)
                        page.mouse.down()
                        page.mouse.move(box["x"] + x + 45, box["y"] + y + 10 + 4 * k, steps=12)
                        page.mouse.up()

                    seconds = timed_until_new_image(page, stroke)
                    start = time.perf_counter() - seconds
                    while status(base)["saved_at"] == saved:
                        time.sleep(0.02)
                    strokes.append(max(seconds, time.perf_counter() - start))
                    page.wait_for_timeout(300)
                browser.close()
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    print(json.dumps({"repo": str(args.repo), "case": args.results.name, "jump": summary(jumps),
                      "slice_step": summary(steps), "paint_stroke": summary(strokes),
                      "load_average": [round(v, 2) for v in os.getloadavg()]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
