"""Dask stays on loopback (issue 31): the `dask scheduler` and `dask worker` lines of docs/SCALING.md, started as
written there (other ports), and run-batch's embedded LocalCluster open no listening socket outside 127.0.0.0/8 or
::1, checked on every process after start-up; run-batch --scheduler warns about an address off this machine that is
not encrypted (without connecting to it)."""

import ipaddress
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from LNStagingLib.cli import main
from LNStagingLib.scaling.clusters import exposure_warning
from scaling_support import stop_processes

REPO = Path(__file__).resolve().parents[1]
DASK = Path(sys.executable).with_name("dask")


def docs_commands() -> list[str]:
    """The scheduler and worker lines of the 'A running Dask cluster' block of docs/SCALING.md."""
    text = (REPO / "docs" / "SCALING.md").read_text()
    block = re.search(r"## A running Dask cluster\s+```\n(.*?)```", text, re.S).group(1)
    lines = [line for line in block.splitlines() if re.search(r"\bdask (scheduler|worker)\b", line)]
    assert len(lines) == 2, block
    return lines


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listeners(pids: list[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every listening TCP socket of these processes and their children."""
    found = []
    processes = [psutil.Process(pid) for pid in pids]
    for process in processes + [c for p in processes for c in p.children(recursive=True)]:
        for connection in process.net_connections(kind="inet"):
            if connection.status == psutil.CONN_LISTEN:
                found.append((process.pid, connection.laddr.ip, connection.laddr.port))
    return found


def outside_loopback(found) -> list:
    return [entry for entry in found if not ipaddress.ip_address(entry[1].split("%")[0]).is_loopback]


def start(line: str, ports: dict[str, str]) -> subprocess.Popen:
    """A docs line as a process: its VAR=value prefixes as environment, `dask` as this environment's."""
    for old, new in ports.items():
        line = line.replace(old, new)
    words = shlex.split(line.replace("/path/to/LNStaging", str(REPO)))
    env = dict(os.environ)
    while "=" in words[0]:
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    assert words[0] == "dask", line
    return subprocess.Popen([str(DASK), *words[1:]], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_docs_dask_commands_listen_on_loopback_only():
    from distributed import Client

    scheduler_line, worker_line = docs_commands()
    assert "--dashboard-address 127.0.0.1:" in scheduler_line and "--host 127.0.0.1" in worker_line
    ports = {"8786": str(free_port()), "8787": str(free_port())}
    processes = [start(scheduler_line, ports)]
    try:
        address = f"tcp://127.0.0.1:{ports['8786']}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", int(ports["8786"])), timeout=1):
                    break
            except OSError:
                time.sleep(0.3)
        processes.append(start(worker_line, ports))
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(1, timeout=120)
            time.sleep(1.0)  # every server of the worker (nanny, worker, HTTP) has started when it registered
            found = listeners([p.pid for p in processes])
            workers = client.scheduler_info()["workers"]
        assert not outside_loopback(found), f"listening outside loopback: {outside_loopback(found)}"
        ports_open = {port for _, _, port in found}
        assert {int(ports["8786"]), int(ports["8787"])} <= ports_open, found  # scheduler and its HTTP endpoint
        worker_pids = {pid for pid, _, _ in found if pid != processes[0].pid}
        assert len(worker_pids) >= 1 and len(found) >= 5, found  # + nanny, worker and the worker's HTTP endpoint
        assert all(w.startswith("tcp://127.0.0.1:") for w in workers), workers
    finally:
        stop_processes(processes)


@pytest.mark.slow
def test_embedded_local_cluster_listens_on_loopback_only():
    from distributed import Client

    from LNStagingLib.scaling.clusters import local_sizing, start_local_cluster

    cluster = start_local_cluster(local_sizing(workers=1, cores=1, memory_gb=4))
    try:
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=120)
            found = listeners([os.getpid()])
        assert not outside_loopback(found), f"listening outside loopback: {outside_loopback(found)}"
        assert len({pid for pid, _, _ in found}) >= 2 and len(found) >= 3, found  # this process and its worker
    finally:
        cluster.close()


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:8786", "127.0.0.1:8786", "tcp://localhost:8786",
                                     "tcp://[::1]:8786", "tls://10.1.2.3:8786"])
def test_no_warning_for_loopback_or_tls(address):
    assert exposure_warning(address) is None


@pytest.mark.parametrize("address", ["tcp://10.1.2.3:8786", "10.1.2.3:8786", "tcp://0.0.0.0:8786"])
def test_unencrypted_scheduler_off_this_machine_is_warned_about(address, tmp_path, monkeypatch, capsys):
    import dask
    import distributed

    assert "not encrypted" in exposure_warning(address)
    with dask.config.set({"distributed.comm.require-encryption": True}):
        assert exposure_warning(address) is None

    def no_connection(*args, **kwargs):  # never send anything to an address off this machine
        raise OSError("not connecting in a test")

    monkeypatch.setattr(distributed, "Client", no_connection)
    cohort = REPO / "Resources" / "DemoCase"
    code = main(["run-batch", "--data", str(cohort), "--out", str(tmp_path / "out"), "--models", "none",
                 "--scheduler", address])
    err = capsys.readouterr().err
    assert code == 2 and "Cannot reach the Dask scheduler" in err
    warning = [line for line in err.splitlines() if line.startswith("Warning: the Dask scheduler")]
    assert len(warning) == 1 and address in warning[0] and "https://" in warning[0], err  # docs as a URL
