"""Issue 26 in the browser, on a real case: the IBSI STS_001 PET/CT (DICOM, thigh sarcoma), run with the default
(phantom, abdominal) models, which do not apply: the list is ranked by SUVpeak. The review is started with no image
options (the run's recorded DICOM folders) and driven in headless Chromium at 1920x1080:

- no face names a model that did not run, quotes an FROC figure or shows a probability column;
- decisions are visible by pixel without probabilities: accepted = green fill, pending = orange outline, rejected
  hidden;
- a paint stroke never changes another node unless "take voxels from other nodes" is on, and then the page says
  which node lost how many voxels;
- "saved" shows only once the stroke is on disk, and the stroke is on disk within 0.5 s of mouse-up (a SIGKILL then
  keeps it);
- an accepted node is edited like any other (a 1400 x 850 page, the node panned out of the axial view first).

Screenshots go to Testing/artifacts/web_faces/. Needs Debian's chromium (apt-get install -y chromium); skipped,
saying so, when it is absent.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("trame_slicer")
pytest.importorskip("playwright")

from review_server import Server  # noqa: E402
from sts_candidates import write_sts_candidate_file  # noqa: E402
from test_web_review import browser, get_json  # noqa: E402,F401 (browser: the shared Chromium fixture)
from waiting import wait_for  # noqa: E402

from LNStagingLib.cli import main  # noqa: E402
from LNStagingLib.decision_style import DECISION_STYLES  # noqa: E402
from LNStagingLib.results import Results  # noqa: E402
from LNStagingLib.web.layout import DRAWER_PX  # noqa: E402

STS = "ibsi_validation_sts/dicom/STS_001"
VIEWPORT = {"width": 1920, "height": 1080}
ARTIFACTS = Path(__file__).parent / "artifacts" / "web_faces"
DURABLE_WITHIN_S = 0.5  # issue 26: a stroke shown on screen is on disk this soon after mouse-up


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("web_faces") / "STS_001"
    candidates = write_sts_candidate_file(out.parent / "candidates.csv")  # a list to review: sts_candidates.py
    assert main(["run", "--ct", str(data_dir / STS / "CT/image"), "--pet", str(data_dir / STS / "PET/image"),
                 "--candidates", str(candidates), "--threads", "1", "--out", str(out)]) == 0
    return out


@pytest.fixture
def server(run):
    started = Server([str(run), "--port", "0", "--host", "127.0.0.1"], run.parent / "server.log")
    try:
        yield started
    finally:
        started.kill()


def status(server, ras=None) -> dict:
    return get_json(server.base + "/lnstaging/status.json" + ("?ras=" + ",".join(f"{v:.3f}" for v in ras)
                                                               if ras is not None else ""))


def open_page(browser, server):
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(server.url)
    page.wait_for_selector("#cand-1", timeout=60000)
    return page


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(600)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def axial_pixels(page) -> tuple[np.ndarray, dict]:
    """The axial view as an RGB array (view pixels) and its box on the page."""
    from PIL import Image

    view = page.locator("#views img").first
    box = view.bounding_box()
    page.wait_for_timeout(800)  # the server renders, then sends the frame
    image = Image.open(io.BytesIO(view.screenshot())).convert("RGB")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    image.save(ARTIFACTS / "last_axial_view.png")
    return np.asarray(image).astype(int), box


def ras_of(c) -> list[float]:
    return [-c.centroid_lps[0], -c.centroid_lps[1], c.centroid_lps[2]]


def reviewed(run: Path) -> Results:
    """The candidates as the server has them: the saved review's (an earlier test's stroke moved a centroid), else
    the run's."""
    return Results.read(run / "review") if (run / "review" / "candidates.json").is_file() else Results.read(run)


def labels_on_disk(run: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(run / "review" / "gtv_ln.nii.gz")))


def test_faces_name_only_what_ran(server, browser, run):
    page = open_page(browser, server)
    title = page.inner_text("#provenance")
    for model in ("demo-seg", "demo-cls", "demo-identification", "demo-patient"):
        assert f"{model} (" in title and f"{model} (" + title.split(f"{model} (")[1].split(")")[0] + ") not applied" \
            in title
    assert " applied (" not in title and "PHANTOM" not in title
    # an SUVpeak operating point, not a probability; 0 for a candidate file (2.5 only for the PET detector's own list)
    assert "Operating point: SUVpeak ≥ 0.0" in page.inner_text("#operating-point")
    assert "false positives" not in page.inner_text("body") and "FROC" not in page.inner_text("body")
    assert page.locator("#th-p").count() == 0 and page.locator("td[id^='p-']").count() == 0
    assert "highest SUVpeak first" in page.inner_text("#list-title")
    assert "not computed" in page.inner_text("#patient-probability")
    results = Results.read(run)
    names = page.locator("#candidates tbody tr td:first-child").all_inner_texts()
    assert names == [c.name for c in sorted(results.candidates, key=lambda c: -c.suv_peak)]
    shot(page, "01_sts_loaded")


