"""Access control for the review server: who may load the page, drive the websocket and download the review.

Three layers, each checked on every HTTP request and on the websocket handshake (docs/REVIEW.md, Security):

- **Host and Origin** (``origin_host_middleware``): the ``Host`` header must name this server (a loopback name,
  ``--host``, this machine's name or the address the connection arrived on) with the server's port, and an ``Origin``
  or ``Sec-Fetch-Site`` header, when a browser sends one, must say the request comes from this server's own page.
  This stops DNS rebinding (a foreign name resolving to 127.0.0.1 reads ``/lnstaging/download/*``) and any web page
  the user visits from opening the websocket and driving the review (cross-site websocket hijacking).
- **A per-session wslink secret** (``new_secret`` / ``launcher_handler``): trame's client asks ``POST /paraview/``
  (the wslink launcher protocol) for its session settings and receives the secret with them; that route is under the
  same Host/Origin checks, so only this server's page can learn it. A client that knows only wslink's public default
  (``wslink-secret``) is refused.
- **The token** (``token_middleware``): off loopback (or with ``--require-token``) every request must carry the
  token printed at start: ``?token=...`` in the first URL, after which an HttpOnly, SameSite=Strict cookie carries it
  (the page's own asset and websocket requests do not repeat the query string).

And limits against denial of service (``limit_message_size``, ``limit_connections``): websocket messages are capped
at MAX_MESSAGE_BYTES (wslink allowed 4 GiB, allocated from a chunk header), HTTP connections without a complete
request, websockets without a hello and messages whose chunks stop are closed after fixed timeouts, and every
``/lnstaging/`` response (downloads, status) says ``Cache-Control: no-store``.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
from typing import Iterable, Optional
from urllib.parse import urlsplit

COOKIE = "lnstaging_token"
QUERY = "token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
SAME_ORIGIN_FETCH_SITES = ("same-origin", "none")  # Sec-Fetch-Site of the page's own requests, or a typed URL
WEBSOCKET_PATH = "/ws"
PRIVATE_PREFIX = "/lnstaging/"  # downloads and status: never kept in a browser's or proxy's cache (no-store)

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost' (names are resolved: a name that maps elsewhere is not loopback)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def new_token() -> str:
    return secrets.token_urlsafe(24)


def new_secret() -> str:
    """The wslink secret of one server run (replaces wslink's public default 'wslink-secret')."""
    return secrets.token_urlsafe(32)


# ---- Host and Origin ------------------------------------------------------------------------------------------------

def _normal_name(name: str) -> str:
    """Lower case, no brackets around an IPv6 literal, no trailing dot."""
    name = name.strip().lower().rstrip(".")
    return name[1:-1] if name.startswith("[") and name.endswith("]") else name


def split_authority(authority: str, default_port: int = 80) -> Optional[tuple[str, int]]:
    """'host:port' (or '[v6]:port', or 'host' meaning port ``default_port``) as (name, port); None if malformed."""
    try:
        parts = urlsplit("//" + authority.strip())
        port = parts.port
        name = parts.hostname
    except ValueError:
        return None
    if not name or parts.username is not None or parts.path or parts.query:
        return None
    return _normal_name(name), port if port is not None else default_port


def server_names(configured_host: str) -> set[str]:
    """The names a browser may use for this server: loopback names, --host, and when --host is a wildcard
    (0.0.0.0, ::) this machine's own names. The address a connection arrives on is added per request."""
    names = {_normal_name(n) for n in LOOPBACK_NAMES}
    host = _normal_name(configured_host or "")
    if host in WILDCARD_HOSTS:
        for name in (socket.gethostname(), socket.getfqdn()):
            if name:
                names.add(_normal_name(name))
    elif host:
        names.add(host)
    return names


def request_problem(headers, local_address: Optional[str], local_port: int, names: Iterable[str],
                    method: str = "GET") -> Optional[str]:
    """Why a request must be refused (its Host, Origin or Sec-Fetch-Site is not this server's page), or None.

    ``headers`` is a case-insensitive mapping; ``local_address``/``local_port`` are where the connection arrived
    (an IP literal equal to that address can never be a rebinding name)."""
    allowed = set(names)
    if local_address:
        allowed.add(_normal_name(local_address))
    host_header = headers.get("Host")
    if not host_header:
        return "no Host header"
    host = split_authority(host_header)
    if host is None or host[0] not in allowed or host[1] != local_port:
        return f"Host '{host_header}' is not this server"
    origin = headers.get("Origin")
    if origin is not None:
        parts = urlsplit(origin)
        if parts.scheme != "http":
            return f"Origin '{origin}' is not this server's page"
        authority = split_authority(parts.netloc)
        if authority is None or authority[0] not in allowed or authority[1] != local_port:
            return f"Origin '{origin}' is not this server's page"
    fetch_site = headers.get("Sec-Fetch-Site")
    top_level_navigation = (method == "GET" and headers.get("Sec-Fetch-Mode") == "navigate"
                            and headers.get("Sec-Fetch-Dest") == "document")  # a followed link: reads nothing back
    if fetch_site is not None and fetch_site.lower() not in SAME_ORIGIN_FETCH_SITES and not top_level_navigation:
        return f"a request from another site (Sec-Fetch-Site: {fetch_site})"
    return None


def origin_host_middleware(configured_host: str):
    """An aiohttp middleware refusing (403) any request, the websocket upgrade included, whose Host or Origin is
    not this server's own page. Runs before routing, so unknown paths get 403 too."""
    from aiohttp import web

    names = frozenset(server_names(configured_host))

    @web.middleware
    async def check_origin_and_host(request, handler):
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        local_address, local_port = (sockname[0], sockname[1]) if sockname else (None, -1)
        problem = request_problem(request.headers, local_address, local_port, names, request.method)
        if problem:
            log.warning("refused %s %s: %s", request.method, request.path, problem)
            return web.Response(status=403, text=f"LNStaging review: refused: {problem}. Open the address the "
                                                 "server printed at start.\n")
        response = await handler(request)
        if not getattr(response, "prepared", True):  # not framed by another site (clickjacking)
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
            if request.path.startswith(PRIVATE_PREFIX):  # RTSTRUCT, review, report: the patient's data
                response.headers["Cache-Control"] = "no-store"
        return response

    return check_origin_and_host


# ---- the wslink secret --------------------------------------------------------------------------------------------

def launcher_handler(secret: str):
    """``POST /paraview/``: what trame's client asks before connecting (the wslink launcher protocol): the websocket
    URL (USE_HOST is replaced by the page's own host:port) and this run's secret."""
    from aiohttp import web

    async def launcher(_request):
        return web.json_response({"sessionURL": f"ws://USE_HOST{WEBSOCKET_PATH}", "secret": secret},
                                 headers={"Cache-Control": "no-store"})

    return launcher


def use_secret(server, secret: str) -> None:
    """Make ``secret`` the wslink secret of this trame server (its ``--authKey`` option, set as the default so
    nothing appears on a command line)."""
    server.cli.set_defaults(authKey=secret, authKeyFile=None)


# ---- the token ----------------------------------------------------------------------------------------------------

def token_middleware(token: str):
    """An aiohttp middleware that refuses (403) any request without the token, in the query or the cookie."""
    from aiohttp import web

    @web.middleware
    async def check_token(request, handler):
        given_query = request.query.get(QUERY, "")
        given_cookie = request.cookies.get(COOKIE, "")
        if not (secrets.compare_digest(given_query.encode(), token.encode())
                or secrets.compare_digest(given_cookie.encode(), token.encode())):
            return web.Response(status=403, text="LNStaging review: this server needs the access token printed "
                                                 "when it started (open the URL with ?token=...).\n")
        response = await handler(request)
        if given_query and not given_cookie and hasattr(response, "set_cookie"):
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
        return response

    return check_token


# ---- limits: message size and connection timeouts (denial of service) ---------------------------------------------

# The largest message the review page sends is 249-268 bytes (two runs, Chromium, a review of the real STS_001
# case: jumps, decisions, operating point, reviewer name, a brush stroke, undo, export; Testing/test_web_security.py,
# docs/REVIEW.md, Security). wslink lets an authenticated client announce up to 4 GiB per message and allocates it
# from the 12-byte chunk header alone; 1 MiB is about 4000 times what the page needs, little memory per connection.
MAX_MESSAGE_BYTES = 1024 * 1024
HTTP_IDLE_TIMEOUT_S = 15.0  # an HTTP connection without a complete request (idle, or headers trickled: slowloris)
AUTH_TIMEOUT_S = 10.0  # a websocket that has not said hello with the secret by then is closed
PARTIAL_MESSAGE_TIMEOUT_S = 30.0  # a websocket message whose chunks stop arriving before it is complete


class MessageRefused(ValueError):
    """A websocket message the server will not assemble (too large, or more pending than the cap)."""


def limit_message_size(server) -> None:
    """Cap a websocket frame at MAX_MESSAGE_BYTES (plus wslink's header allowance) for this trame server: aiohttp
    refuses a larger frame from its header, before reading it. Call before the server starts."""
    server.options["ws_max_msg_size"] = MAX_MESSAGE_BYTES


def _capped_unchunker(close):
    """wslink's UnChunker, but never holding more than MAX_MESSAGE_BYTES of announced messages at once (it allocates
    a message's full size from its first chunk's header), and closing the connection (``close(reason)``) when a
    started message is not complete within PARTIAL_MESSAGE_TIMEOUT_S."""
    import asyncio

    from wslink.chunking import HEADER_LENGTH, ID_LOCATION, MESSAGE_SIZE_LOCATION, UINT32_LENGTH, UnChunker

    class CappedUnChunker(UnChunker):
        def set_max_message_size(self, size):  # wslink raises it to 4 GiB after the hello
            super().set_max_message_size(min(size, MAX_MESSAGE_BYTES))

        def process_chunk(self, chunk: bytes):
            message_id = int.from_bytes(chunk[ID_LOCATION:ID_LOCATION + UINT32_LENGTH], "little")
            total = int.from_bytes(chunk[MESSAGE_SIZE_LOCATION:MESSAGE_SIZE_LOCATION + UINT32_LENGTH], "little")
            if message_id not in self.pending_messages:
                pending = sum(len(m["content"]) for m in self.pending_messages.values())
                if total > self.max_message_size or pending + total > MAX_MESSAGE_BYTES:
                    raise MessageRefused(f"a message of {total} bytes ({pending} pending) is over the "
                                         f"{self.max_message_size}-byte limit")
                if total > len(chunk) - HEADER_LENGTH:  # more chunks to come: they must come soon
                    asyncio.get_running_loop().call_later(PARTIAL_MESSAGE_TIMEOUT_S, self._expire, message_id)
            return super().process_chunk(chunk)

        def _expire(self, message_id):
            if message_id in self.pending_messages:
                self.pending_messages.pop(message_id, None)
                close(f"a message was not complete after {PARTIAL_MESSAGE_TIMEOUT_S:g} s")

    return CappedUnChunker()


def _guard_handler(handler) -> None:
    """Wrap one wslink websocket handler: capped message assembly, a deadline for the hello, and a refused message
    closing its connection with one log line instead of a traceback."""
    import asyncio

    from aiohttp import WSCloseCode

    connect, on_message = handler.onConnect, handler.onMessage

    def closer(client_id):
        def close(reason: str, code=WSCloseCode.POLICY_VIOLATION):
            ws = handler.connections.get(client_id)
            if ws is not None and not ws.closed:
                log.warning("closed a websocket: %s", reason)
                asyncio.ensure_future(ws.close(code=code, message=reason[:120].encode()))
        return close

    async def guarded_connect(request, client_id):
        await connect(request, client_id)
        close = closer(client_id)
        handler.unchunkers[client_id] = _capped_unchunker(close)

        def require_hello():
            if not handler.isClientAuthenticated(client_id):
                close(f"no authenticated hello within {AUTH_TIMEOUT_S:g} s")

        asyncio.get_running_loop().call_later(AUTH_TIMEOUT_S, require_hello)

    async def guarded_message(is_binary, msg, client_id):
        try:
            await on_message(is_binary, msg, client_id)
        except MessageRefused as refused:
            if client_id in handler.unchunkers:
                handler.unchunkers[client_id].release_pending_messages()
            closer(client_id)(str(refused), WSCloseCode.MESSAGE_TOO_BIG)
        except ValueError as refused:  # wslink's own refusals (its 512-byte limit before the hello, bad chunks)
            closer(client_id)(f"refused message: {refused}".replace("\n", " "), WSCloseCode.MESSAGE_TOO_BIG)

    handler.onConnect, handler.onMessage = guarded_connect, guarded_message


def limit_connections(wslink_server) -> None:
    """Time out idle and half-sent connections and cap websocket messages on wslink's aiohttp server (call from
    trame's on_server_bind, before it starts).

    HTTP: aiohttp closes a connection that has no complete request HTTP_IDLE_TIMEOUT_S after it opened or after its
    last response (its keep-alive timeout, also checked while headers trickle in); its default is an hour. It is set
    through the Application's handler_args (aiohttp's documented hook; wslink creates the Application itself).
    Websocket: see _guard_handler. wslink's heartbeat (30 s ping) still closes a peer that stopped answering."""
    from wslink.protocol import WslinkHandler

    app = wslink_server.app
    app._handler_args = {**(app._handler_args or {}), "keepalive_timeout": HTTP_IDLE_TIMEOUT_S}
    handlers = {getattr(route.handler, "__self__", None) for route in app.router.routes()}
    guarded = [h for h in handlers if isinstance(h, WslinkHandler)]
    for handler in guarded:
        _guard_handler(handler)
    if not guarded:
        raise RuntimeError("the wslink websocket route was not found: its message limits cannot be applied")
