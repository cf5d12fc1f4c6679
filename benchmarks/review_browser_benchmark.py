#!/usr/bin/env python
"""How long the browser review makes a reader wait, measured in headless Chromium (Playwright) on a real server:

  jump   click a candidate name until the axial view shows the new image
  slice  one step of the axial slice slider (keyboard on its thumb) until the new image arrives
  paint  one brush stroke (12 mouse moves over 45 px, from the first candidate's centre) until the new image
         arrives and the stroke is saved; "paint_voxels_added" lists the voxels each stroke added to the node (a
         stroke that adds none is never saved: the benchmark stops and says so)
  durable  the same stroke from mouse-up until its segmentation is on disk (status.json "stroke_times", the server's
         wall clock: the same machine's as this script's), split into: the mouse-up reaching the server, the
         stroke painted into the node (Slicer's segment editor), its segmentation written

Each figure is the median (and range) of ``--repeats`` actions. The server is ``lnstaging review`` from each
``--repo`` (a checkout), so one run measures the code before (e.g. a checkout of main) and after a change on the same
case; with ``--rounds N`` the checkouts take turns N times, so a change in the machine's load hits both alike:

  python benchmarks/review_browser_benchmark.py RESULTS --ct CT --pet PET [--repo PATH ...] [--repeats 5] [--rounds 1]
      [--viewport 1400 850]

Besides the wall seconds the reader waits, a server that reports its timings (status.json "timings",
LNStagingLib/web/timing.py) gives the CPU seconds per action: the page action itself, the saves, and each view's
renders (count and CPU), which the machine's load distorts much less. It prints one JSON line per checkout and round,
with the load average. Needs Debian's chromium.
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


def start_server(repo: Path, results: Path, ct: Path | None, pet: Path | None, extra=()) -> tuple[subprocess.Popen, str]:
    """``lnstaging review RESULTS`` on a free port; ``ct``/``pet`` None: the run's recorded images."""
    env = dict(os.environ, PYTHONPATH=str(repo), VTK_DEFAULT_OPENGL_WINDOW="vtkEGLRenderWindow", PYTHONUNBUFFERED="1")
    images = [arg for option, path in (("--ct", ct), ("--pet", pet)) if path is not None for arg in (option, str(path))]
    proc = subprocess.Popen([sys.executable, "-m", "LNStagingLib", "review", str(results), *images,
                             "--port", "0", "--host", "127.0.0.1", *extra], cwd=repo, env=env,
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


def server_timings(base: str) -> dict:
    return status(base).get("timings") or {}


def server_cost(before: dict, after: dict) -> dict:
    """CPU seconds the server spent between two snapshots of its timings: per action/save name and per view render."""
    out = {}
    for group in ("actions", "renders"):
        old, new = before.get(group, {}), after.get(group, {})
        for name, entry in new.items():
            n = entry["n"] - old.get(name, {}).get("n", 0)
            if n:
                out[f"{group[:-1]} {name}"] = {"n": n, "cpu_s": entry["cpu_s"] - old.get(name, {}).get("cpu_s", 0.0)}
    return out


def cost_summary(costs: list[dict]) -> dict:
    """Median CPU seconds (and count) per name over the actions; 'total' is the median of the per-action sums."""
    if not costs or not any(costs):
        return {}
    names = sorted({name for cost in costs for name in cost})
    out = {name: {"cpu_s": round(statistics.median([c.get(name, {}).get("cpu_s", 0.0) for c in costs]), 4),
                  "n": statistics.median([c.get(name, {}).get("n", 0) for c in costs])} for name in names}
    out["total_cpu_s"] = round(statistics.median([sum(v["cpu_s"] for v in c.values()) for c in costs]), 4)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--ct", type=Path, required=True)
    parser.add_argument("--pet", type=Path, required=True)
    parser.add_argument("--repo", type=Path, nargs="+", default=[Path(__file__).resolve().parents[1]])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--viewport", type=int, nargs=2, default=(1400, 850), metavar=("WIDTH", "HEIGHT"),
                        help="the browser page's size in pixels (default 1400 850; the larger, the longer a render)")
    parser.add_argument("--actions", nargs="+", choices=("jump", "slice", "paint"), default=["jump", "slice", "paint"],
                        help="what to measure (default all)")
    args = parser.parse_args()
    for round_ in range(args.rounds):
        for repo in args.repo:
            print(json.dumps(measure(args, repo) | {"round": round_}), flush=True)
    return 0


