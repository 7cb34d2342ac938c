"""CSV import: consent only with evidence per row, suppression, nothing half-imported (C7)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from konsent.domain.errors import InvalidInput
from konsent.flows.privacy import importer
from konsent.flows.privacy import rights as privacy
from konsent.store.tables import AuditEntry, Consent, Contact, LedgerEntry
from tests.helpers import sim_account
from tests.privacy.util import PHONE, subscribed_contact

HEADER = "address,name,locale,topics,consent_text_version,consent_time,source\n"


def _run(ctx, demo, text, **kw):
    return importer.import_csv(ctx, demo.tenant_id, sim_account(ctx).id, text.encode(), actor="user:1", **kw)


def _contacts(ctx):
    with ctx.db.read() as s:
        return s.scalar(select(func.count()).select_from(Contact))


def test_rows_with_evidence_get_consent_with_ledger_proof_others_service_only(ctx, demo):
    """C7: evidence → consent with its evidence in the ledger; none → service-only; bad → rejected."""
    csv = HEADER + (
        "+4915100000001,Anna,de,angebote,1,2025-03-01T10:00:00+01:00,paper form shop Köln\n"
        "+4915100000002,Ben,en,angebote,,,\n"
        "0151 00000003,,,angebote,1,2025-03-01T10:00:00,fair\n"
        "not a number,,,,,,\n"
        "+4915100000004,,,nosuchtopic,1,2025-03-01T10:00:00Z,fair\n"
        "+4915100000005,,,angebote,1,,fair\n"
    )
    rep = _run(ctx, demo, csv)
    outcomes = {r.line: (r.outcome, r.reason) for r in rep.rows}
    assert outcomes[2] == ("consented", "")
    assert outcomes[3][0] == "service_only"
    assert outcomes[4][0] == "rejected" and "time zone" in outcomes[4][1]
    assert outcomes[5][0] == "rejected" and "phone number" in outcomes[5][1]
    assert outcomes[6][0] == "rejected" and "unknown topic" in outcomes[6][1]
    assert outcomes[7][0] == "rejected" and "incomplete evidence" in outcomes[7][1]
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Consent)) == 1
        entry = s.scalars(select(LedgerEntry)).one()
        assert entry.payload["method"] == "import" and entry.payload["source"] == "paper form shop Köln"
        assert entry.payload["consent_time"].startswith("2025-03-01T09:00:00")
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "contacts.import")).one()
    assert _contacts(ctx) == 2


def test_reject_mode_stores_rows_without_evidence_not_at_all(ctx, demo):
    rep = _run(ctx, demo, HEADER + "+4915100000002,Ben,en,angebote,,,\n", without_evidence="reject")
    assert rep.rows[0].outcome == "rejected" and "no consent evidence" in rep.rows[0].reason
    assert _contacts(ctx) == 0


@pytest.mark.parametrize(
    "data, message",
    [
        (b"address;name\n+4915100000001;x\n", "columns"),
        (b"telefon,name\n+4915100000001,x\n", "columns"),
        ((HEADER + "+4915100000001,Jürgen,de,,,,\n").encode("latin-1"), "UTF-8"),
    ],
)
def test_wrong_columns_or_encoding_import_nothing(ctx, demo, data, message):
    """C7 bad input: a clear error and no row stored."""
    with pytest.raises(InvalidInput) as err:
        importer.import_csv(ctx, demo.tenant_id, sim_account(ctx).id, data, actor="user:1")
    assert message in str(err.value.as_dict())
    assert _contacts(ctx) == 0


def test_huge_fields_and_extra_fields_are_rejected_per_row(ctx, demo):
    """C7 bad input: an oversized or ragged row is named, the others still import."""
    csv = HEADER + "+4915100000001," + "x" * 5000 + ",,,,,\n" + "+4915100000002,a,de,,,,,extra\n"
    csv += "+4915100000003,ok,de,,,,\n"
    rep = _run(ctx, demo, csv)
    reasons = [r.reason for r in rep.rows if r.outcome == "rejected"]
    assert any("too long" in r for r in reasons) and any("more fields" in r for r in reasons)
    assert rep.count("service_only") == 1


def test_suppressed_and_withdrawn_numbers_are_not_resubscribed(ctx, demo):
    """C7: an erased number is suppressed; a number that withdrew stays withdrawn."""
    cid = subscribed_contact(ctx)
    with ctx.db.write() as s:
        privacy.staff_erase(ctx, s, demo.tenant_id, "user:1", cid, "email")
    rep = _run(ctx, demo, HEADER + f"{PHONE},,,angebote,1,2025-03-01T10:00:00Z,list\n")
    assert rep.rows[0].outcome == "rejected" and "suppressed" in rep.rows[0].reason
    from tests.privacy.util import say

    other = "+4915100000009"
    subscribed_contact(ctx, phone=other)
    say(ctx, "STOP", phone=other)
    rep = _run(ctx, demo, HEADER + f"{other},,,angebote,1,2025-03-01T10:00:00Z,list\n")
    assert rep.rows[0].outcome == "rejected" and "withdrawn" in rep.rows[0].reason
    with ctx.db.read() as s:
        assert {r.status for r in s.scalars(select(Consent))} == {"withdrawn"}


def test_cli_import_prints_report(ctx, demo, tmp_path, monkeypatch):
    """C7: `konsent import <tenant> <csv>` with a progress bar and a per-row report file."""
    from typer.testing import CliRunner

    from konsent import cli

    monkeypatch.setattr(cli.common, "_ctx", lambda migrate=True: ctx)
    f = tmp_path / "in.csv"
    f.write_text(HEADER + "+4915100000001,,,angebote,1,2025-03-01T10:00:00Z,list\nbad,,,,,,\n")
    out = tmp_path / "report.csv"
    res = CliRunner().invoke(cli.app, ["import", "demo", str(f), "--report", str(out)])
    assert res.exit_code == 0, res.output
    assert "consented 1" in res.output and "line 3" in res.output
    assert "rejected" in out.read_text()
    f.write_bytes("address\n+4915100000001\n".encode("utf-16"))
    res = CliRunner().invoke(cli.app, ["import", "demo", str(f)])
    assert res.exit_code == 2 and "nothing imported" in res.output


def test_api_import_takes_evidence_per_contact_and_never_re_adds_an_erased_number(ctx, demo, client):
    """C7, M4: POST /api/v1/contacts/import applies the CSV rules; all-or-nothing, a reason per contact."""
    from tests.flows.support import api_token, auth

    cid = subscribed_contact(ctx)
    with ctx.db.write() as s:
        privacy.staff_erase(ctx, s, demo.tenant_id, "user:1", cid, "email")
    headers = auth(api_token(ctx, "admin"))
    evidence = {"consent_text_version": 1, "consent_time": "2025-03-01T10:00:00+01:00", "source": "shop 2025"}
    body = {
        "channel_account_id": sim_account(ctx).id,
        "contacts": [
            {"address": "0151 22233344", "name": "Ada", "topics": ["angebote"], **evidence},
            {"address": "+4915155566677"},  # no evidence: service only
            {"address": PHONE, "topics": ["angebote"], **evidence},  # erased before: suppressed
            {"address": "+4915188899900", "topics": ["angebote"], "consent_text_version": 1},  # half evidence
        ],
    }
    r = client.post("/api/v1/contacts/import", json=body, headers=headers)
    assert r.status_code == 200, r.text
    rep = r.json()
    assert [row["outcome"] for row in rep["rows"]] == ["consented", "service_only", "rejected", "rejected"]
    assert "suppressed" in rep["rows"][2]["reason"] and "source" in rep["rows"][3]["reason"]
    with ctx.db.read() as s:
        consent = s.scalars(select(Consent).where(Consent.status == "active")).one()
        proof = s.scalars(select(LedgerEntry).where(LedgerEntry.contact_id == consent.contact_id)).one()
        assert proof.payload["method"] == "import" and proof.payload["source"] == "shop 2025"
        audit = s.scalars(select(AuditEntry).where(AuditEntry.action == "contacts.import")).one()
        assert audit.payload["via"] == "api"
    before = _contacts(ctx)
    bad = {**body, "contacts": [{"address": "+4915100000001", "colour": "blue"}]}
    assert client.post("/api/v1/contacts/import", json=bad, headers=headers).status_code == 422
    other = {**body, "channel_account_id": 999_999}
    assert client.post("/api/v1/contacts/import", json=other, headers=headers).status_code == 404
    viewer = auth(api_token(ctx, "viewer"))
    assert client.post("/api/v1/contacts/import", json=body, headers=viewer).status_code == 403
    assert _contacts(ctx) == before
