"""Ports on 127.0.0.1 for the benchmark's own processes (fake provider, konsent web)."""

from __future__ import annotations

import os
import socket
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float | None = None) -> None:
    """Until something listens on `port`; RuntimeError after `timeout` seconds (default 30, or
    BENCH_PORT_WAIT_S: a machine busy with other jobs starts a konsent process more slowly)."""
    timeout = timeout if timeout is not None else float(os.environ.get("BENCH_PORT_WAIT_S", "30"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:.0f} s")
