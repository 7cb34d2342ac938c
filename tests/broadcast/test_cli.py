"""`konsent broadcast …` in the CLI (U4, M3)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from konsent.cli import app
from konsent.settings import get_settings
from tests.broadcast.seed import seed
from tests.conftest import MASTER_KEY
from tests.helpers import phone_texts, sim_account


@pytest.fixture
def cli(ctx, demo, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KONSENT_DATABASE_URL", ctx.settings.database_url)
    monkeypatch.setenv("KONSENT_DATA_DIR", str(ctx.settings.data_dir))
    monkeypatch.setenv("KONSENT_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("KONSENT_WORKER_POLL_SECONDS", "0.01")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_cli_creates_previews_sends_and_reports_a_broadcast(ctx, cli):
    """create shows the audience, send --work delivers with a progress bar, status shows the funnel (U4)."""
    seed(ctx, sim_account(ctx).id, ["+4915120000001", "+4915120000002"])
    r = cli.invoke(
        app, ["broadcast", "create", "demo", "--name", "Nov", "--topic", "angebote", "--text", "Hi"]
    )
    assert r.exit_code == 0, r.output
    assert "audience now: 2 contacts" in r.output
    r = cli.invoke(app, ["broadcast", "send", "demo", "1", "--work", "--timeout", "30"])
    assert r.exit_code == 0, r.output
    assert phone_texts(ctx, "+4915120000001") == ["Hi"]
    r = cli.invoke(app, ["broadcast", "status", "demo", "1"])
    assert '"sent": 2' in r.output
    r = cli.invoke(app, ["broadcast", "list", "demo"])
    assert "Nov" in r.output and "done" in r.output


def test_cli_refuses_impossible_state_changes_with_a_reason(ctx, cli):
    """Pausing a draft is refused with one line and exit code 2 (bad input, #12); nothing changes."""
    r = cli.invoke(app, ["broadcast", "create", "demo", "--name", "N", "--topic", "angebote", "--text", "x"])
    assert r.exit_code == 0, r.output
    r = cli.invoke(app, ["broadcast", "pause", "demo", "1"])
    assert r.exit_code == 2
    assert "cannot be paused" in r.output
    r = cli.invoke(app, ["broadcast", "create", "demo", "--name", "N", "--topic", "nope", "--text", "x"])
    assert r.exit_code == 2 and "unknown topic" in r.output
