"""Temporary names on a file system several hosts share (cluster runs, issue 18): they carry the writer's PID *and*
host, so a host never tidies (or restores) another host's live writer's files because a PID of the same number is
not running here, and two hosts' writers with the same PID never pick the same name."""

import os
import re
import socket
import subprocess
import sys

import pytest

from LNStagingLib.io import atomic


def dead_pid() -> int:
    """The PID of a process that has finished (not running on this host)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(done.stdout)
    assert not atomic._pid_alive(pid)
    return pid


@pytest.mark.parametrize("hostname, tag", [
    ("node-07.cluster.example.org", "node_07"),
    ("gpu01", "gpu01"),
    ("a" * 40 + ".x", "a" * 24),
    ("bad/name with spaces", "bad_name_with_spaces"),
    ("", "host"),
])
def test_host_tag_is_short_and_safe(monkeypatch, hostname, tag):
    monkeypatch.setattr(socket, "gethostname", lambda: hostname)
    assert atomic.host_tag() == tag
    assert atomic.writer_tag() == f"{os.getpid()}.{tag}"


def test_temporary_names_carry_pid_and_host(tmp_path, monkeypatch):
    monkeypatch.setattr(socket, "gethostname", lambda: "node-07.cluster")
    final = tmp_path / "results"
    with atomic.atomic_directory(final) as tmp:
        assert re.fullmatch(rf"\.results\.partial-{os.getpid()}\.node_07-\w+", tmp.name), tmp.name
        (tmp / "provenance.json").write_text("{}")
    with atomic.atomic_file(tmp_path / "report.txt") as tmp:
        assert tmp.name.startswith(f".report.txt.partial-{os.getpid()}.node_07-") and tmp.name.endswith(".txt")
        tmp.write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.txt", "results"]


def test_another_hosts_leftovers_are_never_touched(tmp_path):
    """Same dead PID, two hosts: this host's leftovers are tidied (and its moved-aside folder put back), the other
    host's stay, since its writer may be running there right now."""
    pid, here = dead_pid(), atomic.host_tag()
    other = "othernode" if here != "othernode" else "elsewhere"
    final = tmp_path / "results"
    mine_partial = tmp_path / f".results.partial-{pid}.{here}-abc"
    theirs_partial = tmp_path / f".results.partial-{pid}.{other}-abc"
    theirs_old = tmp_path / f".results.old-{pid}.{other}"
    mine_old = tmp_path / f".results.old-{pid}.{here}"
    legacy = tmp_path / f".results.partial-{pid}-xyz"  # written before the host was in the name: this host's
    for folder in (mine_partial, theirs_partial, theirs_old, mine_old, legacy):
        folder.mkdir()
        (folder / "candidates.json").write_text(folder.name)
    atomic.recover_after_kill(final)
    assert (final / "candidates.json").read_text() == mine_old.name  # this host's previous results put back
    assert not mine_partial.exists() and not legacy.exists()
    assert theirs_partial.is_dir() and theirs_old.is_dir()
    assert (theirs_old / "candidates.json").read_text() == theirs_old.name


def test_a_live_writer_of_this_host_is_left_alone(tmp_path):
    partial = tmp_path / f".results.partial-{atomic.writer_tag()}-abc"
    partial.mkdir()
    atomic.recover_after_kill(tmp_path / "results")
    assert partial.is_dir()


def test_review_lock_is_removed_only_by_its_own_host(tmp_path, monkeypatch):
    """A lock file naming our PID on another host is not ours: release leaves it."""
    import json

    from LNStagingLib.web import review_lock

    lock = review_lock.ReviewLock.acquire(tmp_path)
    owner = json.loads(lock.path.read_text())
    assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
    monkeypatch.setattr(socket, "gethostname", lambda: "another-host")
    lock.release()
    assert lock.path.is_file() and not lock.held
    monkeypatch.undo()
    lock.path.unlink()
    lock = review_lock.ReviewLock.acquire(tmp_path)
    lock.release()
    assert not lock.path.exists()
