"""How the emulator's services answer: an HTTP code and a JSON body, errors in Google's shape.

Google APIs answer an error with `{"error": {"code", "message", "status"}}`, where
`status` is the google.rpc.Code name; the client libraries raise from it.
"""

from typing import Any, Dict, Tuple

Reply = Tuple[int, Any]  # HTTP code (0: drop the connection unanswered), JSON body


def error_body(code: int, status: str, message: str) -> Dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def error_reply(code: int, status: str, message: str) -> Reply:
    return code, error_body(code, status, message)
