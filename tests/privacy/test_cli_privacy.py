"""CLI: `konsent retention run [--dry-run]`, `konsent export`, `konsent privacy notice` (L1, D1, T1, T2)."""

from __future__ import annotations

import io
import json
import os
import zipfile
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from konsent import cli
from konsent.store.tables import AuditEntry, Conversation, Message
from konsent.store.types import utcnow
from tests.privacy.util import NAME, subscribed_contact


@pytest.fixture
def run(ctx, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(cli.common, "_ctx", lambda migrate=True: ctx)

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(cli.app, list(args))

    return invoke


def test_retention_dry_run_counts_and_real_run_deletes(ctx, demo, run):
    """L1: the dry run names what would go and deletes nothing; the real run deletes it."""
    subscribed_contact(ctx)
    with ctx.db.write() as s:
        for conv in s.scalars(select(Conversation)):
            conv.state, conv.closed_at = "closed", utcnow() - timedelta(days=100)
        n = s.scalar(select(func.count()).select_from(Message))
    res = run("retention", "run", "--tenant", "demo", "--dry-run")
    assert res.exit_code == 0 and f"would delete: unconfirmed_optins 0, messages {n}" in res.output
    res = run("retention", "run")
    assert res.exit_code == 0 and f"deleted: unconfirmed_optins 0, messages {n}" in res.output
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 0


def test_cli_export_writes_private_zip_and_audits(ctx, demo, run, tmp_path):
    """D1, S4: the export file is readable only by its owner and the export is audited."""
    cid = subscribed_contact(ctx)
    target = tmp_path / "x.zip"
    res = run("export", "demo", str(cid), "--out", str(target))
    assert res.exit_code == 0, res.output
    assert NAME not in res.output
    assert oct(os.stat(target).st_mode & 0o777) == "0o600"
    data = json.loads(zipfile.ZipFile(io.BytesIO(target.read_bytes())).read("data.json"))
    assert data["profile"]["name"] == NAME
    with ctx.db.read() as s:
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "contact.export")).one()
    assert run("export", "demo", "999999").exit_code != 0


def test_cli_prints_notice_and_art30(ctx, demo, run):
    """T1, T2: both documents from the command line, Markdown and HTML."""
    res = run("privacy", "notice", "demo", "--locale", "en")
    assert res.exit_code == 0 and "## Messenger communication" in res.output
    res = run("privacy", "notice", "demo", "--art30", "--html")
    assert res.exit_code == 0 and "<h1>Verzeichnis von Verarbeitungstätigkeiten" in res.output
