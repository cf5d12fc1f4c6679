"""``lnstaging review RESULTS --read-only``: a second look at a folder another server owns. It takes no lock, shows
the saved review, refuses every change with one clear message and writes nothing (no review folder, no temporary,
no lock file)."""

from __future__ import annotations

import signal

import pytest

pytest.importorskip("trame_slicer")

from test_web_security import write_run  # noqa: E402

from LNStagingLib.web import review_lock  # noqa: E402
from LNStagingLib.web.cases import find_cases  # noqa: E402


def snapshot(folder):
    return {p.relative_to(folder): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*"))
            if p.is_file()}


def session_on(batch, read_only):
    from trame_slicer.core import SlicerApp

    from LNStagingLib.web.session import ReviewSession

    return ReviewSession(SlicerApp(), find_cases(batch), read_only=read_only)


def test_read_only_session_shows_the_saved_review_and_refuses_every_change(tmp_path):
    from LNStagingLib.web.session import ReadOnlyReviewError

    batch = tmp_path / "batch"
    for name in ("p01", "p02"):
        write_run(batch / name)
    owner = session_on(batch, read_only=False)  # the server that owns p01 saved a decision
    owner.open_case("p01")
    owner.set_review(2, "rejected")
    owner.close_case()
    before = snapshot(batch)

    viewer = session_on(batch, read_only=True)
    try:
        viewer.open_case("p01")
        status = viewer.status()
        assert status["read_only"] and status["decisions"]["2"] == "rejected"
        viewer.select(3)  # looking around is allowed
        viewer.set_overlay("pet", 0.3)
        viewer.set_ct_preset("lung")
        viewer.set_tool("none")
        changes = {
            "a decision": lambda: viewer.set_review(1, "accepted"),
            "changing the operating point": lambda: viewer.set_threshold(0.2),
            "setting the reviewer's name": lambda: viewer.set_reviewer("Dr B"),
            "showing or hiding rejected": lambda: viewer.set_show_rejected(True),
            "switching re-scoring": lambda: viewer.set_rescoring(False),
            "contour editing": lambda: viewer.set_tool("paint"),
            "undo": viewer.undo,
            "redo": viewer.redo,
            "export": viewer.export_rtstruct,
            "writing the report": viewer.write_report,
            "saving": viewer.save,
        }
        for what, change in changes.items():
            with pytest.raises(ReadOnlyReviewError, match=f"read-only \\(--read-only\\): {what}") as refused:
                change()
            assert "\n" not in str(refused.value) and "without --read-only" in str(refused.value)
        assert viewer.status()["decisions"] == status["decisions"] and viewer.tool == "none"
        viewer.open_case("p02")  # never reviewed: a normal server would create p02/review now
        assert not (batch / "p02" / "review").exists()
    finally:
        viewer.close_case()
    assert snapshot(batch) == before


def test_read_only_command_takes_no_lock_and_cleans_nothing(tmp_path, monkeypatch):
    from LNStagingLib.cli import main
    from LNStagingLib.commands import review

    run = write_run(tmp_path / "run")
    stale = run / ".review.partial-1.otherhost-x"  # what a live save of the owner may look like: left alone
    stale.mkdir()
    served = []
    monkeypatch.setattr(review, "serve", lambda args, cases: served.append(args.read_only) or 0)
    owner = review_lock.ReviewLock.acquire(run)
    try:
        assert main(["review", str(run), "--port", "0"]) == 2  # the folder is owned: a second server is refused
        assert served == []
        assert main(["review", str(run), "--port", "0", "--read-only"]) == 0
        assert served == [True]
        assert owner.held and (run / review_lock.LOCK_NAME).is_file() and stale.is_dir()
    finally:
        owner.release()
    assert main(["review", str(run), "--port", "0", "--read-only"]) == 0
    assert not (run / review_lock.LOCK_NAME).exists() and stale.is_dir()


@pytest.mark.slow
def test_read_only_server_beside_the_owner(tmp_path):
    """Two real servers on one folder: the owner, and a read-only one that starts anyway, says so, and writes
    nothing (the lock stays the owner's; report.html is not regenerated)."""
    import json
    import urllib.error
    import urllib.request

    from review_server import Server, get_json

    run = write_run(tmp_path / "run")
    owner = Server([str(run), "--port", "0"], tmp_path / "owner.log")
    viewer = None
    try:
        lock = json.loads((run / review_lock.LOCK_NAME).read_text())
        before = snapshot(run)
        viewer = Server([str(run), "--port", "0", "--read-only"], tmp_path / "viewer.log")
        status = get_json(viewer.base + "/lnstaging/status.json")
        assert status["read_only"] and status["decisions"]
        assert not get_json(owner.base + "/lnstaging/status.json")["read_only"]
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(viewer.base + "/lnstaging/download/report.html", timeout=10)
        assert missing.value.code == 404
        assert json.loads((run / review_lock.LOCK_NAME).read_text()) == lock
        assert snapshot(run) == before
        assert any(line.startswith("Read-only: nothing is saved") for line in list(viewer.lines.queue))
    finally:
        if viewer is not None:
            viewer.kill(signal.SIGTERM)
        owner.kill(signal.SIGTERM)
