"""The template registry: add, edit, remove, import Meta's JSON all-or-nothing, and the inbox's
template send refusing what the registry does not hold as approved (M1, CH3; invariant 4)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from konsent.domain.errors import InvalidInput, NotFound, PermissionDenied
from konsent.domain.events import InboundMessage
from konsent.domain.templates import TemplateImportInvalid, TemplateInvalid, TemplateSpec
from konsent.flows.context import Konsent
from konsent.flows.inbound.receive import handle_event
from konsent.flows.inbox import conversation
from konsent.flows.organisation import tenants
from konsent.flows.outbound import templates
from konsent.store.tables import AuditEntry, Conversation, Message, MessageTemplate
from konsent.store.types import utcnow
from tests.channels import fixtures_meta as fx
from tests.channels.fixtures_meta import fake  # noqa: F401  (pytest fixture)
from tests.inbox.conftest import Crew, drain

META_EXPORT = {
    "data": [
        {
            "name": "rueckfrage",
            "language": "de",
            "status": "APPROVED",
            "category": "UTILITY",
            "id": "1001",
            "components": [
                {"type": "HEADER", "format": "TEXT", "text": "Demo GmbH"},
                {"type": "BODY", "text": "Hallo {{1}}, haben Sie zu Auftrag {{2}} noch Fragen?"},
                {"type": "FOOTER", "text": "Antworten Sie STOP zum Abbestellen"},
                {
                    "type": "BUTTONS",
                    "buttons": [
                        {"type": "QUICK_REPLY", "text": "Ja"},
                        {"type": "QUICK_REPLY", "text": "Nein"},
                    ],
                },
            ],
        },
        {
            "name": "follow_up",
            "language": "en_US",
            "status": "APPROVED",
            "category": "UTILITY",
            "id": "1002",
            "components": [{"type": "BODY", "text": "Hello {{1}}, any questions left?"}],
        },
        {
            "name": "sale_teaser",
            "language": "de",
            "status": "PENDING",
            "category": "MARKETING",
            "id": "1003",
            "components": [{"type": "BODY", "text": "Neue Angebote sind da!"}],
        },
    ],
    "paging": {"cursors": {"before": "MAZDZD", "after": "MjQZD"}},
}


def wa_account(ctx: Konsent, crew: Crew, name: str = "WhatsApp", tenant_id: int | None = None) -> int:
    """A WhatsApp Cloud account (templates capable) of the crew's tenant."""
    with ctx.db.write() as s:
        tenant = s.get(tenants.Tenant, tenant_id or crew.tenant_id)
        acc = tenants.create_channel_account(
            ctx, s, tenant, "whatsapp", name, provider_ref=f"ref-{name}",
            secrets_={"access_token": "t", "app_secret": "a", "verify_token": "v"},
        )  # fmt: skip
        return acc.id


def closed_window_conversation(ctx: Konsent, account_id: int, phone: str = "+491703333333") -> int:
    """A conversation whose contact last wrote 30 hours ago: outside WhatsApp's 24-hour window."""
    handle_event(
        ctx, account_id, InboundMessage(f"wamid.{phone}", phone, utcnow() - timedelta(hours=30), text="Hallo")
    )
    with ctx.db.read() as s:
        return s.scalars(select(Conversation.id).where(Conversation.channel_account_id == account_id)).one()


def save(ctx: Konsent, crew: Crew, account: int, spec: TemplateSpec, **kw: Any) -> MessageTemplate:
    with ctx.db.write() as s:
        row = templates.save_template(ctx, s, crew.caller("admin"), account, spec, **kw)
        s.expunge(row)
        return row


