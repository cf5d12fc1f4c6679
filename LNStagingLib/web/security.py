"""Access control for the review server: loopback is open to the local user, anything else needs a token.

A review page shows patient images, so a server reachable from the network must not serve them to anyone who
finds the port. When bound to a non-loopback address, every HTTP request and the websocket must carry the
token printed at start: ``?token=...`` in the first URL, after which an HttpOnly, SameSite=Strict cookie carries
it (the page's own asset and websocket requests do not repeat the query string).
"""

from __future__ import annotations

import ipaddress
import secrets
import socket

COOKIE = "lnstaging_token"
QUERY = "token"


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


def token_middleware(token: str):
    """An aiohttp middleware that refuses (403) any request without the token, in the query or the cookie."""
    from aiohttp import web

    @web.middleware
    async def check_token(request, handler):
        given_query = request.query.get(QUERY, "")
        given_cookie = request.cookies.get(COOKIE, "")
        if not (secrets.compare_digest(given_query, token) or secrets.compare_digest(given_cookie, token)):
            return web.Response(status=403, text="LNStaging review: this server needs the access token printed "
                                                 "when it started (open the URL with ?token=...).\n")
        response = await handler(request)
        if given_query and not given_cookie and hasattr(response, "set_cookie"):
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
        return response

    return check_token