def _colour_distance(pixel, hex_colour: str) -> float:
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return float(np.linalg.norm(np.asarray(pixel, float) - rgb))


def test_decisions_are_visible_by_pixel_without_probabilities(server, browser, run):
    """Overlay off (CT only), so the only colour in the view is the decision's."""
    page = open_page(browser, server)
    page.click("#overlay-none")
    wait_for(lambda: status(server)["overlay"] == "none", what="CT only")
    results = Results.read(run)
    ranked = sorted(results.candidates, key=lambda c: c.rank)
    accepted, rejected, pending = ranked[0], ranked[1], ranked[2]
    page.click(f"#accept-{accepted.id}")
    page.click(f"#reject-{rejected.id}")
    wait_for(lambda: status(server)["decisions"][str(rejected.id)] == "rejected", what="the decisions")

    def node_colours(c, radius=12):
        """The view's pixels in a window around the node, without the crosshair's row and column."""
        page.click(f"#cand-{c.id}")
        wait_for(lambda: (s := status(server))["selected"] and s["selected"]["id"] == c.id, what=f"jump to {c.name}")
        pixels, _ = axial_pixels(page)
        x, y = status(server, ras_of(c))["point_views"]["axial"]["xy"]
        x, y = int(round(x)), int(round(y))
        window = pixels[y - radius:y + radius + 1, x - radius:x + radius + 1]
        keep = np.ones(window.shape[:2], bool)
        keep[radius - 2:radius + 3, :] = keep[:, radius - 2:radius + 3] = False  # the crosshair lines
        return window[keep]

    green, orange = DECISION_STYLES["accepted"].colour_hex, DECISION_STYLES["pending"].colour_hex

    def greenish(window):
        return int(sum(1 for p in window if p[1] > p[0] + 25 and p[1] > p[2] + 25))

    def orangeish(window):
        return int(sum(1 for p in window if _colour_distance(p, orange) < 70))

    window = node_colours(accepted)
    assert greenish(window) > 0.3 * len(window), f"accepted node not filled green ({greenish(window)} px)"
    shot(page, "02_accepted_filled")

    outline_px = int(3 * (pending.volume_ml * 1000 * 3 / 4 / np.pi) ** (1 / 3)) + 12  # beyond its radius at ~2 px/mm
    assert orangeish(node_colours(pending, outline_px)) >= 8, "pending node has no orange outline"
    window = node_colours(pending)
    assert greenish(window) == 0, "a pending node looks accepted"
    inside = window[np.abs(window.max(axis=1) - window.min(axis=1)) < 30]
    assert len(inside) > 0.5 * len(window)  # mostly grey CT: the outline only, no fill
    shot(page, "03_pending_outline")

    window = node_colours(rejected)  # hidden unless "show rejected"
    assert greenish(window) == 0 and orangeish(window) == 0, "a rejected node is drawn"
    coloured = [p for p in window if max(p) - min(p) >= 30]  # besides the CT (JPEG noise): marker and crosshair
    marker = [p for p in coloured if p[1] > p[0] + 40 and p[2] > p[0] + 40]  # cyan
    crosshair = [p for p in coloured if abs(p[0] - p[1]) < 20 and p[0] > p[2] + 25]  # yellow, also anti-aliased
    assert len(marker) + len(crosshair) == len(coloured), [tuple(p) for p in coloured
                                                           if not any(p is q for q in marker + crosshair)][:5]
    shot(page, "04_rejected_hidden")


def _neighbour_pair(results: Results, image: sitk.Image):
    """(target, neighbour, slice, rows, columns): two nodes sharing the axial slice through the target's centroid
    (the slice the view shows after a jump), nearest pair first; rows/columns: the neighbour's voxels there."""
    labels = sitk.GetArrayFromImage(image)
    ct_shape = labels.shape
    pairs = []
    for t in results.candidates:
        k = image.TransformPhysicalPointToIndex(t.centroid_lps)[2]
        for n in results.candidates:
            if n.id == t.id:
                continue
            ys, xs = np.nonzero(labels[k] == n.id)
            if ys.size:
                pairs.append((np.hypot(*(np.subtract(t.centroid_lps[:2], n.centroid_lps[:2]))), t, n, k, ys, xs))
    assert pairs, f"no two candidates share an axial slice among {len(results.candidates)} ({ct_shape})"
    return min(pairs, key=lambda p: p[0])[1:]


