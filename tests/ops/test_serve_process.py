"""The real processes an operator runs: `konsent serve` logs its listen address unredacted as
JSON, answers /healthz, /readyz and /metrics over TCP; `konsent worker --metrics-port` beats,
serves its own counters, and takes its heartbeat away on SIGTERM (U6, S6, #18)."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from konsent.flows.operations import heartbeat
from tests.conftest import MASTER_KEY

SRC = str(Path(__file__).resolve().parents[2] / "src")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A `konsent …` child process whose stderr lines are collected as they come."""

    def __init__(self, ctx, *args: str) -> None:  # type: ignore[no-untyped-def]
        env = {
            **os.environ,
            "PYTHONPATH": SRC,
            "KONSENT_DATA_DIR": str(ctx.settings.data_dir),
            "KONSENT_DATABASE_URL": ctx.settings.database_url,
            "KONSENT_MASTER_KEY": MASTER_KEY,
            "KONSENT_LOG_FORMAT": "json",
            "KONSENT_WORKER_POLL_SECONDS": "0.05",
        }
        code = "from konsent.cli import app; app()"
        self.p = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stderr is not None
        for line in self.p.stderr:
            self.lines.put(line.rstrip("\n"))

    def wait_for_line(self, needle: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                assert self.p.poll() is None, f"exited: {seen}"
                continue
            seen.append(line)
            if needle in line:
                return line
        raise AssertionError(f"no {needle!r} in {seen}")

    def stop(self) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait(10)


def until(check, timeout: float = 20):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_serve_logs_its_address_as_json_and_answers_health_readiness_and_metrics(ctx, procs):
    port = free_port()
    web = Proc(ctx, "serve", "--host", "127.0.0.1", "--port", str(port))
    procs.append(web)
    own = json.loads(web.wait_for_line("listening on"))
    assert f"listening on http://127.0.0.1:{port}" in own["message"] and own["logger"] == "konsent"
    uv = json.loads(web.wait_for_line("Uvicorn running on"))
    assert uv["message"] == f"Uvicorn running on http://127.0.0.1:{port} (Press CTRL+C to quit)"
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    # the embedded worker's first heartbeat makes the process ready
    until(lambda: httpx.get(f"{base}/readyz").status_code == 200)
    metrics = httpx.get(f"{base}/metrics")
    assert metrics.status_code == 200 and "konsent_workers_alive 1.0" in metrics.text
    assert httpx.get(f"{base}/metrics", headers={"x-forwarded-for": "203.0.113.9"}).status_code == 403


def test_worker_process_serves_its_counters_and_removes_its_heartbeat_on_sigterm(ctx, procs):
    port = free_port()
    worker = Proc(ctx, "worker", "--metrics-port", str(port))
    procs.append(worker)

    def beats() -> list[heartbeat.Beat]:
        with ctx.db.read() as s:
            return heartbeat.beats(s)

    until(lambda: len(beats()) == 1)
    text = until(lambda: httpx.get(f"http://127.0.0.1:{port}/metrics").text)
    assert "konsent_worker_heartbeats_total 1.0" in text and "konsent_sends_total" in text
    assert worker.stop() == 0
    assert beats() == []
