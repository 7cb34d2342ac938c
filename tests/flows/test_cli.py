"""The command line a new user types: `konsent demo --no-serve` and `konsent ledger verify` (U1, C3)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from konsent.cli import app
from konsent.flows.organisation import staff, tenants
from konsent.settings import get_settings
from konsent.store.tables import StaffUser
from tests.conftest import MASTER_KEY, on_postgres
from tests.helpers import subscribe

PASSWORD_LINE = re.compile(r"One-time password \(shown only now\): (\S+)")


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """A CLI runner whose settings come from the environment; logging restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def cli_on_test_db(cli: CliRunner, ctx, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The CLI pointed at this test's database (SQLite file or PostgreSQL schema)."""
    monkeypatch.setenv("KONSENT_DATABASE_URL", ctx.settings.database_url)
    monkeypatch.setenv("KONSENT_DATA_DIR", str(ctx.settings.data_dir))
    monkeypatch.setenv("KONSENT_MASTER_KEY", MASTER_KEY)
    return cli


def test_demo_no_serve_prints_the_one_time_password_once(ctx, cli_on_test_db: CliRunner):
    """U1: the admin's one-time password is printed on the first run and never again."""
    first = cli_on_test_db.invoke(app, ["demo", "--no-serve"])
    assert first.exit_code == 0, first.output
    assert "Demo GmbH" in first.output
    found = PASSWORD_LINE.findall(first.output)
    assert len(found) == 1
    password = found[0]
    with ctx.db.write() as s:
        tenant = tenants.tenant_by_slug(s, "demo")
        assert staff.authenticate(s, tenant, "admin@demo.example", password) is not None
        assert s.scalars(select(StaffUser.must_change_password)).one() is True
    second = cli_on_test_db.invoke(app, ["demo", "--no-serve"])
    assert second.exit_code == 0, second.output
    assert "One-time password" not in second.output and password not in second.output
    assert "exists" in second.output


def test_ledger_verify_exit_codes_name_the_broken_entry(ctx, demo, cli_on_test_db: CliRunner):
    """C3: `konsent ledger verify demo` exits 0 when intact, 1 naming the first broken entry."""
    subscribe(ctx, "+4915112345678", ["angebote", "produktnews"])
    subscribe(ctx, "+4915112345679", ["angebote"])
    ok = cli_on_test_db.invoke(app, ["ledger", "verify", "demo"])
    assert ok.exit_code == 0, ok.output
    assert "intact" in ok.output and "3 entries" in ok.output
    with ctx.db.write() as s:
        s.execute(
            text("UPDATE consent_ledger SET payload = :p WHERE seq = 2"),
            {"p": '{"action": "granted", "purpose": "newsletter:angebote", "forged": true}'},
        )
    broken = cli_on_test_db.invoke(app, ["ledger", "verify", "demo"])
    assert broken.exit_code == 1
    assert "broken at entry 2" in broken.output
    audit = cli_on_test_db.invoke(app, ["ledger", "verify", "demo", "--chain", "audit"])
    assert audit.exit_code == 0, audit.output


def test_ledger_verify_unknown_tenant_fails(ctx, cli_on_test_db: CliRunner):
    r = cli_on_test_db.invoke(app, ["ledger", "verify", "nope"])
    assert r.exit_code != 0


@pytest.mark.skipif(on_postgres(), reason="the embedded default is SQLite in the data directory")
def test_demo_on_a_fresh_data_dir_creates_sqlite_and_key_file(cli: CliRunner, tmp_path, monkeypatch):
    """U1: with only KONSENT_DATA_DIR set, konsent creates its SQLite database and key file there."""
    data = tmp_path / "konsent-data"
    monkeypatch.setenv("KONSENT_DATA_DIR", str(data))
    monkeypatch.delenv("KONSENT_DATABASE_URL", raising=False)
    monkeypatch.delenv("KONSENT_MASTER_KEY", raising=False)
    r = cli.invoke(app, ["demo", "--no-serve"])
    assert r.exit_code == 0, r.output
    assert len(PASSWORD_LINE.findall(r.output)) == 1
    assert (data / "konsent.db").exists()
    assert any(p.name != "konsent.db" and "key" in p.name for p in data.iterdir())
    again = cli.invoke(app, ["demo", "--no-serve"])
    assert again.exit_code == 0 and not PASSWORD_LINE.findall(again.output)
    assert cli.invoke(app, ["ledger", "verify", "demo"]).exit_code == 0


def test_channels_register_webhook_sets_url_and_secret_at_telegram(
    ctx, demo, cli_on_test_db: CliRunner, monkeypatch: pytest.MonkeyPatch
):
    """CH2: `konsent channels register-webhook demo <id> --base-url https://…` calls setWebhook (fake)."""
    from tests.channels import fixtures_telegram as fx
    from tests.fakes.telegram_fake import TelegramFake

    with TelegramFake(bots=[(fx.BOT_TOKEN, fx.BOT_USERNAME)]) as fake:
        assert isinstance(fake, TelegramFake)
        # The CLI process is configured like an operator would: the Bot API's base URL (#13).
        monkeypatch.setenv("KONSENT_PROVIDER_BASE_URLS", json.dumps({"telegram": fake.url}))
        monkeypatch.setenv("KONSENT_ALLOW_PRIVATE_URLS", "true")
        account_id, route_key = fx.telegram_account(ctx)
        args = ["channels", "register-webhook", "demo", str(account_id)]
        refused = cli_on_test_db.invoke(app, [*args, "--base-url", "http://konsent.example"])
        said = " ".join(refused.output.split())  # the console wraps at its width, which varies by process
        assert refused.exit_code == 1 and "An HTTPS URL must be provided" in said
        ok = cli_on_test_db.invoke(app, [*args, "--base-url", "https://konsent.example/"])
        assert ok.exit_code == 0, ok.output
        bot = fake.bots[fx.BOT_TOKEN]
        assert bot.webhook_url == f"https://konsent.example/webhooks/{route_key}"
        assert bot.secret_token == fx.SECRET_TOKEN and "callback_query" in bot.allowed_updates
        with ctx.db.write() as s:
            other = tenants.create_tenant(ctx, s, "andere", "Andere GmbH")
        wrong_tenant = cli_on_test_db.invoke(app, ["channels", "register-webhook", "andere", str(account_id)])
        assert wrong_tenant.exit_code == 2 and "Not found" in wrong_tenant.output
        assert other.id != demo.tenant_id and len(fake.webhook_calls) == 1
