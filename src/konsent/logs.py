"""Logging that never carries personal data (S6, invariant 7).

konsent's own log calls pass only ids and codes. This filter is the second
line of defence: it masks anything that looks like a phone number, an e-mail
address or an opt-in code in every record, including third-party ones.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

_PATTERNS = [
    (re.compile(r"\+?\d[\d \-/().]{6,}\d"), "[number]"),
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"), "[email]"),
    (re.compile(r"\bKS[0-9A-Z]{10}\b", re.I), "[code]"),
]


# Startup lines whose arguments are the listen address and port from the configuration, never
# personal data: rendered as they are, or the redactor would turn 127.0.0.1:8000 into "[number]".
STARTUP_FORMAT = "konsent %s listening on %s://%s:%d (worker: %s, log format: %s)"
_CONFIG_ONLY_FORMATS = frozenset(
    {
        STARTUP_FORMAT,
        "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)",
        "Uvicorn running on %s://[%s]:%d (Press CTRL+C to quit)",
        "Uvicorn running on unix socket %s (Press CTRL+C to quit)",
        "Started server process [%d]",
    }
)


def redact(text: str) -> str:
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class RedactingFilter(logging.Filter):
    """Render the message, mask personal data, and drop the arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        record.msg = message if record.msg in _CONFIG_ONLY_FORMATS else redact(message)
        record.args = None
        return True


class _RedactedTracebacks(logging.Formatter):
    def formatException(self, ei: object) -> str:
        return redact(super().formatException(ei))  # type: ignore[arg-type]


class JsonFormatter(_RedactedTracebacks):
    """One JSON object per line: time, level, logger, message (and a redacted traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Log to stderr as text or JSON lines; every record passes the redactor first (S6)."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_RedactedTracebacks("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
