"""Test harness: every test gets a fresh konsent on SQLite, or on PostgreSQL when
KONSENT_TEST_DATABASE_URL is set (a private schema, truncated between tests)."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import text

from konsent.app import assemble
from konsent.channels import transport as transport_module
from konsent.channels.transport import Policy, Transport
from konsent.flows.context import Konsent
from konsent.settings import Settings
from konsent.store.db import Database, make_engine, migrate
from konsent.store.keys import KeyRing
from konsent.store.keystore import KeyStore, keystore_url
from konsent.store.tables import Base

# Property tests draw the same examples on every run, so CI's verdict depends on the code alone;
# KONSENT_HYPOTHESIS_EXPLORE=1 draws fresh ones (run it locally to hunt for new counterexamples).
hypothesis_settings.register_profile("konsent", derandomize=True)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile("explore" if os.environ.get("KONSENT_HYPOTHESIS_EXPLORE") else "konsent")

PG_URL = os.environ.get("KONSENT_TEST_DATABASE_URL", "")
# The test harness is the operator of its fake providers: they listen on 127.0.0.1 and each test
# channel account stores its fake's base URL. So channel adapters get a transport that allows
# exactly that (#13 finding 1), without turning KONSENT_ALLOW_PRIVATE_URLS on for everything else
# (outgoing webhooks keep the strict default). Tests of the guard build their own policies.
FAKES_POLICY = Policy(allow_private=True, account_base_urls=True)
transport_module._DEFAULT = Transport(FAKES_POLICY)  # adapters made without a Konsent
MASTER_KEY = base64.urlsafe_b64encode(b"k" * 32).decode()


def on_postgres() -> bool:
    return bool(PG_URL)


def keyring(data_dir: Path) -> KeyRing:
    """The test master key and the key store a `konsent` process with this data_dir would use."""
    return KeyRing(base64.urlsafe_b64decode(MASTER_KEY), KeyStore(keystore_url(data_dir)))


@pytest.fixture(scope="session")
def _schema_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Migrate once per session: a SQLite file to copy, or a PostgreSQL schema to truncate."""
    if PG_URL:
        schema = f"konsent_test_{uuid.uuid4().hex[:8]}"
        admin = make_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in PG_URL else "?"
        url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        yield url
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
        return
    d = tmp_path_factory.mktemp("template")
    engine = make_engine(f"sqlite:///{d / 'konsent.db'}")
    migrate(engine, d)
    engine.dispose()
    yield str(d / "konsent.db")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        master_key=MASTER_KEY,
        base_url="http://testserver",
        worker_poll_seconds=0.01,
        # Every test client is one address ("testclient"): tests that sign in many times must not
        # meet the production rate limits; tests of the limits set their own (tests/web/test_rate_limits.py).
        rate_limit_signin="10000/minute",
        rate_limit_signin_account="10000/minute",
        rate_limit_optin="10000/minute",
        rate_limit_simulator="10000/minute",
        rate_limit_simulator_read="10000/minute",
        rate_limit_privacy="10000/minute",
    )


@pytest.fixture
def ctx(settings: Settings, _schema_template: str, tmp_path: Path) -> Iterator[Konsent]:
    """A migrated, empty installation."""
    if PG_URL:
        url = _schema_template
        engine = make_engine(url)
        with engine.begin() as conn:
            names = ", ".join(f'"{t.name}"' for t in reversed(Base.metadata.sorted_tables))
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        db_file = tmp_path / "konsent.db"
        shutil.copy(_schema_template, db_file)
        engine = make_engine(f"sqlite:///{db_file}")
        url = f"sqlite:///{db_file}"
    settings.database_url = url
    k = assemble(settings, Database(engine), keyring(tmp_path))
    k.http = Transport(FAKES_POLICY)
    yield k
    asyncio.run(k.close())
    engine.dispose()


@pytest.fixture
def demo(ctx: Konsent):  # type: ignore[no-untyped-def]
    """The demo tenant, as `konsent demo` creates it."""
    from konsent.flows.demo import seed_demo

    return seed_demo(ctx)


@pytest.fixture
def app(ctx: Konsent):  # type: ignore[no-untyped-def]
    from konsent.web.app import create_app

    return create_app(ctx)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


def drain(ctx: Konsent) -> int:
    """Run the delivery worker until nothing is due."""
    from konsent.delivery.worker import Worker

    return asyncio.run(Worker(ctx).drain())
