"""The template pages over HTTP: registry add/edit/remove/import for owners and admins, read-only
for agents; the inbox picker outside the window (works without JavaScript); the broadcast
select (M1, M3, CH3, S3, U2)."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import func, select

from konsent.flows.context import Konsent
from konsent.store.tables import Broadcast, Message, MessageTemplate
from tests.inbox.conftest import Crew, sign_in
from tests.inbox.test_templates import META_EXPORT, closed_window_conversation, wa_account

FORM = {
    "name": "rueckfrage",
    "language": "de",
    "category": "UTILITY",
    "status": "APPROVED",
    "body": "Hallo {{1}}, noch Fragen zu {{2}}?",
    "header": "",
    "buttons": "Ja\nNein",
}


def _count(ctx: Konsent) -> int:
    with ctx.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(MessageTemplate)) or 0)


def test_admin_adds_edits_and_removes_a_template_agents_only_read(
    ctx: Konsent, crew: Crew, client: Any
) -> None:
    acc = wa_account(ctx, crew)
    csrf = sign_in(client, ctx, crew.users["admin"])
    added = client.post(
        "/admin/templates", data={**FORM, "account": str(acc), "csrf_token": csrf}, follow_redirects=False
    )
    assert added.status_code == 303
    listing = client.get(added.headers["location"])
    assert "Vorlage gespeichert." in listing.text and "rueckfrage" in listing.text
    with ctx.db.read() as s:
        row = s.scalars(select(MessageTemplate)).one()
        assert (row.variables, row.buttons, row.version) == (2, ["Ja", "Nein"], 1)
    bad = client.post(
        f"/admin/templates/{row.id}",
        data={**FORM, "category": "PROMO", "account": str(acc), "csrf_token": csrf},
    )
    assert bad.status_code == 422
    assert "die Kategorie muss MARKETING, UTILITY oder AUTHENTICATION sein" in bad.text
    assert "Hallo {{1}}, noch Fragen zu {{2}}?</textarea>" in bad.text  # the form keeps what was typed
    english = client.post(
        f"/admin/templates/{row.id}?lang=en",
        data={**FORM, "body": "Hallo {{2}}", "account": str(acc), "csrf_token": csrf},
    )
    assert english.status_code == 422 and "numbered {{1}}, {{2}} … without gaps" in english.text
    edited = client.post(
        f"/admin/templates/{row.id}",
        data={**FORM, "body": "Hallo {{1}}!", "account": str(acc), "csrf_token": csrf},
        follow_redirects=False,
    )
    assert edited.status_code == 303
    with ctx.db.read() as s:
        row = s.scalars(select(MessageTemplate)).one()
        assert (row.body, row.variables, row.version) == ("Hallo {{1}}!", 1, 2)
    # Agents read the registry but cannot change it.
    agent_csrf = sign_in(client, ctx, crew.users["anna"])
    page = client.get("/admin/templates")
    assert page.status_code == 200 and "Hallo {{1}}!" in page.text and 'id="template-form"' not in page.text
    assert client.get(f"/admin/templates/{row.id}").status_code == 200
    denied = client.post(f"/admin/templates/{row.id}/delete", data={"csrf_token": agent_csrf})
    assert denied.status_code == 403 and _count(ctx) == 1
    csrf = sign_in(client, ctx, crew.users["owner"])
    forged = client.post(f"/admin/templates/{row.id}/delete", data={"csrf_token": "nope"})
    assert forged.status_code == 403 and _count(ctx) == 1
    gone = client.post(f"/admin/templates/{row.id}/delete", data={"csrf_token": csrf}, follow_redirects=False)
    assert gone.status_code == 303 and _count(ctx) == 0


def test_import_page_lists_each_broken_template_in_german_and_stores_nothing(
    ctx: Konsent, crew: Crew, client: Any
) -> None:
    acc = wa_account(ctx, crew)
    csrf = sign_in(client, ctx, crew.users["admin"])
    broken = json.loads(json.dumps(META_EXPORT))
    broken["data"][0]["category"] = "TRANSACTIONAL"
    broken["data"][2]["name"] = "Sale Teaser"
    resp = client.post(
        "/admin/templates/import",
        data={"account": str(acc), "json_text": json.dumps(broken), "csrf_token": csrf},
    )
    assert resp.status_code == 422
    assert "Der Import wurde abgelehnt; nichts wurde gespeichert." in resp.text
    assert (
        "Vorlage 1 (rueckfrage): die Kategorie muss MARKETING, UTILITY oder AUTHENTICATION sein" in resp.text
    )
    assert "Vorlage 3 (Sale Teaser): a template name" not in resp.text  # translated, not the msgid
    assert "Vorlage 3 (Sale Teaser):" in resp.text
    not_json = client.post(
        "/admin/templates/import?lang=en", data={"account": str(acc), "json_text": "{", "csrf_token": csrf}
    )
    assert not_json.status_code == 422 and "this is not valid JSON" in not_json.text
    assert _count(ctx) == 0
    uploaded = client.post(
        "/admin/templates/import",
        data={"account": str(acc), "csrf_token": csrf},
        files={"file": ("templates.json", json.dumps(META_EXPORT).encode(), "application/json")},
        follow_redirects=False,
    )
    assert uploaded.status_code == 303
    assert "Import fertig: 3 neu, 0 geändert, 0 unverändert." in client.get(uploaded.headers["location"]).text
    assert _count(ctx) == 3


def _picker_setup(ctx: Konsent, crew: Crew, client: Any) -> tuple[int, dict[str, int], str]:
    acc = wa_account(ctx, crew)
    other = wa_account(ctx, crew, "WhatsApp 2")
    conv = closed_window_conversation(ctx, acc)
    csrf = sign_in(client, ctx, crew.users["admin"])
    for account in (acc, other):
        assert (
            client.post(
                "/admin/templates/import",
                data={"account": str(account), "json_text": json.dumps(META_EXPORT), "csrf_token": csrf},
                follow_redirects=False,
            ).status_code
            == 303
        )
    with ctx.db.read() as s:
        ids = {
            t.name: t.id
            for t in s.scalars(select(MessageTemplate).where(MessageTemplate.channel_account_id == acc))
        }
        other_ids = list(
            s.scalars(select(MessageTemplate.id).where(MessageTemplate.channel_account_id == other))
        )
    ids["other_account"] = other_ids[0]
    return conv, ids, csrf


def test_picker_offers_only_approved_templates_of_the_account_and_works_in_two_steps(
    ctx: Konsent, crew: Crew, client: Any
) -> None:
    """M1: outside the window the picker lists this account's APPROVED templates, German first;
    without JavaScript, choosing one reloads the page with one field per variable."""
    conv, ids, _csrf = _picker_setup(ctx, crew, client)
    page = client.get(f"/admin/inbox/{conv}")
    assert page.status_code == 200
    options = re.findall(r'<option value="(\d+)"[^>]*>([a-z_]+) · ', page.text)
    assert options == [(str(ids["rueckfrage"]), "rueckfrage"), (str(ids["follow_up"]), "follow_up")]
    assert "sale_teaser" not in page.text.split('id="tpl-data"')[0]  # PENDING: not offered
    assert str(ids["other_account"]) not in [o for o, _ in options]
    assert 'id="tpl-var-1"' not in page.text and '<script src="/static/templates.js"' in page.text
    data = json.loads(re.search(r'id="tpl-data">(.*?)</script>', page.text, re.S).group(1))  # type: ignore[union-attr]
    assert [(t["name"], t["variables"]) for t in data] == [("rueckfrage", 2), ("follow_up", 1)]
    step2 = client.get(f"/admin/inbox/{conv}?template={ids['rueckfrage']}")
    assert (
        'id="tpl-var-1"' in step2.text
        and 'id="tpl-var-2"' in step2.text
        and 'id="tpl-var-3"' not in step2.text
    )
    assert "Hallo {{1}}, haben Sie zu Auftrag {{2}} noch Fragen?" in step2.text
    # A template of another account cannot be chosen here.
    assert 'id="tpl-var-1"' not in client.get(f"/admin/inbox/{conv}?template={ids['other_account']}").text


def test_picker_send_refuses_wrong_counts_and_foreign_templates_then_sends(
    ctx: Konsent, crew: Crew, client: Any
) -> None:
    conv, ids, csrf = _picker_setup(ctx, crew, client)
    url = f"/admin/inbox/{conv}/template"
    short = client.post(
        url, data={"template_id": str(ids["rueckfrage"]), "var": ["Erika"], "csrf_token": csrf}
    )
    assert short.status_code == 422 and "diese Vorlage braucht 2 Variablen, angegeben wurden 1" in short.text
    assert 'value="Erika"' in short.text  # what was typed stays
    for tid in (ids["sale_teaser"], ids["other_account"], 999999):
        refused = client.post(url, data={"template_id": str(tid), "csrf_token": csrf})
        assert refused.status_code == 422, tid
        assert "diese Vorlage ist für dieses Kanalkonto nicht als genehmigt hinterlegt" in refused.text
    english = client.post(
        url + "?lang=en", data={"template_id": str(ids["follow_up"]), "var": [], "csrf_token": csrf}
    )
    assert "this template needs 1 variables, 0 were given" in english.text
    with ctx.db.read() as s:
        assert s.scalars(select(Message).where(Message.template_id.is_not(None))).all() == []
    ok = client.post(
        url,
        data={"template_id": str(ids["rueckfrage"]), "var": ["Erika", "A-17"], "csrf_token": csrf},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    with ctx.db.read() as s:
        sent = s.scalars(select(Message).where(Message.template_id.is_not(None))).one()
        assert (sent.template_id, sent.template_version, sent.conversation_id) == (ids["rueckfrage"], 1, conv)


def test_broadcast_compose_offers_the_registry_and_checks_the_variable_count(
    ctx: Konsent, crew: Crew, client: Any
) -> None:
    """M3: the template fallback is picked from the approved registry; a wrong count is refused."""
    acc = wa_account(ctx, crew)
    csrf = sign_in(client, ctx, crew.users["admin"])
    client.post(
        "/admin/templates/import",
        data={"account": str(acc), "json_text": json.dumps(META_EXPORT), "csrf_token": csrf},
    )
    page = client.get("/admin/broadcasts")
    assert 'value="rueckfrage|de"' in page.text and 'value="follow_up|en_US"' in page.text
    assert "sale_teaser" not in page.text
    form = {"name": "Nachfrage", "topic": "angebote", "text": "", "csrf_token": csrf, "min_text_version": "0"}
    wrong = client.post(
        "/admin/broadcasts", data={**form, "template": "rueckfrage|de", "template_params": "{name}"}
    )
    assert wrong.status_code == 422 and "diese Vorlage braucht 2 Variablen, angegeben wurden 1" in wrong.text
    pending = client.post("/admin/broadcasts", data={**form, "template": "sale_teaser|de"})
    assert pending.status_code == 422 and "nicht als genehmigt hinterlegt" in pending.text
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Broadcast)) == 0
    ok = client.post(
        "/admin/broadcasts",
        data={**form, "template": "rueckfrage|de", "template_params": "{first_name|Kunde}, A-1"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    with ctx.db.read() as s:
        content = s.scalars(select(Broadcast)).one().content
        assert (content["template"], content["template_language"]) == ("rueckfrage", "de")
        assert content["template_params"] == ["{first_name|Kunde}", "A-1"]