def _empty_point_near(image: sitk.Image, target, k: int) -> list[float]:
    """RAS of a voxel on slice k near the target, at least 4 voxels from every node: where paint adds voxels."""
    from scipy import ndimage

    labels = sitk.GetArrayFromImage(image)[k]
    room = ndimage.distance_transform_edt(labels == 0)
    ys, xs = np.nonzero(room >= 4)
    ci = image.TransformPhysicalPointToIndex(target.centroid_lps)
    best = int(np.argmin(np.hypot(xs - ci[0], ys - ci[1])))
    lps = image.TransformIndexToPhysicalPoint([int(xs[best]), int(ys[best]), k])
    return [-lps[0], -lps[1], lps[2]]


def _stroke(page, server, points_ras):
    """A paint stroke in the axial view through the given RAS points, dwelling at each (a loaded server drops
    intermediate mouse moves: each point gets several events); the time of mouse-up."""
    _, box = axial_pixels(page)
    xy = [status(server, ras)["point_views"]["axial"]["xy"] for ras in points_ras]
    page.mouse.move(box["x"] + xy[0][0], box["y"] + xy[0][1])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=8)
        for dx, dy in ((2, 0), (0, 2), (-2, 0), (0, -2), (0, 0)):
            page.wait_for_timeout(120)
            page.mouse.move(box["x"] + x + dx, box["y"] + y + dy)
    page.mouse.up()
    return time.perf_counter()


def test_a_stroke_changes_only_the_selected_node_unless_asked_and_is_on_disk_before_saved(server, browser, run):
    page = open_page(browser, server)
    results = Results.read(run)
    decisions = status(server)["decisions"]
    results.candidates = [c for c in results.candidates if decisions[str(c.id)] == "pending"]  # shown, editable
    ct = sitk.ReadImage(str(run / "gtv_ln.nii.gz"))
    target, neighbour, k, ys, xs = _neighbour_pair(results, ct)
    middle = len(ys) // 2
    point_lps = ct.TransformIndexToPhysicalPoint([int(xs[middle]), int(ys[middle]), k])
    through = [-point_lps[0], -point_lps[1], point_lps[2]]
    stroke = [ras_of(target), _empty_point_near(ct, target, k), through]  # over empty space, then the neighbour

    def paint_on(page, server):
        page.click(f"#cand-{target.id}")
        wait_for(lambda: (s := status(server))["selected"] and s["selected"]["id"] == target.id, what="the jump")
        page.click("#tool-paint")
        wait_for(lambda: status(server)["tool"] == "paint", what="the paint tool")

    # 1. safe by default: the neighbour the stroke crossed keeps every voxel; the stroke is durable (its
    # segmentation on disk) within DURABLE_WITHIN_S of reaching the server's scene, and survives a SIGKILL
    paint_on(page, server)
    before = status(server)["voxels"]
    up = _stroke(page, server, stroke)
    saved = wait_for(lambda: (s := status(server))["voxels"][str(target.id)] > before[str(target.id)]
                     and not s["edits_pending"] and s, timeout=30, what="the stroke saved")
    mouse_up_to_saved_s = time.perf_counter() - up
    print(f"mouse-up to saved {mouse_up_to_saved_s:.2f} s; stroke applied to durable {saved['stroke_durable_s']} s; "
          f"server timings {saved['timings']['actions']}")
    assert saved["stroke_durable_s"] is not None and saved["stroke_durable_s"] < DURABLE_WITHIN_S
    assert saved["voxels"][str(neighbour.id)] == before[str(neighbour.id)], "the stroke took a neighbour's voxels"
    assert saved["last_edit"] == {str(target.id): saved["voxels"][str(target.id)] - before[str(target.id)]}
    assert "other nodes" not in page.inner_text("#edit-changes")
    server.kill()
    page.close()
    again = Server([str(run), "--port", "0", "--host", "127.0.0.1"], run.parent / "server.log")
    try:
        page = open_page(browser, again)
        restored = status(again)
        assert restored["voxels"][str(target.id)] == saved["voxels"][str(target.id)], "the stroke was lost by the kill"
        assert restored["voxels"][str(neighbour.id)] == before[str(neighbour.id)], "the stroke took a neighbour's voxels"
        labels = labels_on_disk(run)
        assert (labels == neighbour.id).sum() == before[str(neighbour.id)]
        shot(page, "05_safe_stroke_survives_a_kill")

        # 2. asked to take voxels from other nodes: the page names the neighbour and the voxels it lost, and says
        # "saved" only when the file on disk holds the stroke
        paint_on(page, again)
        page.click("#take-from-others")
        wait_for(lambda: status(again)["take_from_others"], what="take voxels from other nodes")
        saved_at = status(again)["saved_at"]
        up = _stroke(page, again, stroke)
        while True:
            assert time.perf_counter() - up < 20, "the page never said saved"
            shown = page.inner_text("#saved")
            if shown.startswith("All changes saved") and status(again)["saved_at"] != saved_at:
                on_disk = labels_on_disk(run)
                break
        lost = before[str(neighbour.id)] - int((on_disk == neighbour.id).sum())
        assert lost > 0, "the saved file does not hold the stroke the page called saved"
        text = wait_for(lambda: (t := page.inner_text("#edit-changes")) and "other nodes" in t and t,
                        what="the list of changed nodes")
        assert f"{neighbour.name} {-lost:+d} voxels" in text
        assert status(again)["last_edit"][str(neighbour.id)] == -lost
        shot(page, "06_took_from_neighbour")
    finally:
        again.kill()


