"""Refuse unstorable input at the door with a clear 422, before any route sees it (#13 finding 8).

Every request except provider webhooks (their parsers check their own bodies, which must stay
byte-exact for the signature): the path, the query string and form or JSON bodies must not
hold NUL or lone surrogates, must be valid UTF-8, JSON must not nest deeper than 64 levels,
and no integer may lie beyond a database BIGINT (±2^63). Multipart uploads are checked by the importer itself.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from konsent.domain.inputs import int_out_of_range, json_problem, text_problem

_LONG_INT = re.compile(r"-?\d{19,}")
_MESSAGES = {
    "nul": "The request contains a NUL character.",
    "surrogate": "The request contains an invalid character (a lone surrogate).",
    "invalid_encoding": "The request is not valid UTF-8.",
    "too_deep": "The JSON body is nested too deeply.",
    "integer_out_of_range": "A number in the request is out of range.",
}
SKIP_PREFIXES = ("/webhooks/", "/static/")


def long_int_out_of_range(digits: str) -> bool:
    """Whether a decimal integer (sign, digits, leading zeros allowed) is outside the database's
    64-bit range, without converting thousands of digits (Python refuses over 4,300)."""
    sign = "-" if digits.startswith("-") else ""
    significant = digits.lstrip("-").lstrip("0") or "0"
    return len(significant) > 19 or int_out_of_range(int(sign + significant))


def pairs_problem(text: str) -> str:
    """Why URL-encoded pairs (a query string or form body) must be refused, or ""."""
    try:
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        return "invalid_encoding"
    except ValueError:
        return ""  # the route answers malformed input itself
    for key, value in pairs:
        problem = text_problem(key) or text_problem(value)
        if problem:
            return problem
        if _LONG_INT.fullmatch(value) and long_int_out_of_range(value):
            return "integer_out_of_range"
    return ""


def path_problem(path: str) -> str:
    problem = text_problem(path)
    if problem:
        return problem
    if any(_LONG_INT.fullmatch(part) and long_int_out_of_range(part) for part in path.split("/")):
        return "integer_out_of_range"
    return ""


class InputHygiene:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        problem = path_problem(path)
        if not problem and scope.get("query_string"):
            problem = pairs_problem(scope["query_string"].decode("latin-1"))
        if problem:
            await _refuse(problem, scope, receive, send)
            return
        ctype = b""
        for name, value in scope.get("headers", []):
            if name == b"content-type":
                ctype = value.split(b";", 1)[0].strip().lower()
        is_form = ctype == b"application/x-www-form-urlencoded"
        is_json = ctype == b"application/json" or ctype.endswith(b"+json")
        if path.startswith(SKIP_PREFIXES) or not (is_form or is_json):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = bytearray()
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        if messages[-1]["type"] == "http.request":
            problem = _body_problem(bytes(body), is_json)
            if problem:
                await _refuse(problem, scope, receive, send)
                return

        async def replay() -> Message:
            if messages:
                return messages.pop(0)
            return await receive()

        await self.app(scope, replay, send)


def _body_problem(body: bytes, is_json: bool) -> str:
    if not body:
        return ""
    if is_json:
        return json_problem(body)
    try:
        text = body.decode("ascii")  # URL-encoded bodies are ASCII; %-escapes carry the UTF-8
    except UnicodeDecodeError:
        return "invalid_encoding"
    return pairs_problem(text)


async def _refuse(problem: str, scope: Scope, receive: Receive, send: Send) -> None:
    """422 in the shape of every other validation error (the API documents it), naming the problem."""
    body = {
        "code": "invalid_input",
        "message": _MESSAGES[problem],
        "errors": [{"field": "", "message": problem}],
    }
    await JSONResponse(body, 422)(scope, receive, send)


__all__ = ["InputHygiene", "pairs_problem", "path_problem"]
