"""The browser review (lnstaging review) driven in headless Chromium: a phantom run is served by a real server
process (trame-slicer, server-side rendering through EGL), and the page is used as a reviewer would: jump to a
candidate, reject one, paint a contour and undo, export the RTSTRUCT; then the server is killed (SIGKILL) and
restarted, and the review must be there. A second server bound to a non-loopback address refuses requests without
the token. Screenshots of each step go to Testing/artifacts/web/.

Needs Debian's chromium (``apt-get install -y chromium``); Playwright drives it through ``executable_path`` (never
``playwright install``). Skipped, saying so, only when chromium is absent.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("trame_slicer")
pytest.importorskip("playwright")

from export_roundtrip import write_phantom_ct  # noqa: E402
from review_server import Server, axial_view_settled  # noqa: E402
from waiting import wait_for  # noqa: E402

from LNStagingLib.phantom.cohort import write_cohort  # noqa: E402
from LNStagingLib.pipeline import CaseInputs, RunOptions, run_to_folder  # noqa: E402
from LNStagingLib.results import Results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(__file__).parent / "artifacts" / "web"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
VIEWPORT = {"width": 1400, "height": 850}


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium): the browser tests need it")
    return path


# ---- the case: a phantom run with probabilities, and its CT as DICOM -------------------------------------------------

@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("web_review")
    write_cohort(root / "cohort", seed=0, cases=1, size="small", direction="oblique")
    src = root / "cohort" / "cases" / "case000"
    run = root / "case000"
    run_to_folder(CaseInputs(ct=src / "ct.nii.gz", pet=src / "pet.nii.gz", organs=src / "organs.nii.gz",
                             organ_mapping="pdac20", tumor=src / "tumor.nii.gz", candidates=src / "candidates.csv"),
                  run, RunOptions())
    # No trained model here: give the candidates probabilities spread over [0.05, 0.95], hottest (SUVmax) first.
    results = Results.read(run)
    by_suv = sorted(results.candidates, key=lambda c: (-c.suv_max, c.id))
    for k, c in enumerate(by_suv):
        c.probability = 0.95 - 0.9 * k / max(len(by_suv) - 1, 1)
    results.patient.metastasis_probability = 0.81
    results.patient.operating_point = {"threshold": 0.5}
    results.ranking = "probability"  # these stand-in probabilities play a classifier's part
    results.rank_candidates()
    results.write(run)
    ct = sitk.ReadImage(str(src / "ct.nii.gz"))
    direction = np.array(ct.GetDirection()).reshape(3, 3)
    size, spacing = ct.GetSize(), ct.GetSpacing()
    write_phantom_ct(root / "ct_dicom", rows=size[1], columns=size[0], slices=size[2],
                     pixel_spacing=(spacing[1], spacing[0]), slice_spacing=spacing[2],
                     row_direction=direction[:, 0], column_direction=direction[:, 1], origin=ct.GetOrigin())
    return {"root": root, "run": run, "ct": src / "ct.nii.gz", "pet": src / "pet.nii.gz", "ct_dicom": root / "ct_dicom"}


# ---- the server process --------------------------------------------------------------------------------------------

@pytest.fixture
def start_server(case):
    servers = []

    def start(*extra, folder=None):
        if folder is None:  # the fixture's run, with its images and CT DICOM
            args = [str(case["run"]), "--ct", str(case["ct"]), "--pet", str(case["pet"]),
                    "--ct-dicom", str(case["ct_dicom"]), "--port", "0", *extra]
        else:
            args = [str(folder), "--port", "0", *extra]
        if "--host" not in extra:
            args += ["--host", "127.0.0.1"]
        server = Server(args, case["root"] / "server.log")
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.kill()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# ---- helpers -------------------------------------------------------------------------------------------------------

def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.wait_for_timeout(600)  # let the server-side render reach the page
    page.screenshot(path=str(path))
    return path


def labels_on_disk(review_dir: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(review_dir / "gtv_ln.nii.gz")))


def decisions_on_disk(review_dir: Path) -> dict:
    return json.loads((review_dir / "review.json").read_text())["decisions"]


def open_page(browser, url):
    page = browser.new_page(viewport=VIEWPORT)
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url)
    page.wait_for_selector("#cand-1", timeout=30000)
    return page, requests


# ---- the review, step by step ----------------------------------------------------------------------------------------

def test_review_in_browser_jump_reject_paint_undo_export_and_restart(case, start_server, browser):
    server = start_server()
    review_dir = case["run"] / "review"
    page, requests = open_page(browser, server.url)
    # start-up and first render print no third-party warnings (VTK deprecations, Python warnings)
    log = (case["root"] / "server.log").read_text(errors="replace")
    assert not [line for line in log.splitlines() if re.search(r"WARN\||^Warning: |\w+Warning: ", line)], log[-3000:]
    status = get_json(server.base + "/lnstaging/status.json")
    assert status["case"] == "case000"
    assert (review_dir / "review.json").is_file()  # the review folder exists from the first moment
    assert "not for clinical use" in page.inner_text("#disclaimer")
    assert "0.81" in page.inner_text("#patient-probability")
    # the page loads nothing from outside this server
    origin = server.base
    outside = [u for u in requests if not (u.startswith(origin) or u.startswith(("blob:", "data:")))]
    assert outside == []
    # candidates sorted by probability
    ranked = sorted(Results.read(case["run"]).candidates, key=lambda c: -c.probability)
    names = page.locator("#candidates tbody tr td:first-child").all_inner_texts()
    assert names == [c.name for c in ranked]
    headers = page.locator("#candidates thead th").all_inner_texts()
    assert headers.index("SUVpeak") == headers.index("SUVmax") + 1  # SUVpeak beside SUVmax
    peaks = page.locator("#candidates tbody td[id^='peak-']").all_inner_texts()
    assert peaks == ["–" if c.suv_peak != c.suv_peak else f"{c.suv_peak:.1f}" for c in ranked]
    shot(page, "01_loaded")

    # click a candidate: every view moves to it
    target = ranked[2]
    before = status["slice_offsets"]
    page.click(f"#cand-{target.id}")
    moved = wait_for(lambda: (s := get_json(server.base + "/lnstaging/status.json"))["selected"]["id"] == target.id and s,
                     what="the jump")
    assert moved["slice_offsets"] != before
    assert moved["selected"]["centroid_ras"] == pytest.approx(
        [-target.centroid_lps[0], -target.centroid_lps[1], target.centroid_lps[2]], abs=1e-3)
    for view in ("axial", "coronal", "sagittal"):  # each slice plane passes through the node (oblique CT grid)
        assert abs(moved["selected"]["views"][view]["plane_distance_mm"]) < 1e-3
    axial_text = f"axial {moved['slice_offsets']['axial']:.1f} mm"
    wait_for(lambda: axial_text in page.inner_text("#slice-positions"), what="the slice position text")
    shot(page, "02_jumped")

    # the attention overlay, and the operating point from the keyboard on its slider (saved at once)
    page.click("#overlay-attention")
    wait_for(lambda: get_json(server.base + "/lnstaging/status.json")["overlay"] == "attention", what="the overlay")
    page.locator("#drawer-threshold .v-slider-thumb").focus()
    for _ in range(10):
        page.keyboard.press("ArrowLeft")
    wait_for(lambda: json.loads((review_dir / "review.json").read_text())["threshold"] == pytest.approx(0.4),
             what="the operating point on disk")
    assert get_json(server.base + "/lnstaging/status.json")["threshold"] == pytest.approx(0.4)
    shot(page, "02b_attention_threshold")
    page.click("#overlay-pet")
    wait_for(lambda: get_json(server.base + "/lnstaging/status.json")["overlay"] == "pet", what="the PET overlay")

    # reject one: saved to review.json at once
    rejected = ranked[-1]
    page.click(f"#reject-{rejected.id}")
    wait_for(lambda: decisions_on_disk(review_dir).get(str(rejected.id)) == "rejected", what="rejection on disk")
    accepted = ranked[0]
    page.click(f"#accept-{accepted.id}")
    wait_for(lambda: decisions_on_disk(review_dir).get(str(accepted.id)) == "accepted", what="acceptance on disk")
    page.check("input[type=checkbox]")  # show rejected, so the rejected node is drawn in the screenshot
    shot(page, "03_decisions")

    # paint: grow the selected node's contour with a brush stroke in the axial view
    original = int((labels_on_disk(review_dir) == target.id).sum())
    page.click("#tool-paint")
    wait_for(lambda: get_json(server.base + "/lnstaging/status.json")["tool"] == "paint", what="the paint tool")
    axial = page.locator("#views img").first.bounding_box()
    vx, vy = get_json(server.base + "/lnstaging/status.json")["selected"]["views"]["axial"]["xy"]
    page.mouse.move(axial["x"] + vx, axial["y"] + vy)
    page.mouse.down()
    page.mouse.move(axial["x"] + vx + 45, axial["y"] + vy + 10, steps=12)
    page.mouse.up()
    grown = wait_for(lambda: (n := int((labels_on_disk(review_dir) == target.id).sum())) > original and n,
                     what="the painted voxels on disk")
    page.click("#tool-none")
    stroke_save_s = get_json(server.base + "/lnstaging/status.json")["save_seconds"]
    shot(page, "04_painted")

    # undo: back to the original contour, on disk
    page.click("#undo")
    wait_for(lambda: int((labels_on_disk(review_dir) == target.id).sum()) == original, what="the undo on disk")
    shot(page, "05_undone")

    # export the reviewed RTSTRUCT (accepted nodes only: accept the painted one too) and read it back
    page.click(f"#accept-{target.id}")
    wait_for(lambda: decisions_on_disk(review_dir).get(str(target.id)) == "accepted", what="acceptance on disk")
    page.click("#export")
    rtstruct = case["run"] / "export" / "RS_LNStaging.dcm"
    wait_for(rtstruct.is_file, timeout=60, what="the RTSTRUCT")
    import pydicom

    from LNStagingLib.io.rtstruct_read import read_contours, roi_names

    ds = pydicom.dcmread(rtstruct)
    names = set(roi_names(ds).values())
    assert names == {accepted.name, target.name}  # accepted only: no pending, never the rejected one
    assert len(read_contours(ds, {target.name})[target.name]) > 0
    with urllib.request.urlopen(server.base + "/lnstaging/download/review.json") as response:
        assert json.loads(response.read())["decisions"][str(rejected.id)] == "rejected"
    with urllib.request.urlopen(server.base + "/lnstaging/download/gtv_ln.nii.gz") as response:
        assert response.read(2) == b"\x1f\x8b"
    shot(page, "06_exported")
    page.close()

    # kill the server (no chance to save anything more) and start again: the same review
    voxels = get_json(server.base + "/lnstaging/status.json")["voxels"]
    server.kill(signal.SIGKILL)
    again = start_server()
    page, _ = open_page(browser, again.url)
    restored = get_json(again.base + "/lnstaging/status.json")
    assert restored["decisions"][str(rejected.id)] == "rejected"
    assert restored["decisions"][str(accepted.id)] == "accepted"
    assert restored["show_rejected"] is True
    assert restored["voxels"] == voxels
    assert page.inner_text(f"#state-{rejected.id}") == "rejected"
    shot(page, "07_restarted")
    page.close()
    print(f"server start {server.start_seconds:.1f} s, restart {again.start_seconds:.1f} s, "
          f"save after a stroke {stroke_save_s:.2f} s")


def _non_loopback_address() -> str | None:
    """An address of this machine that is not loopback (no packet is sent), or None."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            address = s.getsockname()[0]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((address, 0))
        return None if address.startswith("127.") else address
    except OSError:
        return None


