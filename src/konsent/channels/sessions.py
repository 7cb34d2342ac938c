"""HTTP plumbing the adapters without a Graph client share: per-loop aiohttp sessions, JSON posts."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp


class LoopSessions:
    """One aiohttp session per event loop: the worker and tests may run several loops over time.

    Each session gets a guard task that closes it when its loop cancels the remaining tasks on
    shutdown (asyncio.run does), so no connection outlives its loop.
    """

    def __init__(self, timeout_s: float) -> None:
        self._timeout = timeout_s
        self._by_loop: dict[
            int, tuple[asyncio.AbstractEventLoop, aiohttp.ClientSession, asyncio.Task[None]]
        ] = {}

    def get(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        for key, (lp, _s, _t) in list(self._by_loop.items()):
            if lp.is_closed():
                del self._by_loop[key]
        entry = self._by_loop.get(id(loop))
        if entry is not None and entry[0] is loop and not entry[1].closed:
            return entry[1]
        timeout = aiohttp.ClientTimeout(total=self._timeout, sock_connect=min(5.0, self._timeout))
        session = aiohttp.ClientSession(timeout=timeout)
        guard = loop.create_task(self._close_with_loop(session))
        self._by_loop[id(loop)] = (loop, session, guard)
        return session

    @staticmethod
    async def _close_with_loop(session: aiohttp.ClientSession) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await session.close()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        entries, self._by_loop = self._by_loop, {}
        for lp, session, guard in entries.values():
            if lp is loop:
                guard.cancel()
                await session.close()


async def post_json(
    session: aiohttp.ClientSession, url: str, payload: dict[str, Any]
) -> tuple[int, dict[str, Any], Any]:
    async with session.post(url, json=payload) as resp:
        raw = await resp.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        return resp.status, body if isinstance(body, dict) else {}, resp.headers


__all__ = ["LoopSessions", "post_json"]