def measure(args, repo: Path) -> dict:
    from playwright.sync_api import sync_playwright

    load_before = [round(v, 2) for v in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / args.results.name  # a copy: the benchmark's review never touches the given folder
        shutil.copytree(args.results, work, ignore=shutil.ignore_patterns("review", "export"))
        proc, url = start_server(repo.resolve(), work, args.ct.resolve(), args.pet.resolve())
        base = url.split("?")[0].rstrip("/")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                            args=["--headless", "--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport={"width": args.viewport[0], "height": args.viewport[1]})
                page.goto(url)
                page.wait_for_selector("[id^=cand-]", timeout=60000)
                page.wait_for_timeout(2000)
                ids = [int(i.split("-")[1]) for i in page.eval_on_selector_all(
                    "[id^=cand-]", "cells => cells.map(c => c.id)")]
                jumps, jump_costs = [], []
                for k in range(args.repeats if len(ids) > 1 and "jump" in args.actions else 0):  # one: no jump
                    target = ids[(k + 1) % len(ids)]
                    before = server_timings(base)
                    jumps.append(timed_until_new_image(page, lambda: page.click(f"#cand-{target}")))
                    page.wait_for_timeout(300)
                    jump_costs.append(server_cost(before, server_timings(base)))
                thumb = page.locator(".slice-slider .v-slider-thumb").first
                steps, step_costs = [], []
                for k in range(args.repeats if "slice" in args.actions else 0):
                    thumb.focus()
                    key = "ArrowRight" if k % 2 == 0 else "ArrowLeft"
                    before = server_timings(base)
                    steps.append(timed_until_new_image(page, lambda: page.keyboard.press(key)))
                    page.wait_for_timeout(300)
                    step_costs.append(server_cost(before, server_timings(base)))
                page.click(f"#cand-{ids[0]}")
                page.wait_for_timeout(1000)
                page.click("#tool-paint")
                page.wait_for_timeout(500)
                strokes, stroke_costs, durable, received, painted = [], [], [], [], []
                applying, writing = [], []  # mouse-up received -> stroke painted -> its segmentation on disk
                for k in range(args.repeats if "paint" in args.actions else 0):
                    before = server_timings(base)
                    box = page.locator(IMG).first.bounding_box()
                    now = status(base)
                    x, y = now["selected"]["views"]["axial"]["xy"]
                    width, height = now["selected"]["views"]["axial"]["size"]
                    if not (0 <= x < width and 0 <= y < height):
                        raise SystemExit(f"the selected node is drawn outside the axial view ({x}, {y} in {width} x "
                                         f"{height}): a stroke there would paint nothing")
                    saved, voxels = now["saved_at"], now["voxels"][str(ids[0])]
                    up_at = []

                    def stroke():
                        page.mouse.move(box["x"] + x, box["y"] + y + 4 * k)
                        page.mouse.down()
                        page.mouse.move(box["x"] + x + 45, box["y"] + y + 10 + 4 * k, steps=12)
                        for dx in (2, 0, 2, 0):  # a loaded server drops moves: dwell at the end (as a hand does)
                            page.wait_for_timeout(100)
                            page.mouse.move(box["x"] + x + 45 + dx, box["y"] + y + 10 + 4 * k)
                        up_at.append(time.time())
                        page.mouse.up()

                    seconds = timed_until_new_image(page, stroke)
                    start = time.perf_counter() - seconds
                    while status(base)["saved_at"] == saved:
                        if time.perf_counter() - start > 60:
                            raise SystemExit(f"stroke {k + 1} was never saved: it changed no voxel of node {ids[0]}")
                        time.sleep(0.02)
                    strokes.append(max(seconds, time.perf_counter() - start))
                    painted.append(status(base)["voxels"][str(ids[0])] - voxels)
                    times = status(base).get("stroke_times") or {}
                    if times.get("durable") and times["durable"] >= up_at[0]:
                        durable.append(times["durable"] - up_at[0])
                        received.append(times["released"] - up_at[0])
                        applying.append(times["applied"] - times["released"])
                        writing.append(times["durable"] - times["applied"])
                    page.wait_for_timeout(300)
                    stroke_costs.append(server_cost(before, server_timings(base)))
                browser.close()
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def summarised(values):
        return summary(values) if values else None

    return {"repo": str(repo), "case": args.results.name, "jump": summarised(jumps), "slice_step": summarised(steps),
            "paint_stroke": summarised(strokes), "paint_voxels_added": painted,
            "mouse_up_to_on_disk": summarised(durable),
            "mouse_up_to_server": summarised(received), "server_to_stroke_painted": summarised(applying),
            "stroke_painted_to_on_disk": summarised(writing), "viewport": list(args.viewport),
            "server_cpu": {"jump": cost_summary(jump_costs), "slice_step": cost_summary(step_costs),
                           "paint_stroke": cost_summary(stroke_costs)},
            "load_average_before": load_before, "load_average": [round(v, 2) for v in os.getloadavg()]}


if __name__ == "__main__":
    sys.exit(main())