def test_registry_derives_the_variables_and_bumps_the_version_on_each_change(
    ctx: Konsent, crew: Crew
) -> None:
    """M1: the count of {{n}} comes from the body; an edit raises the version; it is audited."""
    acc = wa_account(ctx, crew)
    first = save(ctx, crew, acc, TemplateSpec("rueckfrage", "de", "utility", "approved", "Hallo {{1}}"))
    assert (first.variables, first.version, first.category, first.status) == (1, 1, "UTILITY", "APPROVED")
    same = save(ctx, crew, acc, TemplateSpec("rueckfrage", "de", "UTILITY", "APPROVED", "Hallo {{1}}"))
    assert (same.id, same.version) == (first.id, 1)  # nothing changed, same version
    edited = save(
        ctx, crew, acc, TemplateSpec("rueckfrage", "de", "UTILITY", "APPROVED", "Hallo {{1}}, zu {{2}}:"),
        template_id=first.id,
    )  # fmt: skip
    assert (edited.id, edited.variables, edited.version) == (first.id, 2, 2)
    with ctx.db.write() as s:
        assert [t.name for t in templates.list_templates(s, crew.caller("anna"))] == ["rueckfrage"]
        with pytest.raises(PermissionDenied):
            templates.save_template(
                ctx, s, crew.caller("anna"), acc, TemplateSpec("x", "de", "UTILITY", "APPROVED", "x")
            )
        with pytest.raises(PermissionDenied):
            templates.delete_template(s, crew.caller("anna"), first.id)
        with pytest.raises(PermissionDenied):
            templates.list_templates(s, crew.caller("viewer"))
        # The simulator has no templates: refused with the reason.
        with pytest.raises(InvalidInput, match="no message templates"):
            templates.save_template(
                ctx,
                s,
                crew.caller("admin"),
                crew.account_id,
                TemplateSpec("x", "de", "UTILITY", "APPROVED", "x"),
            )
    with ctx.db.write() as s:
        templates.delete_template(s, crew.caller("admin"), first.id)
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(MessageTemplate)) == 0
        actions = [a.action for a in s.scalars(select(AuditEntry).order_by(AuditEntry.seq))]
        assert actions.count("template.save") == 3 and "template.delete" in actions


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        (TemplateSpec("Bad Name", "de", "UTILITY", "APPROVED", "x"), "lower-case letters"),
        (TemplateSpec("ok", "deutsch", "UTILITY", "APPROVED", "x"), "de or en_US"),
        (TemplateSpec("ok", "de", "PROMO", "APPROVED", "x"), "MARKETING, UTILITY or AUTHENTICATION"),
        (TemplateSpec("ok", "de", "UTILITY", "LIVE", "x"), "APPROVED, PENDING, REJECTED or PAUSED"),
        (TemplateSpec("ok", "de", "UTILITY", "APPROVED", " "), "body text"),
        (TemplateSpec("ok", "de", "UTILITY", "APPROVED", "Hallo {{1}} und {{3}}"), "without gaps"),
        (TemplateSpec("ok", "de", "UTILITY", "APPROVED", "x", header="Hi {{1}}"), "header"),
        (TemplateSpec("ok", "de", "UTILITY", "APPROVED", "x", buttons=("b",) * 11), "quick-reply"),
    ],
)
def test_a_broken_template_is_refused_with_its_reason_and_nothing_is_stored(
    ctx: Konsent, crew: Crew, spec: TemplateSpec, reason: str
) -> None:
    acc = wa_account(ctx, crew)
    with pytest.raises(TemplateInvalid) as exc, ctx.db.write() as s:
        templates.save_template(ctx, s, crew.caller("admin"), acc, spec)
    assert reason in str(exc.value)
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(MessageTemplate)) == 0


def test_import_of_metas_json_takes_header_body_buttons_and_is_idempotent(ctx: Konsent, crew: Crew) -> None:
    """M1: Meta's `message_templates` answer imports as is; importing it again changes nothing."""
    acc = wa_account(ctx, crew)
    with ctx.db.write() as s:
        result = templates.import_templates(ctx, s, crew.caller("admin"), acc, json.dumps(META_EXPORT))
    assert (result.added, result.changed, result.unchanged) == (3, 0, 0)
    with ctx.db.read() as s:
        rows = {t.name: t for t in templates.list_templates(s, crew.caller("anna"))}
    r = rows["rueckfrage"]
    assert (r.language, r.category, r.status, r.variables) == ("de", "UTILITY", "APPROVED", 2)
    assert (r.header, r.buttons) == ("Demo GmbH", ["Ja", "Nein"])
    assert rows["sale_teaser"].status == "PENDING" and rows["sale_teaser"].variables == 0
    changed = json.loads(json.dumps(META_EXPORT))
    changed["data"][2]["status"] = "APPROVED"
    with ctx.db.write() as s:
        again = templates.import_templates(ctx, s, crew.caller("admin"), acc, json.dumps(changed))
    assert (again.added, again.changed, again.unchanged) == (0, 1, 2)
    with ctx.db.read() as s:
        teaser = s.scalars(select(MessageTemplate).where(MessageTemplate.name == "sale_teaser")).one()
        assert (teaser.status, teaser.version) == ("APPROVED", 2)