def _stroke_from_the_first_node(page, server, run):
    """Select the first-ranked node (as the server has it), take the paint tool and stroke from the node's centre
    to empty space beside it: (the node, its voxels before, the time of mouse-up)."""
    target = min(reviewed(run).candidates, key=lambda c: c.rank)
    labels = sitk.ReadImage(str(run / "review" / "gtv_ln.nii.gz"))
    k = labels.TransformPhysicalPointToIndex(target.centroid_lps)[2]
    page.click(f"#cand-{target.id}")
    wait_for(lambda: (s := status(server))["selected"] and s["selected"]["id"] == target.id, what="the jump")
    page.click("#tool-paint")
    wait_for(lambda: status(server)["tool"] == "paint", what="the paint tool")
    before = status(server)["voxels"][str(target.id)]
    return target, before, _stroke(page, server, [ras_of(target), _empty_point_near(labels, target, k)])


def test_a_stroke_is_on_disk_within_half_a_second_of_mouse_up(server, browser, run):
    """Issue 26: from the page's mouse-up to the stroke's segmentation on disk (the server's wall clock and the
    test's are the same machine's), and the file on disk holds the stroke."""
    page = open_page(browser, server)
    target, before, up = _stroke_from_the_first_node(page, server, run)
    up_wall = time.time() - (time.perf_counter() - up)
    times = wait_for(lambda: (t := status(server)["stroke_times"]).get("durable") and t["durable"] > up_wall - 5 and t,
                     timeout=30, what="the stroke on disk")
    seg = run / "review" / "GTV_LN.seg.nrrd"
    assert seg.stat().st_mtime >= up_wall - 0.05, "the segmentation file was not written after the stroke"
    durable_s = times["durable"] - up_wall
    print(f"mouse-up to on disk {durable_s:.3f} s (mouse-up reached the server after "
          f"{times['released'] - up_wall:.3f} s, stroke applied after {times['applied'] - up_wall:.3f} s); "
          f"load average {__import__('os').getloadavg()[0]:.1f}")
    saved = wait_for(lambda: (s := status(server))["voxels"][str(target.id)] > before and not s["edits_pending"]
                     and s, timeout=30, what="the stroke saved")
    print(f"mouse-up to fully saved (GTV_LN, tables, review.json) {saved['saved_at'] - up_wall:.3f} s; renders "
          f"{saved['timings']['renders']}; actions {saved['timings']['actions']}")
    assert durable_s < DURABLE_WITHIN_S, f"the stroke reached disk {durable_s:.2f} s after mouse-up"


def test_a_stroke_survives_a_kill_half_a_second_after_mouse_up(server, browser, run):
    """Issue 26 item 4: a stroke shown on screen was lost by a kill 1.4-2.8 s after mouse-up (5 of 5 trials). Here the
    server is killed (SIGKILL) DURABLE_WITHIN_S after the page's mouse-up, without waiting for "saved"; a new server
    on the same folder shows the stroke."""
    page = open_page(browser, server)
    target, before, up = _stroke_from_the_first_node(page, server, run)
    time.sleep(max(0.0, DURABLE_WITHIN_S - (time.perf_counter() - up)))
    killed_after = time.perf_counter() - up
    server.kill()
    page.close()
    again = Server([str(run), "--port", "0", "--host", "127.0.0.1"], run.parent / "server.log")
    try:
        after = status(again)["voxels"][str(target.id)]
    finally:
        again.kill()
    print(f"killed {killed_after:.3f} s after mouse-up; {target.name} {before} -> {after} voxels after the restart; "
          f"load average {__import__('os').getloadavg()[0]:.1f}")
    assert killed_after < DURABLE_WITHIN_S + 0.1, "the test killed the server too late to mean anything"
    assert after > before, f"the stroke was lost by a kill {killed_after:.2f} s after mouse-up"


