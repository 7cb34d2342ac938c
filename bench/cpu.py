"""CPU time of a konsent process and of the PostgreSQL backends serving it, from /proc (Linux).

`worker_cpu_us_per_msg` = (worker process user+system CPU + CPU of the PostgreSQL backends
whose client is that worker) / messages sent. Backends are found by matching the worker's TCP
client ports (its sockets in /proc/<pid>/fd, their ports in /proc/net/tcp{,6}) against
`pg_stat_activity.client_port`, so other sessions on a shared server are not counted.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (None once it is gone or unreadable)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                m = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(fd))
            except OSError:
                continue
            if m:
                out.add(m.group(1))
    except OSError:
        pass
    return out


def client_ports(pid: int) -> set[int]:
    """Local TCP ports of the process's sockets."""
    inodes = _socket_inodes(pid)
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[9] in inodes:
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def backend_pids(conn: Any, pid: int) -> set[int]:
    """PostgreSQL backend pids serving the process `pid` (conn: a SQLAlchemy connection)."""
    from sqlalchemy import text

    ports = sorted(client_ports(pid))
    if not ports:
        return set()
    rows = conn.execute(
        text("SELECT pid FROM pg_stat_activity WHERE client_port = ANY(:ports)"), {"ports": ports}
    )
    return {int(r[0]) for r in rows}


class CpuMeter:
    """Worker + backend CPU between `start()` and `stop()`; backends first seen later count whole."""

    def __init__(self, engine: Any, worker_pids: list[int]) -> None:
        self.engine, self.pids = engine, worker_pids
        self.start_cpu: dict[int, float] = {}
        self.last_cpu: dict[int, float] = {}

    def _sample(self) -> dict[int, float]:
        pids = set(self.pids)
        with self.engine.connect() as conn:
            for p in self.pids:
                pids |= backend_pids(conn, p)
        return {p: c for p in pids if (c := cpu_s(p)) is not None}

    def start(self) -> None:
        self.start_cpu = self._sample()
        self.last_cpu = dict(self.start_cpu)

    def poll(self) -> None:
        """Take a reading while the run goes on, so a backend that ends early still counts."""
        self.last_cpu.update(self._sample())

    def stop(self) -> float:
        """CPU seconds used since `start()` by the workers and their backends."""
        self.poll()
        return sum(c - self.start_cpu.get(p, 0.0) for p, c in self.last_cpu.items())
