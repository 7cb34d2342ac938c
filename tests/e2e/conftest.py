"""Browser tests: a real konsent (web + embedded worker) on a free 127.0.0.1 port, and Chromium."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

CHROMIUM = os.environ.get("KONSENT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    admin_email: str
    admin_password: str


@pytest.fixture
def live_server(ctx) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    """konsent with the demo tenant, served by uvicorn in a thread, with its worker running."""
    import uvicorn

    from konsent.delivery.worker import run_in_thread
    from konsent.flows.demo import seed_demo
    from konsent.web.app import create_app

    port = _free_port()
    ctx.settings.base_url = f"http://127.0.0.1:{port}"
    ctx.settings.simulator_enabled = True  # as `konsent demo` runs it
    seed = seed_demo(ctx)
    assert seed.admin_password
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    worker_thread, stop_worker = run_in_thread(ctx)
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "live server did not start"
    yield LiveServer(f"http://127.0.0.1:{port}", seed.admin_email, seed.admin_password)
    stop_worker.set()
    worker_thread.join(timeout=30)  # done before the test's database goes away
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser_page():  # type: ignore[no-untyped-def]
    """A fresh Chromium page (Debian's chromium, never a downloaded browser)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"chromium not installed at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(locale="de-DE", accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        context.close()
        browser.close()