def test_triage_controls_fit_a_1920x1080_viewport_and_work_from_the_keyboard(server, browser, run):
    page = open_page(browser, server)

    def inside(selector: str) -> None:
        box = page.locator(selector).first.bounding_box()
        assert box is not None, f"{selector} is not shown"
        assert box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= VIEWPORT["width"] \
            and box["y"] + box["height"] <= VIEWPORT["height"], f"{selector} is outside the viewport: {box}"

    for selector in ("#tool-paint", "#tool-erase", "#undo", "#export", "#export-pending", "#bulk-reject", "#drawer-threshold",
                     "#operating-point", "#list-title", "#pet-mip", "#th-name", "#th-sa", "#th-suvmax", "#th-suvpeak",
                     "#th-vol", "#th-decision"):
        inside(selector)
    rows = [r for r in page.locator("#candidates tbody tr").all() if (b := r.bounding_box()) and
            b["y"] + b["height"] <= VIEWPORT["height"]]
    assert len(rows) >= 14, f"only {len(rows)} candidate rows visible"

    # sortable columns: volume (largest first), then back to the rank order
    results = reviewed(run)  # the candidates as the server has them (an earlier test's stroke grew one)
    page.click("#th-vol")
    largest = max(c.volume_ml for c in results.candidates)
    largest_names = {c.name for c in results.candidates if c.volume_ml == largest}  # equal volumes: any may lead
    wait_for(lambda: page.locator("#candidates tbody tr td:first-child").first.inner_text() in largest_names,
             what="sorted by volume")
    page.click("#th-vol")
    first = min(results.candidates, key=lambda c: c.rank)
    wait_for(lambda: page.locator("#candidates tbody tr td:first-child").first.inner_text() == first.name,
             what="back to the rank order")

    # keys: ArrowDown = next, U = next pending, B / Escape = paint / no tool, Shift+R = reject below (with undo)
    ranked = [c.id for c in sorted(Results.read(run).candidates, key=lambda c: c.rank)]
    page.click(f"#cand-{ranked[0]}")
    wait_for(lambda: status(server)["selected"]["id"] == ranked[0], what="the first node")
    page.locator("#list-title").click()  # focus away from any field
    page.keyboard.press("ArrowDown")
    wait_for(lambda: status(server)["selected"]["id"] == ranked[1], what="ArrowDown: the next node")
    page.keyboard.press("a")
    wait_for(lambda: status(server)["decisions"][str(ranked[1])] == "accepted", what="A: accepted")
    wait_for(lambda: page.inner_text(f"#state-{ranked[1]}") == "accepted", what="the decision text")
    state = page.locator(f"#state-{ranked[1]}").bounding_box()
    assert state["x"] + state["width"] <= DRAWER_PX, "the decision text is cut by the drawer"
    page.keyboard.press("ArrowUp")
    page.keyboard.press("u")
    wait_for(lambda: status(server)["selected"]["id"] == ranked[2], what="U: the next pending node")
    page.keyboard.press("e")
    wait_for(lambda: status(server)["tool"] == "erase", what="E: erase")
    page.keyboard.press("b")
    wait_for(lambda: status(server)["tool"] == "paint", what="B: paint")
    page.keyboard.press("]")
    wait_for(lambda: status(server)["tool"] == "paint" and page.inner_text("#saved") != "", what="brush")
    page.keyboard.press("Escape")
    wait_for(lambda: status(server)["tool"] == "none", what="Esc: no tool")

    page.locator("#drawer-threshold .v-slider-thumb").focus()
    start = status(server)["threshold"]
    for _ in range(45):  # the SUVpeak operating point up by 4.5 in steps of 0.1
        page.keyboard.press("ArrowRight")
    point = start + 4.5
    wait_for(lambda: status(server)["threshold"] == pytest.approx(point), what="the SUVpeak operating point")
    results = reviewed(run)  # the candidates as the server has them (an earlier test edited one)
    below = sorted(c.id for c in results.candidates if c.suv_peak < point
                   and status(server)["decisions"][str(c.id)] == "pending")
    assert below and f"reject {len(below)} below" in page.inner_text("#bulk-reject").lower()
    page.click("#bulk-reject")
    wait_for(lambda: all(status(server)["decisions"][str(i)] == "rejected" for i in below), what="bulk reject")
    inside("#undo-bulk")
    shot(page, "07_bulk_rejected")
    page.click("#undo-bulk")
    wait_for(lambda: all(status(server)["decisions"][str(i)] == "pending" for i in below), what="its undo")

    page.click("#export")
    wait_for(lambda: status(server)["export_state"] == "current", timeout=60, what="the RTSTRUCT export")
    inside("#download-rtstruct")
    inside("#download-seg")
    page.click(f"#accept-{ranked[2]}")
    wait_for(lambda: status(server)["export_state"] == "stale", what="the export out of date")
    inside("#export-stale")
    shot(page, "08_triage_controls_1920x1080")


