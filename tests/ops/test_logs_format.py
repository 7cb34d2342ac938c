"""Structured logs (KONSENT_LOG_FORMAT=json), still redacted; konsent's and uvicorn's startup
lines keep their listen address and port (S6, U6, #18)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from konsent.logs import STARTUP_FORMAT, setup_logging
from konsent.settings import Settings

PHONE = "+49 151 12345678"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line]


def test_uvicorn_and_konsent_startup_lines_keep_address_and_port(restore_logging, capsys):
    setup_logging("INFO")
    # exactly the calls uvicorn and `konsent serve` make
    logging.getLogger("uvicorn.error").info(
        "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)", "http", "127.0.0.1", 8000
    )
    logging.getLogger("konsent").info(STARTUP_FORMAT, "0.1.0", "http", "10.0.0.12", 8443, True, "text")
    logging.getLogger("konsent").info("message from %s", PHONE)
    out = lines(capsys)
    assert out[0].endswith("Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)")
    assert "listening on http://10.0.0.12:8443" in out[1]
    assert "12345678" not in out[2] and "[number]" in out[2]


def test_json_lines_carry_time_level_logger_and_a_redacted_message(restore_logging, capsys):
    setup_logging("INFO", "json")
    log = logging.getLogger("konsent.test")
    log.info("contact %s wrote from erika@example.org", PHONE)
    try:
        raise ValueError(f"bad number {PHONE}")
    except ValueError:
        log.exception("send failed")
    first, second = (json.loads(line) for line in lines(capsys))
    assert set(first) == {"time", "level", "logger", "message"}
    assert first["level"] == "INFO" and first["logger"] == "konsent.test"
    assert first["message"] == "contact [number] wrote from [email]"
    assert second["message"] == "send failed"
    assert "ValueError" in second["exception"] and "12345678" not in second["exception"]


def test_text_tracebacks_are_redacted_too(restore_logging, capsys):
    setup_logging("INFO", "text")
    try:
        raise ValueError(f"bad number {PHONE}")
    except ValueError:
        logging.getLogger("konsent.test").exception("send failed")
    err = "\n".join(lines(capsys))
    assert "ValueError" in err and "12345678" not in err


def test_log_format_setting_accepts_text_and_json_only():
    assert Settings(log_format="json").log_format == "json"
    with pytest.raises(ValidationError):
        Settings(log_format="xml")
