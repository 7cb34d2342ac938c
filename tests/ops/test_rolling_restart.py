"""docs/OPERATIONS.md, *Upgrades without downtime*: two web processes behind the page's own
nginx configuration, restarted one after the other as the page says; every request made
meanwhile is answered 200 (U6, #18). Runs where nginx is installed."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import httpx
import pytest

from tests.ops.test_operations_doc import FILES, _self_signed
from tests.ops.test_serve_process import Proc, free_port, until

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")


def nginx_conf(tmp_path, web: tuple[int, int], tls: int, plain: int) -> str:  # type: ignore[no-untyped-def]
    crt, pem = _self_signed(tmp_path)
    site = (
        FILES["nginx-konsent.conf"]
        .replace("/etc/letsencrypt/live/konsent.example.com/fullchain.pem", str(crt))
        .replace("/etc/letsencrypt/live/konsent.example.com/privkey.pem", str(pem))
        .replace("127.0.0.1:8001", f"127.0.0.1:{web[0]}")
        .replace("127.0.0.1:8002", f"127.0.0.1:{web[1]}")
        .replace("listen [::]:443 ssl http2;", "")
        .replace("listen [::]:80;", "")
        .replace("listen 443 ", f"listen 127.0.0.1:{tls} ")
        .replace("listen 80;", f"listen 127.0.0.1:{plain};")
    )
    temp = " ".join(
        f"{d}_temp_path {tmp_path / d};" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"daemon off;\npid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\nevents {{}}\n"
        f"http {{\naccess_log {tmp_path / 'access.log'};\n{temp}\n{site}\n}}\n"
    )


def test_restarting_the_web_processes_one_by_one_behind_nginx_loses_no_request(ctx, procs, tmp_path):
    ports = (free_port(), free_port())
    tls, plain = free_port(), free_port()
    web = {p: Proc(ctx, "serve", "--host", "127.0.0.1", "--port", str(p), "--no-worker") for p in ports}
    procs.extend(web.values())
    procs.append(Proc(ctx, "worker"))  # readiness needs a live worker
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_conf(tmp_path, ports, tls, plain))
    nginx = subprocess.Popen(
        [str(shutil.which("nginx")), "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")]
    )
    statuses: list[int] = []
    stop = threading.Event()
    try:
        for p in ports:
            until(lambda p=p: httpx.get(f"http://127.0.0.1:{p}/readyz").status_code == 200, timeout=60)
        url = f"https://127.0.0.1:{tls}/readyz"
        until(lambda: httpx.get(url, verify=False).status_code == 200)

        def load() -> None:
            with httpx.Client(verify=False, headers={"host": "konsent.example.com"}) as c:
                while not stop.is_set():
                    statuses.append(c.get(url).status_code)
                    time.sleep(0.02)

        t = threading.Thread(target=load)
        t.start()
        for p in ports:  # the page's step 3: restart one, wait until it is ready, then the next
            web[p].stop()
            web[p] = Proc(ctx, "serve", "--host", "127.0.0.1", "--port", str(p), "--no-worker")
            procs.append(web[p])
            until(lambda p=p: httpx.get(f"http://127.0.0.1:{p}/readyz").status_code == 200, timeout=60)
        stop.set()
        t.join(10)
    finally:
        stop.set()
        nginx.terminate()
        nginx.wait(10)
    assert len(statuses) > 20
    assert set(statuses) == {200}, (tmp_path / "error.log").read_text()[-2000:]