def test_seg_download_beside_the_rtstruct(server, browser, run):
    """Issue 26: each export also writes a DICOM SEG of the same nodes; its download sits beside the RTSTRUCT's
    inside 1920x1080, holds the accepted node's voxels, is not cached, and is refused once the review changed."""
    import urllib.error
    import urllib.request

    import pydicom

    page = open_page(browser, server)
    results = Results.read(run)
    accepted = min(results.candidates, key=lambda c: c.rank)
    page.click(f"#accept-{accepted.id}")
    wait_for(lambda: status(server)["decisions"][str(accepted.id)] == "accepted", what="the decision")
    page.click("#export")
    wait_for(lambda: status(server)["export_state"] == "current", timeout=120, what="the export")
    seg_box, rt_box = (page.locator(s).bounding_box() for s in ("#download-seg", "#download-rtstruct"))
    assert seg_box and seg_box["x"] + seg_box["width"] <= VIEWPORT["width"] and seg_box["y"] >= 0 \
        and seg_box["y"] + seg_box["height"] <= VIEWPORT["height"], seg_box
    assert abs(seg_box["y"] - rt_box["y"]) < 4, "the SEG download is not beside the RTSTRUCT's"
    with page.expect_download() as download:
        page.click("#download-seg")
    assert download.value.suggested_filename.endswith("SEG_LNStaging.dcm")
    seg = pydicom.dcmread(download.value.path())
    assert seg.Modality == "SEG"
    now = status(server)  # every accepted node (earlier tests on this server accepted some too), one segment each
    accepted_ids = sorted(int(i) for i, d in now["decisions"].items() if d == "accepted")
    names = {c.id: c.name for c in reviewed(run).candidates}
    assert accepted.id in accepted_ids
    assert sorted(s.SegmentLabel for s in seg.SegmentSequence) == sorted(names[i] for i in accepted_ids)
    voxels = sum(now["voxels"][str(i)] for i in accepted_ids)
    assert int(np.count_nonzero(seg.pixel_array)) == voxels, "the SEG does not hold the accepted nodes' voxels"
    with urllib.request.urlopen(server.base + "/lnstaging/download/SEG_LNStaging.dcm", timeout=30) as response:
        assert response.headers["Cache-Control"] == "no-store"
    shot(page, "09_seg_download")
    page.click(f"#reject-{accepted.id}")
    wait_for(lambda: status(server)["export_state"] == "stale", what="the export out of date")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(server.base + "/lnstaging/download/SEG_LNStaging.dcm", timeout=10)
    assert refused.value.code == 409


def test_zoom_to_the_selected_node_in_all_three_views(server, browser, run):
    """Issue 26: Z (or the magnifier button) centres the axial, coronal and sagittal views on the selected node and
    shows ZOOM_NODE_DIAMETERS node diameters (at least ZOOM_MIN_FIELD_MM) across each view's shorter side; F fits
    the images again. Checked by where the server draws the centroid and a point 10 mm away in each view."""
    from LNStagingLib.web.triage import ZOOM_MIN_FIELD_MM, ZOOM_NODE_DIAMETERS

    page = open_page(browser, server)
    node = min(reviewed(run).candidates, key=lambda c: c.rank)
    page.click(f"#cand-{node.id}")
    wait_for(lambda: (s := status(server))["selected"] and s["selected"]["id"] == node.id, what="the jump")
    ras = ras_of(node)
    step = {"axial": [10, 0, 0], "coronal": [0, 0, 10], "sagittal": [0, 0, 10]}  # 10 mm within each view's plane

    def pixels_per_mm() -> dict:
        at = status(server, ras)["point_views"]
        out = {}
        for view, delta in step.items():
            there = status(server, list(np.add(ras, delta)))["point_views"][view]["xy"]
            out[view] = float(np.hypot(*np.subtract(there, at[view]["xy"]))) / 10.0
        return out, at

    def settled() -> bool:  # every view's slice node has the size its picture has (no resize on the way)
        views = status(server, ras)["point_views"].values()
        return all(v["size"] == v["slice_size"] for v in views)

    wait_for(settled, what="the views' final size")
    fitted, _ = pixels_per_mm()
    button = page.locator("#zoom-node").bounding_box()
    assert button and 0 <= button["x"] and button["x"] + button["width"] <= VIEWPORT["width"] and 0 <= button["y"] \
        and button["y"] + button["height"] <= VIEWPORT["height"], f"the zoom button is outside the viewport: {button}"
    page.locator("#list-title").click()
    page.keyboard.press("z")
    wait_for(lambda: status(server)["zoomed_to_node"], what="Z: zoomed to the node")
    diameter = 2 * (3 * node.volume_ml * 1000 / (4 * np.pi)) ** (1 / 3)
    field = max(ZOOM_MIN_FIELD_MM, ZOOM_NODE_DIAMETERS * diameter)
    wait_for(settled, what="the views' final size")
    zoomed, at = pixels_per_mm()
    for view in step:
        width, height = at[view]["size"]
        x, y = at[view]["xy"]
        assert abs(x - width / 2) <= 2 and abs(y - height / 2) <= 2, f"{view}: the node is not centred ({x}, {y})"
        assert abs(at[view]["plane_distance_mm"]) < 1.0, f"{view}: the view does not pass through the node"
        assert zoomed[view] == pytest.approx(min(width, height) / field, rel=0.03), (view, zoomed, field)
        assert zoomed[view] > 1.5 * fitted[view], f"{view}: not zoomed in ({fitted[view]} -> {zoomed[view]} px/mm)"
    shot(page, "10_zoomed_to_node")
    page.keyboard.press("f")
    wait_for(lambda: not status(server)["zoomed_to_node"], what="F: fitted again")
    refit, _ = pixels_per_mm()
    # zoomed out again to a fit of the images (trame-slicer's fit_view_to_content at the views' present size; the
    # page's first fit was made while the views were being sized: 5-18 % apart in our runs)
    assert all(refit[v] == pytest.approx(fitted[v], rel=0.25) and refit[v] < zoomed[v] / 1.5 for v in step), \
        (refit, fitted, zoomed)


