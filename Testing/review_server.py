"""``lnstaging review`` as a child process for tests, and a minimal wslink client (what trame's page speaks over the
websocket: msgpack messages in wslink chunks) to drive it the way a page, or a hostile page, would."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120


class Server:
    """``lnstaging review ARGS`` in its own process group; ``url`` once it printed its ready line (``wait=True``)."""

    def __init__(self, args: list[str], log_path: Path, wait: bool = True):
        env = dict(os.environ, VTK_DEFAULT_OPENGL_WINDOW="vtkEGLRenderWindow", PYTHONUNBUFFERED="1")
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "LNStagingLib", "review", *args], cwd=REPO, env=env,
                                     stdout=subprocess.PIPE, stderr=self.log, start_new_session=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self.start_seconds = None
        if wait:
            self.url, self.start_seconds = self._wait_ready()

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.put(raw.decode(errors="replace"))

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the review server exited with {self.proc.returncode}; see {self.log_path}")
                continue
            match = re.search(r"ready in .*?: (http://\S+)", line)
            if match:
                return match.group(1), time.perf_counter() - self.started
        raise RuntimeError(f"the review server did not start in {START_TIMEOUT_S} s; see {self.log_path}")

    @property
    def base(self) -> str:
        return self.url.split("?")[0].rstrip("/")

    @property
    def port(self) -> int:
        return int(re.search(r":(\d+)$", self.base).group(1))

    def stderr_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self, sig=signal.SIGKILL, timeout=30) -> float:
        """Send ``sig`` to the process group; seconds until it exited."""
        start = time.perf_counter()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=timeout)
        if not self.log.closed:
            self.log.close()
        return time.perf_counter() - start


def get_json(url: str, timeout: float = 10) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


class WslinkClient:
    """A websocket client of the review server speaking wslink (hello with a secret, RPC calls, published state)."""

    def __init__(self, ws):
        from wslink.chunking import UnChunker

        self.ws = ws
        self.unchunker = UnChunker()
        self.unchunker.set_max_message_size(1 << 30)  # the server's messages (wslink limits only the server side)
        self.published: list = []  # every 'trame.state.topic' payload received
        self._next = 1

    @classmethod
    async def connect(cls, session, port: int, origin: str | None, host: str = "127.0.0.1"):
        headers = {"Origin": origin} if origin else {}
        return cls(await session.ws_connect(f"http://{host}:{port}/ws", headers=headers))

    async def _send(self, message: dict) -> None:
        import msgpack
        from wslink.chunking import generate_chunks

        for chunk in generate_chunks(msgpack.packb(message), 4096):
            await self.ws.send_bytes(chunk)

    async def _reply(self, rpcid: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            message = await asyncio.wait_for(self.ws.receive(), max(deadline - time.monotonic(), 0.01))
            full = self.unchunker.process_chunk(message.data)
            if full is None:
                continue
            if full.get("id") == "publish:trame.state.topic:0" or "trame.state.topic" in str(full.get("id")):
                self.published.append(full.get("result"))
            if full.get("id") == rpcid:
                return full

    async def hello(self, secret: str, timeout: float = 10) -> dict:
        await self._send({"wslink": "1.0", "id": "system:c0:0", "method": "wslink.hello",
                          "args": [{"secret": secret}], "kwargs": {}})
        return await self._reply("system:c0:0", timeout)

    async def call(self, method: str, *args, timeout: float = 20) -> dict:
        rpcid = f"rpc:c0:{self._next}"
        self._next += 1
        await self._send({"wslink": "1.0", "id": rpcid, "method": method, "args": list(args), "kwargs": {}})
        return await self._reply(rpcid, timeout)

    async def update_state(self, **changes) -> dict:
        return await self.call("trame.state.update", [{"key": k, "value": v} for k, v in changes.items()])

    async def drain(self, seconds: float) -> None:
        """Collect what the server publishes for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                message = await asyncio.wait_for(self.ws.receive(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                return
            full = self.unchunker.process_chunk(message.data) if message.data is not None else None
            if full is not None and "trame.state.topic" in str(full.get("id")):
                self.published.append(full.get("result"))

    def published_values(self, key: str) -> list:
        return [p[key] for p in self.published if isinstance(p, dict) and key in p]

    async def close(self) -> None:
        await self.ws.close()


def axial_view_settled(page, status_url: str, ras) -> tuple | bool:
    """(picture box, the server's axial view at ``ras``) once the axial view's render window, its slice node and its
    picture on the page have one size (within a pixel), else False: the page's layout settles after the first
    renders, and a pixel position taken earlier lands elsewhere. Use with wait_for before clicking or painting."""
    view = get_json(status_url + "?ras=" + ",".join(f"{v:.3f}" for v in ras))["point_views"]["axial"]
    shown = page.locator("#views img").first.bounding_box()
    same = view["size"] == view["slice_size"] and all(
        abs(a - b) <= 1 for a, b in zip(view["size"], (shown["width"], shown["height"])))
    return same and (shown, view)
