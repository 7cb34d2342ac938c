"""New contacts' key-store secrets are committed in groups, each durable before its creator goes on (S1, D2).

Forty web threads each creating a contact used to queue for the key store's write lock, one
fsync each (bench/inbound.py). Concurrent puts now share one transaction.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import event

from konsent.store.keystore import KeyStore

THREADS = 20


def _store(tmp_path: Path) -> tuple[KeyStore, list[int]]:
    """A SQLite key store whose commits take 50 ms (a slow disk), counting them."""
    store = KeyStore(f"sqlite:///{tmp_path / 'keystore.db'}")
    commits: list[int] = []

    @event.listens_for(store.engine, "commit")
    def _slow_commit(_conn: object) -> None:
        time.sleep(0.05)
        commits.append(1)

    return store, commits


def _put_all(store: KeyStore, ids: range) -> list[BaseException]:
    start = threading.Barrier(len(ids))
    errors: list[BaseException] = []

    def one(cid: int) -> None:
        start.wait()
        try:
            store.put(1, cid, bytes([cid % 256]) * 32)
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(cid,)) for cid in ids]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert not any(th.is_alive() for th in threads), "a put never returned"
    return errors


def test_concurrent_new_contacts_share_commits_and_every_secret_is_stored(tmp_path: Path) -> None:
    store, commits = _store(tmp_path)
    try:
        assert _put_all(store, range(1, THREADS + 1)) == []
        got = store.get_many(range(1, THREADS + 1))
        assert got == {cid: bytes([cid % 256]) * 32 for cid in range(1, THREADS + 1)}
        # one commit per put would be 20; the group commit needs a few
        assert len(commits) <= THREADS // 2, len(commits)
    finally:
        store.dispose()


def test_a_failed_group_commit_fails_every_put_in_it_and_the_next_puts_still_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = _store(tmp_path)
    real = store.put_many

    def broken(rows: object) -> None:
        raise OSError("disk full")

    try:
        monkeypatch.setattr(store, "put_many", broken)
        errors = _put_all(store, range(1, THREADS + 1))
        # no creator goes on believing its contact's secret is stored
        assert len(errors) == THREADS and all(isinstance(e, OSError) for e in errors)
        assert store.get_many(range(1, THREADS + 1)) == {}
        monkeypatch.setattr(store, "put_many", real)
        assert _put_all(store, range(100, 105)) == []
        assert set(store.get_many(range(100, 105))) == set(range(100, 105))
    finally:
        store.dispose()
