"""`konsent doctor`: a deliberately wrong production configuration yields each finding with
its fix and exit code 1; a right one yields none and exit code 0 (U6, U1, D2, #18)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from pydantic import SecretStr
from sqlalchemy import make_url, update

from konsent.cli import app
from konsent.flows.operations import doctor
from konsent.store.tables import OutboxRow
from konsent.store.types import utcnow
from tests.conftest import MASTER_KEY, on_postgres
from tests.helpers import subscribe
from tests.ops.support import beat_now

PHONE = "+4915100000099"


def codes(ctx) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.code for f in doctor.diagnose(ctx).findings}


@pytest.fixture
def production(ctx, demo):  # type: ignore[no-untyped-def]
    """A right production configuration: https, Secure cookies, master key from the environment,
    the key store apart (on PostgreSQL named as its own database), a live worker."""
    s = ctx.settings
    s.base_url, s.secure_cookies, s.master_key = "https://konsent.example.com", True, SecretStr(MASTER_KEY)
    if on_postgres():
        keys = make_url(s.database_url).set(database="konsent_keys", query={})
        s.keystore_url = keys.render_as_string(hide_password=False)
    beat_now(ctx)
    return ctx


def test_right_production_configuration_has_no_findings(production):
    d = doctor.diagnose(production)
    assert d.findings == [] and d.ok
    assert any("schema current" in p for p in d.passed)
    assert any("1 worker(s) alive" in p for p in d.passed)


def test_http_base_url_insecure_cookies_and_a_private_host_are_each_found(production):
    production.settings.base_url = "http://127.0.0.1:8000"
    production.settings.secure_cookies = False
    assert codes(production) == {"base_url_not_https", "cookies_not_secure", "webhooks_unreachable"}
    production.settings.base_url = "https://konsent.internal"
    assert codes(production) == {"cookies_not_secure", "webhooks_unreachable"}


def test_master_key_from_a_file_in_the_data_directory_is_found(production):
    production.settings.master_key = None
    found = doctor.diagnose(production).findings
    assert [f.code for f in found] == ["master_key_in_data_dir"]
    assert "KONSENT_MASTER_KEY" in found[0].fix


def test_key_store_inside_the_main_database_is_found(production):
    production.settings.keystore_url = production.settings.database_url
    assert codes(production) == {"keystore_in_database"}


@pytest.mark.skipif(not on_postgres(), reason="PostgreSQL with a key store in a local file")
def test_postgres_with_a_local_key_store_file_is_found(production):
    production.settings.keystore_url = ""
    assert codes(production) == {"keystore_local_file"}


def test_stale_worker_pending_migrations_and_a_stuck_channel_are_found(production, monkeypatch):
    ctx = production
    subscribe(ctx, PHONE, ["angebote"])  # the confirmation waits in the outbox
    with ctx.db.write() as s:
        s.execute(update(OutboxRow).values(run_at=utcnow() - timedelta(minutes=30)))
    monkeypatch.setattr(doctor, "head_revision", lambda: "9999")
    with time_machine.travel(utcnow() + timedelta(minutes=5), tick=False):
        assert codes(ctx) == {"no_worker", "migrations_pending", "channel_backlog"} | (
            {"clock_skew"} if on_postgres() else set()
        )


def test_messages_given_up_in_the_last_day_are_found_with_their_error_code(production):
    ctx = production
    subscribe(ctx, PHONE, ["angebote"])
    with ctx.db.write() as s:
        s.execute(
            update(OutboxRow).values(
                state="discarded", finished_at=utcnow(), last_error="auth_failed: token expired"
            )
        )
    found = [f for f in doctor.diagnose(ctx).findings if f.code == "channel_failures"]
    assert len(found) == 1 and "mostly auth_failed" in found[0].problem and "token" not in found[0].problem


@pytest.mark.skipif(not on_postgres(), reason="the database server's clock is PostgreSQL's")
def test_clock_skew_against_the_database_server_is_found(production):
    with time_machine.travel(utcnow() + timedelta(seconds=30)):
        assert "clock_skew" in codes(production)


def test_unreachable_database_is_one_finding_not_a_crash(production):
    from tests.ops.support import unreachable

    broken = unreachable(production)
    try:
        assert codes(broken) == {"database_unreachable"}
    finally:
        broken.db.dispose()


def test_cli_prints_each_finding_with_its_fix_and_exits_1_then_0_once_fixed(
    production, cli, monkeypatch, request
):
    s = production.settings
    if on_postgres():  # the CLI connects to its key store: a real database of its own
        name = request.getfixturevalue("scratch_database")
        s.keystore_url = make_url(s.keystore_url).set(database=name).render_as_string(hide_password=False)
    for name, val in {
        "KONSENT_DATABASE_URL": s.database_url,
        "KONSENT_DATA_DIR": str(s.data_dir),
        "KONSENT_MASTER_KEY": MASTER_KEY,
        "KONSENT_KEYSTORE_URL": s.keystore_url,
        "KONSENT_BASE_URL": "http://localhost:8000",
        "KONSENT_SECURE_COOKIES": "true",
    }.items():
        monkeypatch.setenv(name, val)
    r = cli.invoke(app, ["doctor"])
    assert r.exit_code == 1, r.output
    assert "fix: Serve konsent behind a TLS reverse proxy" in r.output
    assert "(webhooks_unreachable)" in r.output and "2 finding(s)" in r.output
    monkeypatch.setenv("KONSENT_BASE_URL", "https://konsent.example.com")
    from konsent.settings import get_settings

    get_settings.cache_clear()
    beat_now(production)
    r = cli.invoke(app, ["doctor"])
    assert r.exit_code == 0, r.output
    assert "nothing to fix" in r.output
