"""No number, name or message text in any log record of the privacy flows (S6, invariant 7)."""

from __future__ import annotations

import logging
import re

from konsent.flows.privacy import export as privacy_export
from konsent.flows.privacy import importer, keyrotation, retention
from tests.helpers import phone_texts, sim_account
from tests.privacy.util import NAME, PHONE, SECRET_TEXT, say, subscribed_contact


def test_privacy_flows_log_nothing_personal_at_debug(ctx, demo, client, caplog):
    """S6: export, INFO, erasure, import, retention and key rotation at DEBUG leak nothing."""
    caplog.set_level(logging.DEBUG)
    cid = subscribed_contact(ctx)
    say(ctx, "MEINE DATEN")
    link = re.search(r"http://testserver(/privacy/export/\S+)", phone_texts(ctx, PHONE)[-1])
    assert link
    assert client.post(link.group(1)).status_code == 200
    say(ctx, "INFO")
    with ctx.db.write() as s:
        privacy_export.staff_export(ctx, s, demo.tenant_id, "user:1", cid)
    csv = "address,name,topics,consent_text_version,consent_time,source\n"
    csv += "+4917712345678,Hildegard Beispiel,angebote,1,2025-01-01T00:00:00Z,Messe\n"
    importer.import_csv(ctx, demo.tenant_id, sim_account(ctx).id, csv.encode(), actor="user:1")
    keyrotation.rotate_tenant(ctx, demo.tenant_id)
    say(ctx, "LÖSCHEN")
    say(ctx, "LÖSCHEN JA")
    retention.run_retention(ctx, demo.tenant_id, dry_run=True)
    retention.run_retention(ctx, demo.tenant_id)
    assert caplog.records, "the flows should log something (ids and counts)"
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    for secret in (
        PHONE,
        PHONE[1:],
        "15112345678",
        NAME,
        "Erika",
        SECRET_TEXT,
        "+4917712345678",
        "17712345678",
        "Hildegard",
        "MEINE DATEN",
    ):
        assert secret not in logged, secret
