"""Operators' CLI for a new company (#12 item 8): next steps, topics, texts, one-line errors, --port."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from konsent.cli import app
from konsent.cli.common import link_base
from konsent.flows.organisation import consent_texts, tenants, topics
from konsent.settings import Settings, get_settings
from tests.conftest import MASTER_KEY


@pytest.fixture
def cli(ctx, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """The CLI on this test's database, settings from the environment, logging restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("KONSENT_DATABASE_URL", ctx.settings.database_url)
    monkeypatch.setenv("KONSENT_DATA_DIR", str(ctx.settings.data_dir))
    monkeypatch.setenv("KONSENT_MASTER_KEY", MASTER_KEY)
    monkeypatch.delenv("KONSENT_BASE_URL", raising=False)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()
    root.handlers[:] = handlers
    root.setLevel(level)


def _ok(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return "".join(x for x in result.output.splitlines(keepends=True) if " alembic." not in x)


def _bad(cli: CliRunner, *args: str) -> str:
    """Bad input: exit code 2 and one line on stderr, no traceback."""
    result = cli.invoke(app, list(args))
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [x for x in result.stderr.splitlines() if x.strip() and "alembic" not in x]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_tenant_create_prints_the_next_steps(cli):
    out = _ok(cli, "tenant", "create", "kaffee", "Kaffee GmbH")
    assert "tenant kaffee created" in out
    assert "konsent user create kaffee" in out and "konsent topic add kaffee" in out
    assert "konsent consent-text set kaffee --lang de --file" in out and "/admin/login" in out


def test_topic_add_list_rename_archive(cli, ctx):
    _ok(cli, "tenant", "create", "kaffee", "Kaffee GmbH")
    _ok(cli, "topic", "add", "kaffee", "bohnen", "--name-de", "Bohnen", "--name-en", "Beans")
    _ok(cli, "topic", "add", "kaffee", "kurse", "--name-de", "Kurse")
    _ok(cli, "topic", "rename", "kaffee", "bohnen", "--name-de", "Kaffeebohnen")
    _ok(cli, "topic", "archive", "kaffee", "kurse")
    listing = _ok(cli, "topic", "list", "kaffee").splitlines()
    assert listing == ["bohnen\tactive\tKaffeebohnen\tBeans", "kurse\tarchived\tKurse\t"]
    with ctx.db.read() as s:
        tid = tenants.tenant_by_slug(s, "kaffee").id
        assert [t.slug for t in tenants.topics(s, tid)] == ["bohnen"]
        assert topics.get_topic(s, tid, "kurse").archived_at is not None


def test_consent_text_set_publishes_versions_from_a_file(cli, ctx, tmp_path: Path):
    _ok(cli, "tenant", "create", "kaffee", "Kaffee GmbH")
    f = tmp_path / "de.txt"
    f.write_text("Ja, ich will Kaffee-News.", encoding="utf-8")
    assert "version 1" in _ok(cli, "consent-text", "set", "kaffee", "--lang", "de", "--file", str(f))
    f.write_text("Ja, ich will Kaffee- und Tee-News.", encoding="utf-8")
    assert "version 2" in _ok(cli, "consent-text", "set", "kaffee", "--lang", "de", "--file", str(f))
    assert (
        _ok(cli, "consent-text", "show", "kaffee", "1", "--lang", "de").strip() == "Ja, ich will Kaffee-News."
    )
    assert "+Ja, ich will Kaffee- und Tee-News." in _ok(cli, "consent-text", "diff", "kaffee", "1", "2")
    with ctx.db.read() as s:
        assert consent_texts.current(s, tenants.tenant_by_slug(s, "kaffee").id, "de").version == 2


def test_bad_input_prints_one_line_and_exits_2(cli, tmp_path: Path):
    _ok(cli, "tenant", "create", "kaffee", "Kaffee GmbH")
    _ok(cli, "topic", "add", "kaffee", "bohnen", "--name-de", "Bohnen")
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n", encoding="utf-8")
    text = tmp_path / "t.txt"
    text.write_text("Ja.", encoding="utf-8")
    assert "valid e-mail" in _bad(
        cli, "user", "create", "kaffee", "x", "--role", "superuser", "--password", "x" * 12
    )
    assert "superuser" in _bad(cli, "user", "create", "kaffee", "o@k.example", "--role", "superuser",
                               "--password", "x" * 12)  # fmt: skip
    assert "tenant" in _bad(cli, "token", "create", "nosuchtenant", "x")
    assert "exists already" in _bad(cli, "topic", "add", "kaffee", "bohnen", "--name-de", "Bohnen")
    assert "empty" in _bad(cli, "consent-text", "set", "kaffee", "--lang", "de", "--file", str(empty))
    assert "language" in _bad(cli, "consent-text", "set", "kaffee", "--lang", "fr", "--file", str(text))
    assert "cannot read" in _bad(
        cli, "consent-text", "set", "kaffee", "--lang", "de", "--file", str(tmp_path / "no")
    )
    assert "tenant" in _bad(cli, "topic", "list", "nosuchtenant")
    assert "no user" in _bad(cli, "user", "password", "kaffee", "nobody@k.example", "--password", "x" * 12)
    _bad(cli, "tenant", "create", "Bad Slug", "X")
    assert "No such file" in _bad(cli, "import", "kaffee", str(tmp_path / "nope.csv"))
    assert "unknown topic" in _bad(
        cli, "broadcast", "create", "kaffee", "--name", "N", "--topic", "tee", "--text", "x"
    )
    assert "tenant" in _bad(cli, "export", "kaffee", "99999")


def test_demo_port_sets_the_printed_links_and_base_url(cli, ctx):
    out = _ok(cli, "demo", "--no-serve", "--port", "8101")
    assert "http://127.0.0.1:8101/admin/login" in out and ":8000" not in out
    with ctx.db.read() as s:
        assert tenants.tenant_by_slug(s, "demo").privacy_url.startswith("http://127.0.0.1:8101/")


def test_konsent_base_url_wins_over_port(cli, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KONSENT_BASE_URL", "https://konsent.example.com")
    get_settings.cache_clear()
    out = _ok(cli, "demo", "--no-serve", "--port", "8101")
    assert "https://konsent.example.com/admin/login" in out and "8101" not in out


def test_link_base_follows_host_and_port_unless_base_url_is_set():
    assert link_base(Settings(), None, 8101) == "http://127.0.0.1:8101"
    assert link_base(Settings(), "0.0.0.0", 9000) == "http://127.0.0.1:9000"
    assert link_base(Settings(port=8200), None, None) == "http://127.0.0.1:8200"
    assert link_base(Settings(base_url="https://k.example"), None, 8101) == "https://k.example"