def test_import_with_broken_templates_names_each_one_and_stores_nothing(ctx: Konsent, crew: Crew) -> None:
    """Bad input loses nothing: one broken entry refuses the whole import, each error with its place."""
    acc = wa_account(ctx, crew)
    broken = json.loads(json.dumps(META_EXPORT))
    broken["data"][0]["category"] = "TRANSACTIONAL"
    broken["data"][1]["name"] = "Follow-Up"
    broken["data"][2]["language"] = "german"
    broken["data"].append("not an object")
    broken["data"].append({**META_EXPORT["data"][1]})  # fine on its own …
    broken["data"].append({**META_EXPORT["data"][1]})  # … but twice
    with pytest.raises(TemplateImportInvalid) as exc, ctx.db.write() as s:
        templates.import_templates(ctx, s, crew.caller("admin"), acc, json.dumps(broken))
    assert exc.value.problems == [
        (1, "rueckfrage", "the category must be MARKETING, UTILITY or AUTHENTICATION"),
        (2, "Follow-Up", "a template name has lower-case letters, digits and underscores"),
        (3, "sale_teaser", "a template language looks like de or en_US"),
        (4, "", "each template must be a JSON object"),
        (6, "follow_up", "this name and language appear twice in the import"),
    ]
    for raw, reason in [
        ("{not json", "not valid JSON"),
        ('{"data": []}', '"data" list'),
        ('{"error": {"code": 190}}', '"data" list'),
    ]:
        with pytest.raises(TemplateImportInvalid) as bad, ctx.db.write() as s:
            templates.import_templates(ctx, s, crew.caller("admin"), acc, raw)
        assert reason in bad.value.problems[0][2]
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(MessageTemplate)) == 0


def test_picker_lists_only_approved_templates_of_the_account_in_the_preferred_language_first(
    ctx: Konsent, crew: Crew
) -> None:
    acc = wa_account(ctx, crew)
    other = wa_account(ctx, crew, "WhatsApp 2")
    with ctx.db.write() as s:
        templates.import_templates(ctx, s, crew.caller("admin"), acc, json.dumps(META_EXPORT))
    save(ctx, crew, acc, TemplateSpec("paused_one", "de", "UTILITY", "PAUSED", "x"))
    save(ctx, crew, acc, TemplateSpec("zz_last", "de_DE", "UTILITY", "APPROVED", "x"))
    save(ctx, crew, other, TemplateSpec("elsewhere", "de", "UTILITY", "APPROVED", "x"))
    with ctx.db.read() as s:
        de_first = templates.approved_for(s, crew.tenant_id, acc, ["de", "en"])
        en_first = templates.approved_for(s, crew.tenant_id, acc, ["en", "de"])
    assert [(t.name, t.language) for t in de_first] == [
        ("rueckfrage", "de"), ("zz_last", "de_DE"), ("follow_up", "en_US")]  # fmt: skip
    assert [t.name for t in en_first] == ["follow_up", "rueckfrage", "zz_last"]


def test_template_send_refuses_unregistered_unapproved_and_wrong_variable_counts(
    ctx: Konsent, crew: Crew
) -> None:
    """M1, CH3: only what the registry holds as APPROVED for this account, with all its variables."""
    acc = wa_account(ctx, crew)
    other = wa_account(ctx, crew, "WhatsApp 2")
    conv = closed_window_conversation(ctx, acc)
    with ctx.db.write() as s:
        templates.import_templates(ctx, s, crew.caller("admin"), acc, json.dumps(META_EXPORT))
    save(ctx, crew, other, TemplateSpec("elsewhere", "de", "UTILITY", "APPROVED", "Hallo {{1}}"))
    admin = crew.caller("admin")
    refusals = [
        (("unknown", "de", ["x"]), "not registered as approved"),
        (("rueckfrage", "en", ["Erika", "A-1"]), "not registered as approved"),  # wrong language
        (("sale_teaser", "de", []), "not registered as approved"),  # PENDING
        (("elsewhere", "de", ["Erika"]), "not registered as approved"),  # another account's
        (("rueckfrage", "de", ["Erika"]), "needs 2 variables, 1 were given"),
        (("rueckfrage", "de", ["Erika", "A-1", "x"]), "needs 2 variables, 3 were given"),
        (("rueckfrage", "de", ["Erika", "  "]), "needs a value"),
    ]
    for (name, language, params), reason in refusals:
        with pytest.raises(InvalidInput, match=reason), ctx.db.write() as s:
            conversation.reply_template(ctx, s, admin, conv, name, language, params)
    with ctx.db.read() as s:
        assert s.scalars(select(Message).where(Message.author == admin.actor)).all() == []
    with ctx.db.write() as s:
        msg = conversation.reply_template(ctx, s, admin, conv, "rueckfrage", "de", ["Erika", "A-1"])
        tpl = templates.get_template(s, crew.tenant_id, msg.template_id or 0)
        assert (tpl.name, msg.template_version) == ("rueckfrage", 1)
    with ctx.db.write() as s:
        other_tenant = tenants.create_tenant(ctx, s, "other", "Other GmbH")
        with pytest.raises(NotFound):
            templates.get_template(s, other_tenant.id, tpl.id)