def test_non_loopback_server_refuses_requests_without_the_token(start_server, browser):
    address = _non_loopback_address()
    # Where the machine has no other address, 127.0.0.2 with --require-token exercises the same check.
    server = start_server("--host", address) if address else start_server("--host", "127.0.0.2", "--require-token")
    token = re.search(r"token=([\w-]+)", server.url).group(1)
    for path in ("/", "/index.html", "/lnstaging/status.json", "/lnstaging/download/review.json"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(server.base + path, timeout=10)
        assert refused.value.code == 403
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(server.base + "/lnstaging/status.json?token=wrong" + token[:4], timeout=10)
    assert get_json(server.base + f"/lnstaging/status.json?token={token}")["case"] == "case000"
    page, _ = open_page(browser, server.url)  # with the token the page works (the cookie carries it on)
    assert page.inner_text("#disclaimer")
    page.close()


def test_batch_case_chooser_switches_cases_with_their_own_reviews(case, start_server, browser):
    batch = case["root"] / "batch"
    for name in ("p01", "p02"):
        shutil.copytree(case["run"], batch / name, ignore=shutil.ignore_patterns("review", "export"))
        for image in ("ct", "pet"):  # images found beside the results (docs/REVIEW.md)
            shutil.copy(case[image], batch / name / f"{image}.nii.gz")
    server = start_server(folder=batch)
    page, _ = open_page(browser, server.url)
    assert get_json(server.base + "/lnstaging/status.json")["case"] == "p01"
    page.click("#reject-1")
    wait_for(lambda: decisions_on_disk(batch / "p01" / "review").get("1") == "rejected", what="p01's decision")
    page.locator("#case-chooser .v-field").click()
    page.get_by_role("option", name="p02").click()
    status = wait_for(lambda: (s := get_json(server.base + "/lnstaging/status.json"))["case"] == "p02" and s,
                      what="the switch to p02")
    assert status["decisions"]["1"] == "pending"
    wait_for(lambda: page.inner_text("#state-1") == "", what="p02's list")
    shot(page, "08_batch_p02")
    page.close()



def test_export_rule_download_keyboard_and_marker_in_browser(case, start_server, browser):
    """Issue 15: accepting 2 of the candidates exports exactly 2 ROIs (summary in green); a download keeps the
    session; a change after the export marks it out of date and the old file is refused; keyboard next/accept;
    a candidate hidden by the operating point gets the cyan marker when jumped to."""
    import pydicom

    from LNStagingLib.io.rtstruct_read import roi_names

    fresh = case["root"] / "fresh"
    if not fresh.exists():
        shutil.copytree(case["run"], fresh, ignore=shutil.ignore_patterns("review", "export"))
    server = start_server("--ct", str(case["ct"]), "--pet", str(case["pet"]), "--ct-dicom", str(case["ct_dicom"]),
                          folder=fresh)
    review_dir = fresh / "review"
    status_url = server.base + "/lnstaging/status.json"
    page, _ = open_page(browser, server.url)
    ranked = sorted(Results.read(fresh).candidates, key=lambda c: -c.probability)
    n = len(ranked)

    # keyboard: N moves to the next candidate, A accepts it (saved at once)
    first = get_json(status_url)["selected"]["id"]
    assert first == ranked[0].id
    page.locator("#views").click(position={"x": 5, "y": 5})  # focus on the page, not a field
    page.keyboard.press("n")
    wait_for(lambda: get_json(status_url)["selected"]["id"] == ranked[1].id, what="N: next candidate")
    page.keyboard.press("a")
    wait_for(lambda: decisions_on_disk(review_dir).get(str(ranked[1].id)) == "accepted", what="A: accept on disk")
    page.keyboard.press("p")
    wait_for(lambda: get_json(status_url)["selected"]["id"] == ranked[0].id, what="P: previous candidate")
    page.keyboard.press("a")
    wait_for(lambda: decisions_on_disk(review_dir).get(str(ranked[0].id)) == "accepted", what="second accept")
    page.keyboard.press("?")
    page.wait_for_selector("#help-panel", state="visible")
    assert "next candidate" in page.inner_text("#help-panel")
    shot(page, "10_shortcuts")
    page.keyboard.press("Escape")

    # export: 2 accepted of n -> 2 ROIs; the summary in green
    page.click("#export")
    rtstruct = fresh / "export" / "RS_LNStaging.dcm"
    wait_for(rtstruct.is_file, timeout=60, what="the RTSTRUCT")
    assert sorted(roi_names(pydicom.dcmread(rtstruct)).values()) == sorted([ranked[0].name, ranked[1].name])
    summary = wait_for(lambda: page.locator("#export-summary").is_visible() and page.inner_text("#export-summary"),
                       what="the export summary")
    assert f"2 ROIs (2 accepted)" in summary and f"{n - 2} pending" in summary
    colour = page.eval_on_selector("#export-summary", "e => getComputedStyle(e).color")
    red, green, blue = (int(v) for v in re.findall(r"\d+", colour)[:3])
    assert green > red and green > blue  # success, not an error colour
    record = json.loads((review_dir / "export.json").read_text())
    assert record["counts"]["written"] == 2 and record["counts"]["pending_left"] == n - 2

    # a download keeps the session: the browser saves the file, the page stays connected and usable
    with page.expect_download() as download:
        page.click("#download-rtstruct")
    assert download.value.suggested_filename.endswith("RS_LNStaging.dcm")
    assert pydicom.dcmread(download.value.path()).Modality == "RTSTRUCT"
    with page.expect_download():
        page.click("#download-review")
    with page.expect_download() as report:  # the report regenerated from this review
        page.click("#download-report")
    report_text = Path(report.value.path()).read_text()
    assert "2 accepted" in report_text and "RTSTRUCT written: 2 ROIs" in report_text
    page.click(f"#reject-{ranked[-1].id}")  # the session still answers
    wait_for(lambda: decisions_on_disk(review_dir).get(str(ranked[-1].id)) == "rejected", what="a decision after download")
    assert "Connection closed" not in page.inner_text("body")

    # that change came after the export: out of date, the old file refused until re-export
    wait_for(lambda: page.locator("#export-stale").is_visible(), what="the out-of-date notice")
    assert get_json(status_url)["export_state"] == "stale"
    assert "v-btn--disabled" in page.get_attribute("#download-rtstruct", "class")  # a link: disabled by class
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(server.base + "/lnstaging/download/RS_LNStaging.dcm", timeout=10)
    assert refused.value.code == 409
    shot(page, "11_export_out_of_date")

    # including pending nodes: the confirmation lists them, and only "export with pending" writes them
    page.click("#export-pending")
    page.wait_for_selector("#pending-dialog", state="visible")
    listed = page.locator("#pending-dialog tbody tr").count()
    assert listed == n - 3
    shot(page, "12_confirm_pending")
    page.click("#pending-accepted-only")
    wait_for(lambda: get_json(status_url)["export_state"] == "current", what="the re-export")
    assert len(roi_names(pydicom.dcmread(rtstruct))) == 2
    with urllib.request.urlopen(server.base + "/lnstaging/download/RS_LNStaging.dcm", timeout=10) as response:
        assert response.status == 200

    # a candidate hidden by the operating point: jumping to it draws the cyan marker at its centre
    hidden = ranked[-2]
    status = get_json(status_url)
    assert hidden.id not in status["visible_ids"]
    image_before = page.eval_on_selector("#views img", "img => img.src")
    page.click(f"#cand-{hidden.id}")
    status = wait_for(lambda: (s := get_json(status_url))["selected"]["id"] == hidden.id and s, what="the jump")
    page.wait_for_function("before => document.querySelector('#views img').src !== before", arg=image_before,
                           timeout=30000)  # the axial view's new image has reached the page
    ras = [-hidden.centroid_lps[0], -hidden.centroid_lps[1], hidden.centroid_lps[2]]
    assert status["marker_ras"] == pytest.approx(ras, abs=1e-3)
    path = shot(page, "13_hidden_marker")
    from PIL import Image

    image = np.asarray(Image.open(path).convert("RGB")).astype(int)
    box = page.locator("#views img").first.bounding_box()
    x, y = status["selected"]["views"]["axial"]["xy"]
    x0, y0 = int(box["x"] + x), int(box["y"] + y)
    patch = image[y0 - 30:y0 + 31, x0 - 30:x0 + 31]
    cyan = (patch[..., 0] < 90) & (patch[..., 1] > 170) & (patch[..., 2] > 170)
    assert cyan.sum() >= 10, "no cyan marker drawn around the hidden candidate"

    # under the cursor: CT in HU and PET in SUV; Shift + drag sets window/level; a preset button sets its window
    for dx in (0, 1, 2):
        page.mouse.move(x0 + dx, y0)
    wait_for(lambda: "HU" in page.inner_text("#cursor-values"), what="the HU readout under the cursor")
    assert "SUV" in page.inner_text("#cursor-values")
    window = get_json(status_url)["ct_window"]
    page.keyboard.down("Shift")
    page.mouse.move(x0, y0 + 40)
    page.mouse.down()
    page.mouse.move(x0 + 60, y0 + 20, steps=8)
    page.mouse.up()
    page.keyboard.up("Shift")
    changed = wait_for(lambda: (w := get_json(status_url)["ct_window"]) != window and w, what="mouse window/level")
    assert changed[0] > window[0]  # dragged right: wider window
    for _ in range(20):  # the drag's last mouse events come over another channel than the button click below
        time.sleep(0.5)
        now = get_json(status_url)["ct_window"]
        if now == changed:
            break
        changed = now
    page.click("#preset-lung")
    wait_for(lambda: get_json(status_url)["ct_window"] == [1500.0, -600.0], what="the lung window")
    page.close()


def test_click_on_a_contour_selects_its_node_and_a_click_elsewhere_links_the_views(case, start_server, browser):
    """Issue 15: with no tool, a click on another node's contour in the axial view selects that node (real mouse
    events in Chromium, through the server's interactor); a click where there is no contour moves the coronal and
    sagittal views through the point clicked and draws the crosshair there (linked crosshair)."""
    run = case["root"] / "clicks"
    if not run.exists():
        shutil.copytree(case["run"], run, ignore=shutil.ignore_patterns("review", "export"))
    server = start_server("--ct", str(case["ct"]), "--pet", str(case["pet"]), folder=run)
    status_url = server.base + "/lnstaging/status.json"
    page, _ = open_page(browser, server.url)
    results = Results.read(run)
    labels = sitk.GetArrayFromImage(results.gtv_ln)
    ranked = sorted(results.candidates, key=lambda c: -c.probability)

    def point_on(candidate_id: int, plane_s: float):
        """RAS of a voxel of the candidate on the axial plane at S = plane_s (the most inside one), or None."""
        zyx = np.argwhere(labels == candidate_id)
        lps = np.array([results.gtv_ln.TransformIndexToPhysicalPoint([int(i) for i in p[::-1]]) for p in zyx])
        near = np.abs(lps[:, 2] - plane_s) < 0.3 * min(results.gtv_ln.GetSpacing())
        if near.sum() < 4:
            return None
        on_plane = lps[near]
        inside = on_plane[np.argmin(np.linalg.norm(on_plane - on_plane.mean(axis=0), axis=1))]
        return [-inside[0], -inside[1], inside[2]]

    # find a node A whose axial slice also cuts another shown node B; jump to A, then click B's contour
    chosen = None
    for a in ranked:
        image_before = page.eval_on_selector("#views img", "img => img.src")
        page.click(f"#cand-{a.id}")
        status = wait_for(lambda: (s := get_json(status_url))["selected"]["id"] == a.id and s, what="the jump")
        page.wait_for_function("before => document.querySelector('#views img').src !== before", arg=image_before,
                               timeout=30000)
        plane_s = status["selected"]["centroid_ras"][2]
        for b in ranked:
            target = point_on(b.id, plane_s) if b.id != a.id and b.id in status["visible_ids"] else None
            if target is not None:
                chosen = (a, b, target)
                break
        if chosen:
            break
    assert chosen, "no two shown nodes share an axial slice in this case"
    a, b, target = chosen
    box, where = wait_for(lambda: axial_view_settled(page, status_url, target), what="the axial view's final size")
    assert abs(where["plane_distance_mm"]) < 1.0
    x, y = where["xy"]
    page.mouse.click(box["x"] + x, box["y"] + y)
    wait_for(lambda: get_json(status_url)["selected"]["id"] == b.id,
             what=f"a click on {b.name}'s contour at {target} (from {a.name}'s slice) selects it; selected: "
                  f"{get_json(status_url)['selected']['id']}")
    shot(page, "14_click_selects_contour")

    # the reviewer's name typed on the page goes with the next decision, with its UTC time, into review.json
    page.fill("#reviewer", "Dr Web")
    page.keyboard.press("Enter")
    wait_for(lambda: get_json(status_url)["reviewer"] == "Dr Web", what="the reviewer's name")
    page.click(f"#accept-{b.id}")
    wait_for(lambda: decisions_on_disk(run / "review").get(str(b.id)) == "accepted", what="the accept on disk")
    event = json.loads((run / "review" / "review.json").read_text())["events"][-1]
    assert (event["candidate"], event["action"], event["by"]) == (b.id, "accepted", "Dr Web")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["at"])

    # a click with no contour under it: the other views move through that point, the crosshair is drawn there
    before = get_json(status_url)
    for fx, fy in ((0.2, 0.2), (0.8, 0.25), (0.25, 0.8), (0.75, 0.75)):
        px, py = box["x"] + fx * box["width"], box["y"] + fy * box["height"]
        page.mouse.move(px, py)
        page.mouse.move(px + 1, py)
        cursor = wait_for(lambda: page.inner_text("#cursor-values"), what="the readout under the cursor")
        if "GTVn" not in cursor:
            break
    page.mouse.click(px, py)
    after = wait_for(lambda: (s := get_json(status_url))["crosshair_ras"] != before["crosshair_ras"] and s,
                     what="the linked crosshair")
    assert after["selected"]["id"] == b.id  # not a contour: the selection stays
    assert after["slice_offsets"]["axial"] == pytest.approx(before["slice_offsets"]["axial"])  # the clicked view stays
    assert after["slice_offsets"]["coronal"] != pytest.approx(before["slice_offsets"]["coronal"], abs=0.5)
    views = get_json(status_url + "?ras=" + ",".join(str(v) for v in after["crosshair_ras"]))["point_views"]
    assert all(abs(v["plane_distance_mm"]) < 1e-3 for v in views.values())  # every view passes through it
    assert views["axial"]["xy"] == pytest.approx([px - box["x"], py - box["y"]], abs=3)  # where the click was
    shot(page, "15_linked_crosshair")

    # one axial slice step renders the axial view only (status.json timings count each view's renders)
    renders = lambda: get_json(status_url)["timings"]["renders"]  # noqa: E731
    time.sleep(1.0)
    before = renders()
    page.keyboard.press("PageUp")
    wait_for(lambda: renders()["axial"]["n"] > before["axial"]["n"], what="the axial render of a slice step")
    time.sleep(1.0)
    after = renders()
    assert after["coronal"]["n"] == before["coronal"]["n"] and after["sagittal"]["n"] == before["sagittal"]["n"]
    page.close()