def test_pet_mip_with_clickable_node_markers(server, browser, run, data_dir):
    """Issue 26: a coronal PET MIP beside the views with a marker per shown node in its decision's colour; the
    marker sits where the PET DICOM's own geometry puts the node, on uptake, and a click jumps the views to it."""
    import base64

    from PIL import Image

    page = open_page(browser, server)
    node = min(reviewed(run).candidates, key=lambda c: c.rank)
    mip_box = page.locator("#pet-mip img").bounding_box()
    assert mip_box and mip_box["x"] + mip_box["width"] <= VIEWPORT["width"] \
        and mip_box["y"] + mip_box["height"] <= VIEWPORT["height"], mip_box
    marker = page.locator(f"#mip-{node.id}")
    box = marker.bounding_box()
    centre = (box["x"] + box["width"] / 2 - mip_box["x"], box["y"] + box["height"] / 2 - mip_box["y"])

    reader = sitk.ImageSeriesReader()  # the PET's geometry from its DICOM files (LPS), not from the server's scene
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(data_dir / STS / "PET/image")))
    pet = reader.Execute()
    corners = np.array([pet.TransformContinuousIndexToPhysicalPoint([i * (n - 1) for i, n in zip(ijk, pet.GetSize())])
                        for ijk in np.ndindex(2, 2, 2)])
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    expected_x = (node.centroid_lps[0] - lo[0]) / (hi[0] - lo[0]) * mip_box["width"]  # patient right on the left
    expected_y = (hi[2] - node.centroid_lps[2]) / (hi[2] - lo[2]) * mip_box["height"]  # superior at the top
    assert abs(centre[0] - expected_x) < 4 and abs(centre[1] - expected_y) < 4, (centre, expected_x, expected_y)

    src = page.get_attribute("#pet-mip img", "src")
    grey = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("L"), float)
    row = int(centre[1] / mip_box["height"] * grey.shape[0])
    col = int(centre[0] / mip_box["width"] * grey.shape[1])
    around = grey[max(row - 3, 0):row + 4, max(col - 3, 0):col + 4]
    assert around.min() < np.percentile(grey, 5), "the marker is not on uptake (dark in the inverted MIP)"
    colour = marker.evaluate("m => getComputedStyle(m).borderColor")
    assert colour, "the marker has no colour"

    page.locator("#list-title").click()
    for _ in range(8):
        page.keyboard.press("PageDown")  # the axial view away from the node
    wait_for(lambda: abs(status(server, ras_of(node))["point_views"]["axial"]["plane_distance_mm"]) > 5,
             what="the axial view moved away")
    marker.click()
    wait_for(lambda: abs(status(server, ras_of(node))["point_views"]["axial"]["plane_distance_mm"]) < 1.0,
             what="a click on the marker: back at the node")
    assert all(abs(v["plane_distance_mm"]) < 1.0 for v in status(server, ras_of(node))["point_views"].values())
    page.click(f"#accept-{node.id}")
    wait_for(lambda: page.locator(f"#mip-{node.id}").evaluate("m => getComputedStyle(m).backgroundColor")
             not in ("rgba(0, 0, 0, 0)", "transparent"), what="the accepted marker filled")
    shot(page, "11_pet_mip")


def test_two_browsers_record_their_own_reviewer(server, browser, run):
    """Issue 25 item 7: the reviewer belongs to the browser that made the decision, not to the last name typed."""
    first, second = open_page(browser, server), open_page(browser, server)
    ranked = [c.id for c in sorted(Results.read(run).candidates, key=lambda c: c.rank)]
    for page, name in ((first, "Dr A"), (second, "Dr B")):
        page.bring_to_front()
        page.fill("#reviewer", name)
        page.locator("#reviewer").press("Enter")
        wait_for(lambda: status(server)["reviewer"] == name, what=f"{name} typed")
    first.bring_to_front()
    first.click(f"#reject-{ranked[5]}")  # Dr B typed last; this decision is still Dr A's
    wait_for(lambda: status(server)["decisions"][str(ranked[5])] == "rejected", what="Dr A's decision")
    second.bring_to_front()
    second.click(f"#accept-{ranked[6]}")
    wait_for(lambda: status(server)["decisions"][str(ranked[6])] == "accepted", what="Dr B's decision")
    first.bring_to_front()
    first.click(f"#cand-{ranked[7]}")
    first.locator("#list-title").click()
    first.keyboard.press("a")  # a key on the first page: Dr A
    wait_for(lambda: status(server)["decisions"][str(ranked[7])] == "accepted", what="Dr A's key")
    events = json.loads((run / "review" / "review.json").read_text())["events"]
    by = {(e["candidate"], e["action"]): e.get("by") for e in events}
    assert by[(ranked[5], "rejected")] == "Dr A" and by[(ranked[6], "accepted")] == "Dr B"
    assert by[(ranked[7], "accepted")] == "Dr A"