def test_the_template_reaches_the_meta_fake_with_name_language_and_parameters(
    ctx: Konsent,
    crew: Crew,
    client: Any,
    fake: Any,  # noqa: F811
) -> None:
    """CH3: what the agent picked is exactly what Meta receives; the fake knows only that template."""
    conn = fx.connect(ctx, "whatsapp", fake)
    fake.templates = {("rueckfrage", "de")}
    fake.user_text(fx.WA_PHONE_ID, "4915112345678", "Hallo")
    assert fx.deliver(client, conn, fake.take_outgoing()) == [200]
    with ctx.db.write() as s:
        templates.import_templates(ctx, s, crew.caller("admin"), conn.account_id, json.dumps(META_EXPORT))
        conv = s.scalars(
            select(Conversation.id).where(Conversation.channel_account_id == conn.account_id)
        ).one()
    with ctx.db.write() as s:
        msg = conversation.reply_template(
            ctx, s, crew.caller("admin"), conv, "rueckfrage", "de", ["Erika", "A-1"]
        )
        msg_id = msg.id
    drain(ctx)
    sent = [dict(a["body"]) for a in fake.accepted if a["body"].get("type") == "template"]
    refs = [body.pop("biz_opaque_callback_data", "") for body in sent]  # the echo reference (#14)
    assert all(ref.startswith("ko1-") for ref in refs)
    assert sent == [
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "+4915112345678",
            "type": "template",
            "template": {
                "name": "rueckfrage",
                "language": {"code": "de"},
                "components": [
                    {
                        "type": "body",
                        "parameters": [{"type": "text", "text": "Erika"}, {"type": "text", "text": "A-1"}],
                    }
                ],
            },
        }
    ]
    with ctx.db.read() as s:
        stored = s.get(Message, msg_id)
        assert stored is not None and stored.status == "sent" and stored.template_version == 1


WABA_ID = "102290129340398"


def test_sync_fetches_every_page_from_the_meta_fake_and_refuses_a_wrong_token(
    ctx: Konsent,
    crew: Crew,
    client: Any,
    fake: Any,  # noqa: F811
) -> None:
    """M1: "fetch from the provider" pages through Meta's `message_templates` with the account's
    token; without the WABA id, or with a token Meta refuses, nothing is stored and the admin is told."""
    from tests.inbox.conftest import sign_in

    conn = fx.connect(ctx, "whatsapp", fake)
    many = [
        {"name": f"notice_{i:03}", "language": "de", "status": "APPROVED", "category": "UTILITY",
         "id": str(5000 + i), "components": [{"type": "BODY", "text": f"Hinweis {i}: {{{{1}}}}"}]}
        for i in range(130)
    ]  # fmt: skip
    fake.add_waba(WABA_ID, "EAAJB-test-token", META_EXPORT["data"] + many)
    csrf = sign_in(client, ctx, crew.users["admin"])

    def sync(lang: str = "de") -> Any:
        return client.post(
            f"/admin/templates/sync?lang={lang}",
            data={"account": str(conn.account_id), "csrf_token": csrf},
            follow_redirects=False,
        )

    no_id = sync()
    assert no_id.status_code == 422
    assert "tragen Sie zuerst die WhatsApp-Business-Account-ID in den Kanaleinstellungen ein" in no_id.text
    with ctx.db.write() as s:
        acc = s.get(tenants.ChannelAccount, conn.account_id)
        assert acc is not None
        acc.settings = {**acc.settings, "waba_id": WABA_ID}
    ok = sync()
    assert ok.status_code == 303, ok.text
    assert "Import fertig: 133 neu, 0 geändert, 0 unverändert." in client.get(ok.headers["location"]).text
    with ctx.db.read() as s:
        rows = s.scalars(select(MessageTemplate).where(MessageTemplate.channel_account_id == conn.account_id))
        by_name = {r.name: r for r in rows}
    assert len(by_name) == 133 and by_name["notice_129"].variables == 1
    assert by_name["rueckfrage"].buttons == ["Ja", "Nein"]
    fake.wabas[WABA_ID] = ("another-token", META_EXPORT["data"])
    refused = sync("en")
    assert refused.status_code == 422 and "the provider refused the request" in refused.text
    with ctx.db.read() as s:
        audit = [a.action for a in s.scalars(select(AuditEntry).where(AuditEntry.action == "template.sync"))]
    assert audit == ["template.sync"]  # only the successful fetch stored anything
    agent_csrf = sign_in(client, ctx, crew.users["anna"])
    denied = client.post(
        "/admin/templates/sync", data={"account": str(conn.account_id), "csrf_token": agent_csrf}
    )
    assert denied.status_code == 403
