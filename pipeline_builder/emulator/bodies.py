"""What a request to the Vertex emulator may carry: bounded in size, in time and in nesting.

A body larger than MAX_BODY_BYTES is refused from its Content-Length, unread (guard). The
largest bodies the SDK sends are PipelineJob creates, whose pipelineSpec grows with the
sweep: about 13 KB a trial as separate tasks (13 MB for 1,000 trials, as the SDK's
indented JSON), 0.7 KB a trial in a loop (7 MB for 10,000); 32 MiB leaves room for both.
A body must arrive whole within the body timeout: a client that stops sending is answered
400 rather than holding a thread. JSON nested deeper than MAX_DEPTH is answered 400, as
protobuf's JSON parser (json_format, which reads Google's JSON bodies into their protos)
refuses it; a compiled pipeline nests 11 to 13 levels.
"""

import socket
import time
from typing import Any, List, Optional

from hydra_vertex_pipelines.components import strict_json

from .replies import Reply, error_reply

MAX_BODY_BYTES = 32 * 1024 * 1024
BODY_TIMEOUT_S = 30.0  # the default; `hydra-vertex-pipelines emulator --body-timeout`
MAX_DEPTH = 100  # json_format's max_recursion_depth
MAX_DISPLAY_NAME = 128  # PipelineJob.display_name, CustomJob.display_name: "up to 128 characters"
_CHUNK = 1024 * 1024
_INVALID = "Invalid JSON payload received."  # how Google's front end starts a bad body's message


class BodyRefused(Exception):
    """A body that is not served: its HTTP code, google.rpc status and message."""

    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


def read_body(rfile: Any, sock: socket.socket, length: int, timeout: float) -> bytearray:
    """`length` bytes from `rfile` (the handler's buffered socket file), all within `timeout`
    seconds: each read waits at most for the time left, and returns what has come."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    previous = sock.gettimeout()
    try:
        while len(data) < length:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
            chunk = rfile.read1(min(length - len(data), _CHUNK))
            if not chunk:
                raise BodyRefused(
                    400, "INVALID_ARGUMENT", f"the body ended after {len(data)} of its {length} bytes (Content-Length)"
                )
            data += chunk
    except TimeoutError:  # socket.timeout is TimeoutError
        raise BodyRefused(
            400, "INVALID_ARGUMENT", f"the body did not arrive within {timeout:g} s: {len(data)} of its {length} bytes came"
        ) from None
    finally:
        sock.settimeout(previous)
    return data


def parse_json(data: bytearray) -> Any:
    """The body's JSON value, or BodyRefused. The C parser stops at the interpreter's
    recursion limit with a RecursionError (no deep stack); what it returns is measured
    without recursion, so nothing later recurses deeper than MAX_DEPTH."""
    try:
        value = strict_json.loads_strict(bytes(data))  # bare NaN/Infinity refused, as Vertex's parser does
    except RecursionError:
        raise BodyRefused(400, "INVALID_ARGUMENT", _too_deep()) from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError and a non-finite number
        raise BodyRefused(400, "INVALID_ARGUMENT", f"{_INVALID} {e}") from None
    if _deeper_than(value, MAX_DEPTH):
        raise BodyRefused(400, "INVALID_ARGUMENT", _too_deep())
    return value


def display_name_refusal(field: str, name: Any) -> Optional[Reply]:
    """400 for a display name over MAX_DISPLAY_NAME characters, as Vertex refuses it.
    Neither aiplatform nor gcpc quotes Vertex's own answer; the text is aiplatform's
    client-side check's (utils.validate_display_name), with the field and the length."""
    if isinstance(name, str) and len(name) > MAX_DISPLAY_NAME:
        return error_reply(
            400,
            "INVALID_ARGUMENT",
            f"{field}: Display name needs to be less than {MAX_DISPLAY_NAME} characters (it has {len(name)}).",
        )
    return None


def _too_deep() -> str:
    return f"{_INVALID} Nesting too deep: more than {MAX_DEPTH} levels of objects and arrays."


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether objects and arrays nest more than `limit` levels (a scalar: 0), with a stack
    of containers rather than recursion."""
    stack: List[Any] = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False