def test_a_stroke_on_an_accepted_node_changes_it_and_only_it(server, browser, run):
    """Issue 26 (found in the last session): a brush stroke on an ACCEPTED node changed no voxel. Accepted nodes are
    not locked: the stroke had missed the node, because a jump moved the slices without panning, and on a
    1400 x 850 page the axial view, fitted while the page was still being laid out, did not show the node (it lay
    left of the view; the stroke landed on the list). Here, on that page size and after the reader panned the
    axial view (a middle-button drag; the layout's own timing is not reproducible): accept the node the view shows
    farthest outside, select it, paint from its centre outwards; the node is drawn inside the view, it gains voxels
    on disk, keeps its decision, and no other node changes."""
    from review_server import axial_view_settled

    page = browser.new_page(viewport={"width": 1400, "height": 850})  # a laptop screen
    page.goto(server.url)
    page.wait_for_selector("#cand-1", timeout=60000)
    page.wait_for_selector("#views img", state="visible", timeout=60000)
    status_url = server.base + "/lnstaging/status.json"
    first = status(server)["selected"]["centroid_ras"]
    box, _view = wait_for(lambda: axial_view_settled(page, status_url, first), what="the axial view's size")
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # the reader pans (middle drag)
    page.mouse.down(button="middle")
    page.mouse.move(box["x"] + box["width"] * 0.95, box["y"] + box["height"] / 2, steps=10)
    page.mouse.up(button="middle")
    page.wait_for_timeout(1000)
    results = reviewed(run)
    decisions = status(server)["decisions"]
    ranked = sorted(results.candidates, key=lambda c: c.rank)
    pending = [c for c in ranked[8:] if decisions[str(c.id)] == "pending"]  # earlier tests decide the first 8

    def inside_by(c) -> float:  # pixels from the axial view's nearest side edge (negative: outside the view)
        drawn = status(server, ras_of(c))["point_views"]["axial"]
        return min(drawn["xy"][0], drawn["size"][0] - drawn["xy"][0])

    target = min(pending, key=inside_by)
    shown_before = inside_by(target)
    page.click(f"#accept-{target.id}")
    wait_for(lambda: status(server)["decisions"][str(target.id)] == "accepted", what="the node accepted")
    page.click(f"#cand-{target.id}")
    wait_for(lambda: (s := status(server))["selected"] and s["selected"]["id"] == target.id, what="the jump")
    page.click("#tool-paint")
    wait_for(lambda: status(server)["tool"] == "paint", what="the paint tool")
    _box, view = wait_for(lambda: axial_view_settled(page, status_url, ras_of(target)), what="the axial view's size")
    (x, y), (width, height) = view["xy"], view["size"]
    assert 0 <= x < width and 0 <= y < height, f"the selected node is drawn outside the axial view: {view}"

    before = status(server)["voxels"]
    labels = sitk.ReadImage(str(run / "review" / "gtv_ln.nii.gz"))
    k = labels.TransformPhysicalPointToIndex(target.centroid_lps)[2]
    _stroke(page, server, [ras_of(target), _empty_point_near(labels, target, k)])
    saved = wait_for(lambda: (s := status(server))["voxels"][str(target.id)] > before[str(target.id)]
                     and not s["edits_pending"] and s, timeout=30, what="the stroke on the accepted node saved")
    gained = saved["voxels"][str(target.id)] - before[str(target.id)]
    on_disk = labels_on_disk(run)
    assert int((on_disk == target.id).sum()) == saved["voxels"][str(target.id)], "the file does not hold the stroke"
    others = {i: n for i, n in before.items() if i != str(target.id)}
    assert {i: int((on_disk == int(i)).sum()) for i in others} == others, "the stroke changed another node"
    assert saved["last_edit"] == {str(target.id): gained}
    assert saved["decisions"][str(target.id)] == "accepted", "editing the contour changed the decision"
    assert "other nodes" not in page.inner_text("#edit-changes")
    print(f"{target.name} (accepted) +{gained} voxels; before the jump {shown_before:.0f} px inside the axial "
          f"view's side edges, after it drawn at {view['xy']} in a {view['size']} view")
    shot(page, "12_stroke_on_an_accepted_node")
    page.close()
