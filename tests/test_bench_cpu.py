"""bench/cpu.py reads what `worker_cpu_us_per_msg` is made of: a process's CPU and its TCP client ports."""

from __future__ import annotations

import os
import socket
import sys

import pytest
from bench.cpu import client_ports, cpu_s

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_cpu_seconds_of_this_process_grow_with_work():
    before = cpu_s(os.getpid())
    assert before is not None
    x = 0
    while cpu_s(os.getpid()) == before:  # type: ignore[comparison-overlap]
        x += sum(range(10_000))
    assert cpu_s(os.getpid()) > before  # type: ignore[operator]


def test_client_ports_finds_the_local_port_of_an_open_connection():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            assert client.getsockname()[1] in client_ports(os.getpid())


def test_a_gone_process_has_no_cpu_reading():
    assert cpu_s(2**22 + 12345) is None
