"""Which requests the emulators answer: only the SDK's, never a web page's.

Anything on this machine can reach 127.0.0.1, including every web page a browser shows. A
page can POST a `text/plain` body to the emulator without asking (a "simple" cross-site
request), and by DNS rebinding its own host name can come to mean 127.0.0.1. Either would
run a pipeline, which is a command of the page's choosing. The Google client libraries
name the emulator's own address in `Host` (127.0.0.1:PORT or localhost:PORT, as
`api_endpoint` and STORAGE_EMULATOR_HOST say), send `Content-Type: application/json`
to the Vertex API and no `Origin`; a browser always sends `Origin` or `Sec-Fetch-Site`
on a cross-site request and cannot send JSON without a CORS preflight, which is refused.
So each request is checked before it is read, and refused with a 4xx if it fails. On the
Vertex API the same check bounds what is read: a body needs one Content-Length, at most
bodies.MAX_BODY_BYTES (413 otherwise, the body left unread: what the client goes on sending
is received and dropped for a moment, so that it reads the answer).
"""

import json
import re
import socket
import time
from typing import Any, FrozenSet, Optional, Tuple

from .bodies import MAX_BODY_BYTES
from .replies import error_body

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_READ_ONLY = ("GET", "HEAD")
_WITH_BODY = ("POST", "PUT", "PATCH")
_LENGTH = re.compile(r"[0-9]+")
_DISCARD_S = 2.0  # how long a refused request's unread body is received and dropped
_DISCARD_CHUNK = 64 * 1024

Refusal = Tuple[int, str, str]  # HTTP code, google.rpc status, message


def own_hosts(port: int, bound: str = "127.0.0.1") -> FrozenSet[str]:
    """The `Host` values that name this server: its loopback names with its port."""
    names = set(LOOPBACK_NAMES)
    if bound not in ("", "0.0.0.0", "::"):
        names.add(f"[{bound}]" if ":" in bound else bound)
    return frozenset(f"{n.lower()}:{port}" for n in names)


def refusal(method: str, headers: Any, hosts: FrozenSet[str], json_only: bool) -> Optional[Refusal]:
    """Why a request must not be served, or None. `headers` is the request's
    (case-insensitive) header map; `json_only` asks for a JSON body on every request that
    has a body or changes something."""
    host = (headers.get("Host") or "").strip().lower()
    if host not in hosts:
        shown = ", ".join(sorted(hosts))
        return 403, "PERMISSION_DENIED", f"Host {host or '(none)'!r} is not this emulator's address ({shown}): request refused"
    if headers.get("Origin") is not None or (headers.get("Sec-Fetch-Site") or "none").lower() != "none":
        return 403, "PERMISSION_DENIED", "a request sent by a web page (it has Origin or Sec-Fetch-Site): refused"
    if not json_only:
        return None
    given = headers.get_all("Content-Length") or []
    if len(given) > 1 or not all(_LENGTH.fullmatch(v.strip()) for v in given):
        return 400, "INVALID_ARGUMENT", f"Content-Length {', '.join(given)!r}: one number of bytes, 0 or more, is accepted"
    length = int(given[0]) if given else 0
    has_body = length > 0 or headers.get("Transfer-Encoding") is not None
    if method not in _READ_ONLY or has_body:
        media = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media != "application/json":
            return 415, "INVALID_ARGUMENT", f"Content-Type {media or '(none)'!r}: this API takes application/json only"
        if headers.get("Transfer-Encoding") is not None or (not given and method in _WITH_BODY):
            return 411, "INVALID_ARGUMENT", f"{method} requests require a Content-Length header"
    if length > MAX_BODY_BYTES:
        return 413, "INVALID_ARGUMENT", f"the body ({length} bytes) is over this API's limit of {MAX_BODY_BYTES} bytes"
    return None


def send_error(handler: Any, code: int, status: str, message: str) -> None:
    """Answers with Google's JSON error and closes the connection (any body is left unread)."""
    data = json.dumps(error_body(code, status, message)).encode()
    handler.close_connection = True
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.send_header("Connection", "close")
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(data)


def checked(handler: Any, json_only: bool) -> bool:
    """For a BaseHTTPRequestHandler's parse_request: False (answered) if refused."""
    address = handler.server.server_address
    found = refusal(handler.command, handler.headers, own_hosts(address[1], address[0]), json_only)
    if found is None:
        return True
    send_error(handler, *found)
    _discard_rest(handler.connection)
    return False


def _discard_rest(sock: socket.socket) -> None:
    """After a refusal sent before the body is read: ends the answer (FIN), then receives
    and drops what the client still sends, for at most _DISCARD_S. A client that sends its
    whole body before reading (urllib, requests) then reads the answer; closing with the
    body unread would reset the connection and lose it. Nothing received is kept."""
    deadline = time.monotonic() + _DISCARD_S
    try:
        sock.shutdown(socket.SHUT_WR)
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(_DISCARD_CHUNK):
                return
    except OSError:  # the client reset the connection, or the time is up
        return
