"""Role × route matrix: every /admin and /api/v1 route, allowed or denied for each role (S3).

Data-driven: the test walks `app.routes`; a route without an expectation here fails
the test, so every new route must say which roles may use it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from konsent.flows.context import Konsent
from konsent.flows.inbox import canned, conversation
from konsent.store.tables import BotFlow, Message
from konsent.web.deps import CSRF_HEADER
from tests.inbox.conftest import Crew, conversation_of, say, sign_in

ROLES = ("owner", "admin", "agent", "dpo", "viewer")
ALL = frozenset(ROLES)
PUBLIC = "public"  # reachable without signing in (sign-in page, language switch, API description)
MANAGERS = frozenset({"owner", "admin"})
INBOX = frozenset({"owner", "admin", "agent"})
PERSONAL = frozenset({"owner", "admin", "agent", "dpo"})
PROOF = frozenset({"owner", "admin", "dpo"})
STATS = frozenset({"owner", "admin", "viewer"})
TEMPLATES_READ = frozenset({"owner", "admin", "agent"})  # inbox.use

# (method, path) -> roles allowed, or PUBLIC
MATRIX: dict[tuple[str, str], frozenset[str] | str] = {
    ("GET", "/api/v1/openapi.json"): PUBLIC,
    ("GET", "/api/v1/topics"): ALL,
    ("GET", "/api/v1/channels"): ALL,
    ("GET", "/api/v1/contacts"): ALL,
    ("GET", "/api/v1/contacts/{contact_id}"): ALL,
    ("GET", "/api/v1/contacts/{contact_id}/messages"): PERSONAL,
    ("POST", "/api/v1/contacts/{contact_id}/withdraw"): INBOX,
    ("PUT", "/api/v1/contacts/{contact_id}/name"): PERSONAL,
    ("POST", "/api/v1/contacts/import"): MANAGERS,
    ("GET", "/api/v1/contacts/{contact_id}/proof"): PROOF,
    ("GET", "/api/v1/contacts/{contact_id}/proof.html"): PROOF,
    ("POST", "/api/v1/messages"): INBOX,
    ("GET", "/api/v1/messages/{message_id}"): ALL,
    ("GET", "/api/v1/messages/{message_id}/media"): PERSONAL,
    ("GET", "/api/v1/ledger/verify"): PROOF,
    # contacts and opt-ins for connected systems (M4)
    ("POST", "/api/v1/contacts"): MANAGERS,
    ("PATCH", "/api/v1/contacts/{contact_id}"): INBOX,
    ("POST", "/api/v1/contacts/{contact_id}/erase"): PROOF,
    ("GET", "/api/v1/contacts/{contact_id}/consents"): ALL,
    ("POST", "/api/v1/optins"): INBOX,
    ("GET", "/api/v1/conversations"): INBOX,
    ("GET", "/api/v1/conversations/{conversation_id}"): INBOX,
    ("POST", "/api/v1/conversations/{conversation_id}/reply"): INBOX,
    ("POST", "/api/v1/conversations/{conversation_id}/assign"): INBOX,
    ("POST", "/api/v1/conversations/{conversation_id}/state"): INBOX,
    ("POST", "/api/v1/conversations/{conversation_id}/notes"): INBOX,
    ("PUT", "/api/v1/conversations/{conversation_id}/labels"): INBOX,
    ("GET", "/api/v1/broadcasts"): ALL,
    ("POST", "/api/v1/broadcasts"): MANAGERS,
    ("GET", "/api/v1/broadcasts/{broadcast_id}"): ALL,
    ("POST", "/api/v1/broadcasts/{broadcast_id}/schedule"): MANAGERS,
    ("POST", "/api/v1/broadcasts/{broadcast_id}/pause"): MANAGERS,
    ("POST", "/api/v1/broadcasts/{broadcast_id}/resume"): MANAGERS,
    ("POST", "/api/v1/broadcasts/{broadcast_id}/cancel"): MANAGERS,
    ("GET", "/api/v1/templates"): TEMPLATES_READ,
    ("GET", "/api/v1/privacy-requests"): PROOF,
    ("POST", "/api/v1/privacy-requests"): PROOF,
    ("POST", "/api/v1/privacy-requests/{request_id}/complete"): PROOF,
    ("GET", "/api/v1/audit/verify"): PROOF,
    # outgoing webhooks (M4): managers only
    ("GET", "/api/v1/webhook-event-types"): ALL,
    ("GET", "/api/v1/webhook-endpoints"): MANAGERS,
    ("POST", "/api/v1/webhook-endpoints"): MANAGERS,
    ("GET", "/api/v1/webhook-endpoints/{endpoint_id}"): MANAGERS,
    ("PATCH", "/api/v1/webhook-endpoints/{endpoint_id}"): MANAGERS,
    ("DELETE", "/api/v1/webhook-endpoints/{endpoint_id}"): MANAGERS,
    ("POST", "/api/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): MANAGERS,
    ("GET", "/api/v1/webhook-endpoints/{endpoint_id}/deliveries"): MANAGERS,
    ("POST", "/api/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/redeliver"): MANAGERS,
    ("GET", "/admin/webhooks"): MANAGERS,
    ("POST", "/admin/webhooks"): MANAGERS,
    ("GET", "/admin/webhooks/{endpoint_id}"): MANAGERS,
    ("POST", "/admin/webhooks/{endpoint_id}/{action}"): MANAGERS,
    ("GET", "/admin/login"): PUBLIC,
    ("POST", "/admin/login"): PUBLIC,
    ("POST", "/admin/logout"): ALL,
    ("GET", "/admin/password"): ALL,
    ("POST", "/admin/password"): ALL,
    ("GET", "/admin/lang/{locale}"): PUBLIC,
    ("GET", "/admin"): ALL,
    ("GET", "/admin/"): PUBLIC,  # a redirect to /admin
    ("GET", "/admin/contacts"): ALL,
    ("GET", "/admin/contacts/{contact_id}"): ALL,
    ("POST", "/admin/contacts/{contact_id}/reply"): INBOX,
    ("POST", "/admin/contacts/{contact_id}/withdraw"): INBOX,
    ("GET", "/admin/contacts/{contact_id}/proof.json"): PROOF,
    ("GET", "/admin/contacts/{contact_id}/proof.html"): PROOF,
    ("GET", "/admin/ledger"): PROOF,
    ("POST", "/admin/ledger/verify"): PROOF,
    ("GET", "/admin/channels"): MANAGERS,
    ("POST", "/admin/channels"): MANAGERS,
    ("POST", "/admin/channels/{account_id}/webhook"): MANAGERS,
    ("POST", "/admin/channels/{account_id}/{action}"): MANAGERS,
    ("POST", "/admin/contacts/{contact_id}/name"): PERSONAL,
    ("GET", "/admin/staff"): MANAGERS,
    ("POST", "/admin/staff/invite"): MANAGERS,
    ("POST", "/admin/staff/{user_id}/{action}"): MANAGERS,
    ("POST", "/admin/staff-settings"): MANAGERS,
    ("GET", "/admin/tokens"): MANAGERS,
    ("POST", "/admin/tokens"): MANAGERS,
    ("POST", "/admin/tokens/{token_id}/revoke"): MANAGERS,
    ("GET", "/admin/me"): ALL,
    ("POST", "/admin/me"): ALL,
    ("GET", "/admin/invite/{token}"): PUBLIC,  # the one-time link is the credential
    ("POST", "/admin/invite/{token}"): PUBLIC,
    ("GET", "/admin/inbox/events"): INBOX,
    ("GET", "/admin/inbox"): INBOX,
    ("GET", "/admin/inbox/rows"): INBOX,
    ("GET", "/admin/inbox/{cid}"): INBOX,
    ("GET", "/admin/inbox/{cid}/thread"): INBOX,
    ("POST", "/admin/inbox/{cid}/reply"): INBOX,
    ("POST", "/admin/inbox/{cid}/reply-interactive"): INBOX,
    ("POST", "/admin/inbox/{cid}/template"): INBOX,
    ("POST", "/admin/inbox/{cid}/assign"): INBOX,
    ("POST", "/admin/inbox/{cid}/state"): INBOX,
    ("POST", "/admin/inbox/{cid}/snooze"): INBOX,
    ("POST", "/admin/inbox/{cid}/note"): INBOX,
    ("POST", "/admin/inbox/{cid}/labels"): INBOX,
    ("POST", "/admin/inbox/{cid}/takeover"): INBOX,
    ("POST", "/admin/inbox/{cid}/withdraw-data"): INBOX,
    ("POST", "/admin/inbox/{cid}/panel"): INBOX,
    ("POST", "/admin/inbox/{cid}/typing"): INBOX,
    ("GET", "/admin/inbox/{cid}/files/{file_id}"): INBOX,
    ("GET", "/admin/teams"): MANAGERS,
    ("POST", "/admin/teams"): MANAGERS,
    ("POST", "/admin/teams/{tid}/members"): MANAGERS,
    ("POST", "/admin/teams/unrouted"): MANAGERS,
    ("GET", "/admin/templates"): INBOX,
    ("GET", "/admin/templates/{template_id}"): INBOX,
    ("POST", "/admin/templates"): MANAGERS,
    ("POST", "/admin/templates/import"): MANAGERS,
    ("POST", "/admin/templates/sync"): MANAGERS,
    ("POST", "/admin/templates/{template_id}"): MANAGERS,
    ("POST", "/admin/templates/{template_id}/delete"): MANAGERS,
    ("GET", "/admin/canned"): MANAGERS,
    ("POST", "/admin/canned"): MANAGERS,
    ("POST", "/admin/canned/{rid}/delete"): MANAGERS,
    ("GET", "/admin/bot"): MANAGERS,
    ("POST", "/admin/bot"): MANAGERS,
    ("POST", "/admin/bot/disclosure"): MANAGERS,
    ("POST", "/admin/stats/csat"): MANAGERS,
    ("GET", "/admin/bot/{fid}"): MANAGERS,
    ("POST", "/admin/bot/{fid}"): MANAGERS,
    ("GET", "/admin/bot/{fid}/export"): MANAGERS,
    ("GET", "/admin/stats"): STATS,
    ("POST", "/admin/stats/works-council"): MANAGERS,
    ("GET", "/admin/security/totp"): ALL,
    ("POST", "/admin/security/totp"): ALL,
    ("GET", "/admin/privacy"): PROOF,
    ("POST", "/admin/privacy/requests"): PROOF,
    ("POST", "/admin/privacy/requests/{request_id}/close"): PROOF,
    ("GET", "/admin/privacy/contact"): PERSONAL,
    ("GET", "/admin/privacy/contacts/{contact_id}"): PERSONAL,
    ("POST", "/admin/privacy/contacts/{contact_id}/export"): PERSONAL,
    ("POST", "/admin/privacy/contacts/{contact_id}/erase"): PERSONAL,  # without the confirmation: refused
    ("POST", "/admin/privacy/contacts/{contact_id}/rectify"): PERSONAL,
    ("POST", "/admin/privacy/contacts/{contact_id}/object"): PERSONAL,
    ("GET", "/admin/privacy/audit"): PROOF,
    ("GET", "/admin/privacy/retention"): PROOF,
    ("POST", "/admin/privacy/retention/rules"): MANAGERS,
    ("POST", "/admin/privacy/retention/run"): MANAGERS,
    ("GET", "/admin/privacy/import"): MANAGERS,
    ("POST", "/admin/privacy/import"): MANAGERS,
    ("GET", "/admin/privacy/documents"): PROOF,
    ("GET", "/admin/privacy/documents/{name}"): PROOF,
    ("GET", "/admin/broadcasts"): ALL,
    ("POST", "/admin/broadcasts"): MANAGERS,
    ("GET", "/admin/broadcasts/{broadcast_id}"): ALL,
    ("GET", "/admin/broadcasts/{broadcast_id}/progress.json"): ALL,
    ("GET", "/admin/broadcasts/{broadcast_id}/funnel.svg"): ALL,
    ("POST", "/admin/broadcasts/{broadcast_id}/{action}"): MANAGERS,
    # company setup (#12): owners and admins set up; everyone may read topics and consent texts
    ("GET", "/admin/setup"): MANAGERS,
    ("GET", "/admin/settings"): MANAGERS,
    ("GET", "/admin/settings/company"): MANAGERS,
    ("POST", "/admin/settings/company"): MANAGERS,
    ("GET", "/admin/setup/widget"): MANAGERS,
    ("GET", "/admin/topics"): MANAGERS,
    ("POST", "/admin/topics"): MANAGERS,
    ("POST", "/admin/topics/{slug}"): MANAGERS,
    ("POST", "/admin/topics/{slug}/{action}"): MANAGERS,
    ("GET", "/admin/consent-texts"): MANAGERS,
    ("POST", "/admin/consent-texts"): MANAGERS,
    ("GET", "/admin/consent-texts/{locale}/diff"): MANAGERS,
    ("GET", "/admin/consent-texts/{locale}/{version}"): MANAGERS,
    ("POST", "/admin/reconsent"): MANAGERS,
    ("GET", "/admin/reconsent/{campaign_id}"): MANAGERS,
    ("GET", "/api/v1/company"): MANAGERS,
    ("PUT", "/api/v1/company"): MANAGERS,
    ("POST", "/api/v1/topics"): MANAGERS,
    ("GET", "/api/v1/topics/{slug}"): ALL,
    ("PATCH", "/api/v1/topics/{slug}"): MANAGERS,
    ("DELETE", "/api/v1/topics/{slug}"): MANAGERS,
    ("PUT", "/api/v1/topics-order"): MANAGERS,
    ("GET", "/api/v1/consent-texts/{locale}"): ALL,
    ("POST", "/api/v1/consent-texts/{locale}"): MANAGERS,
    ("GET", "/api/v1/consent-texts/{locale}/diff"): ALL,
    ("GET", "/api/v1/consent-texts/{locale}/{version}"): ALL,
    ("POST", "/api/v1/reconsent"): MANAGERS,
    ("GET", "/api/v1/reconsent/{campaign_id}"): MANAGERS,
    # contact labels, typed attributes, search and export (#17 item 2)
    ("GET", "/admin/contact-data"): MANAGERS,
    ("POST", "/admin/contact-data/labels"): MANAGERS,
    ("POST", "/admin/contact-data/labels/{label_id}"): MANAGERS,
    ("POST", "/admin/contact-data/attributes"): MANAGERS,
    ("POST", "/admin/contact-data/attributes/{attribute_id}"): MANAGERS,
    ("POST", "/admin/contacts/{contact_id}/data"): PERSONAL,
    ("GET", "/admin/contact-export"): PROOF,
    ("POST", "/admin/contact-export"): PROOF,
    ("GET", "/api/v1/contact-labels"): ALL,
    ("POST", "/api/v1/contact-labels"): MANAGERS,
    ("PATCH", "/api/v1/contact-labels/{label_id}"): MANAGERS,
    ("DELETE", "/api/v1/contact-labels/{label_id}"): MANAGERS,
    ("GET", "/api/v1/contact-attributes"): ALL,
    ("POST", "/api/v1/contact-attributes"): MANAGERS,
    ("PATCH", "/api/v1/contact-attributes/{attribute_id}"): MANAGERS,
    ("DELETE", "/api/v1/contact-attributes/{attribute_id}"): MANAGERS,
    ("GET", "/api/v1/contacts/{contact_id}/data"): PERSONAL,
    ("PUT", "/api/v1/contacts/{contact_id}/data"): PERSONAL,
    ("GET", "/api/v1/contact-search"): PERSONAL,
    ("GET", "/api/v1/contact-export"): PROOF,
    # costs and budgets (#16 item 4)
    ("GET", "/admin/costs"): STATS,
    ("POST", "/admin/costs/budget"): MANAGERS,
    ("POST", "/admin/broadcasts/{broadcast_id}/budget"): MANAGERS,
    ("GET", "/api/v1/costs"): STATS,
    ("GET", "/api/v1/prices"): STATS,
    ("PUT", "/api/v1/budget"): MANAGERS,
    ("GET", "/api/v1/broadcasts/{broadcast_id}/costs"): ALL,
    ("PUT", "/api/v1/broadcasts/{broadcast_id}/budget"): MANAGERS,
    # audiences and contact pressure (#17 items 3 and 4)
    ("GET", "/admin/segments"): ALL,
    ("POST", "/admin/segments"): MANAGERS,
    ("POST", "/admin/segments/preview"): ALL,
    ("GET", "/admin/segments/{segment_id}"): ALL,
    ("POST", "/admin/segments/{segment_id}"): MANAGERS,
    ("POST", "/admin/segments/{segment_id}/delete"): MANAGERS,
    ("GET", "/admin/broadcasts/{broadcast_id}/proof.json"): PROOF,
    ("GET", "/admin/broadcasts/{broadcast_id}/export.csv"): PROOF,
    ("GET", "/admin/settings/pressure"): MANAGERS,
    ("POST", "/admin/settings/pressure"): MANAGERS,
    ("GET", "/api/v1/segments"): ALL,
    ("POST", "/api/v1/segments"): MANAGERS,
    ("POST", "/api/v1/segments/preview"): ALL,
    ("GET", "/api/v1/segments/{segment_id}"): ALL,
    ("PUT", "/api/v1/segments/{segment_id}"): MANAGERS,
    ("DELETE", "/api/v1/segments/{segment_id}"): MANAGERS,
    ("GET", "/api/v1/broadcasts/{broadcast_id}/proof"): PROOF,
    ("GET", "/api/v1/contact-pressure"): ALL,
    ("PUT", "/api/v1/contact-pressure"): MANAGERS,
}

# Extra request data some routes need to get past input validation to the permission check.
QUERY = {
    ("GET", "/admin/inbox/events"): "?timeout=0",
    ("GET", "/admin/privacy/contact"): "?cid={contact_id}",
    ("GET", "/api/v1/consent-texts/{locale}/diff"): "?from=1&to=2",
    ("GET", "/api/v1/contact-export"): "?fields=id",
}
FILES = {("POST", "/admin/privacy/import"): {"file": ("contacts.csv", b"phone\n", "text/csv")}}
JSON_BODY: dict[tuple[str, str], Any] = {
    ("POST", "/api/v1/contacts/{contact_id}/withdraw"): {},
    ("PATCH", "/api/v1/webhook-endpoints/{endpoint_id}"): {"active": True},
    ("POST", "/api/v1/conversations/{conversation_id}/reply"): {"text": "Hallo"},
    ("POST", "/api/v1/conversations/{conversation_id}/assign"): {},
    ("POST", "/api/v1/conversations/{conversation_id}/state"): {"state": "pending"},
    ("POST", "/api/v1/conversations/{conversation_id}/notes"): {"text": "n"},
    ("PUT", "/api/v1/conversations/{conversation_id}/labels"): {"labels": ["x"]},
    ("POST", "/api/v1/broadcasts"): {"name": "x", "topic": "angebote", "text": "hi"},
    ("POST", "/api/v1/broadcasts/{broadcast_id}/schedule"): {},
    ("POST", "/api/v1/broadcasts/{broadcast_id}/pause"): {},
    ("POST", "/api/v1/broadcasts/{broadcast_id}/resume"): {},
    ("POST", "/api/v1/broadcasts/{broadcast_id}/cancel"): {},
    ("POST", "/api/v1/privacy-requests"): {"kind": "access", "channel": "email"},
    ("POST", "/api/v1/privacy-requests/{request_id}/complete"): {},
    ("POST", "/api/v1/contacts"): {"channel_account_id": 999999, "address": "+4915100008"},
    ("PATCH", "/api/v1/contacts/{contact_id}"): {"locale": "en"},
    ("POST", "/api/v1/contacts/{contact_id}/erase"): {},
    ("POST", "/api/v1/optins"): {"topics": ["angebote"], "channel_account_id": 999999},
    ("POST", "/api/v1/webhook-endpoints"): {"url": "https://crm.example.com/h", "events": ["optin.expired"]},
    ("PUT", "/api/v1/contacts/{contact_id}/name"): {"name": "Erika M."},
    ("POST", "/api/v1/messages"): {"contact_id": "{contact_id}", "purpose": "service", "text": "Hallo"},
    # an unknown account: allowed roles get 404 after the permission check
    ("POST", "/api/v1/contacts/import"): {
        "channel_account_id": 999999,
        "contacts": [{"address": "+4915100009"}],
    },
    ("PUT", "/api/v1/company"): {},
    ("POST", "/api/v1/topics"): {"slug": "matrix", "names": {"de": "Matrix"}},
    ("PATCH", "/api/v1/topics/{slug}"): {},
    ("PUT", "/api/v1/topics-order"): {"slugs": []},
    ("POST", "/api/v1/consent-texts/{locale}"): {"text": "Yes, please."},
    ("POST", "/api/v1/reconsent"): {"locale": "en"},
    ("POST", "/api/v1/contact-labels"): {"name": "Matrix"},
    ("PATCH", "/api/v1/contact-labels/{label_id}"): {"name": "Matrix 2"},
    ("POST", "/api/v1/contact-attributes"): {
        "key": "matrix",
        "type": "text",
        "purpose": "Matrix",
        "retention": "until_erasure",
    },
    ("PATCH", "/api/v1/contact-attributes/{attribute_id}"): {},
    ("PUT", "/api/v1/contacts/{contact_id}/data"): {},
    ("PUT", "/api/v1/budget"): {"amount": None},
    ("PUT", "/api/v1/broadcasts/{broadcast_id}/budget"): {"amount": None},
    ("POST", "/api/v1/segments"): {"name": "matrix", "definition": {}},
    ("POST", "/api/v1/segments/preview"): {"topic": "angebote"},
    ("PUT", "/api/v1/segments/{segment_id}"): {"name": "matrix", "definition": {}},
    ("PUT", "/api/v1/contact-pressure"): {},
}


def whatsapp_template(ctx: Konsent, s: Any, crew: Crew) -> int:
    """A WhatsApp account of the crew's tenant with one approved template; its id."""
    from konsent.domain.templates import TemplateSpec
    from konsent.flows.organisation import tenants
    from konsent.flows.outbound import templates
    from konsent.store.tables import Tenant

    tenant = s.get(Tenant, crew.tenant_id)
    acc = tenants.create_channel_account(
        ctx, s, tenant, "whatsapp", "WhatsApp", provider_ref="matrix",
        secrets_={"access_token": "t", "app_secret": "a", "verify_token": "v"},
    )  # fmt: skip
    spec = TemplateSpec("rueckfrage", "de", "UTILITY", "APPROVED", "Hallo {{1}}, noch Fragen?")
    return templates.save_template(ctx, s, crew.caller("admin"), acc.id, spec).id


def app_routes(app: Any) -> set[tuple[str, str]]:
    """Every (method, path) the app serves under /admin and /api/v1 (any FastAPI routing shape)."""
    found: set[tuple[str, str]] = set()

    def walk(routes: Any) -> None:
        for r in routes:
            if hasattr(r, "effective_route_contexts"):
                contexts = [(c.path, c.methods) for c in r.effective_route_contexts()]
            elif getattr(r, "methods", None):
                contexts = [(r.path, r.methods)]
            else:
                walk(getattr(r, "routes", []) or [])
                continue
            for path, methods in contexts:
                if path.startswith(("/admin", "/api/v1")):
                    found.update((m, path) for m in methods or () if m != "HEAD")

    walk(app.routes)
    return found


# Routes whose success itself sends the browser to the sign-in page.
SUCCESS_GOES_TO_LOGIN = {("POST", "/admin/logout")}


def _denied(resp: Any, route: tuple[str, str] | None = None) -> bool:
    if resp.status_code in (401, 403):
        return True
    if route in SUCCESS_GOES_TO_LOGIN:
        return False
    return resp.status_code in (302, 303, 307) and resp.headers.get("location", "").startswith("/admin/login")


def test_every_route_has_an_expectation(app: Any) -> None:
    """S3: a new route without a line in MATRIX fails here."""
    routes = app_routes(app)
    missing = sorted(routes - set(MATRIX))
    stale = sorted(set(MATRIX) - routes)
    assert not missing, f"add these routes to MATRIX in {__file__}: {missing}"
    assert not stale, f"these MATRIX entries have no route any more: {stale}"


def test_role_route_matrix(ctx: Konsent, crew: Crew, app: Any, client: Any) -> None:
    """S3: owner, admin, agent (own teams), dpo and viewer are allowed or denied exactly as MATRIX says."""
    say(ctx, crew, "+491701111111", "Hallo")
    say(ctx, crew, "+491701111111", "Kaufen")  # routed to sales, agent Anna's team
    conv = conversation_of(ctx, crew, "+491701111111")
    with ctx.db.write() as s:
        reply = conversation.reply(ctx, s, crew.caller("admin"), conv.id, "Hallo")
        saved = canned.save_canned_reply(s, crew.caller("admin"), "hi", "Hi", "Hallo {name}")
        tpl = whatsapp_template(ctx, s, crew)
        values = {
            "contact_id": str(conv.contact_id),
            "message_id": str(reply.id),
            "cid": str(conv.id),
            "tid": str(crew.sales),
            "rid": str(saved.id),
            "template_id": str(tpl),
            "fid": str(s.scalars(select(BotFlow.id)).first()),
            "locale": "en",
            "request_id": "999999",  # permission is checked before the lookup
            "name": "notice-de.md",
            "broadcast_id": "999999",
            "action": "pause",
            "account_id": "999999",  # permission is checked before the lookup
            "slug": "nosuch",  # likewise
            "version": "1",
            "campaign_id": "999999",
            "endpoint_id": "999999",  # permission is checked before the lookup
            "conversation_id": str(conv.id),
            "delivery_id": "999999",
            "user_id": "999999",
            "token_id": "999999",
            "token": "not-a-link",
            "segment_id": "999999",  # permission is checked before the lookup
            "file_id": "999999",  # the conversation's scope is checked before the file's lookup
            "label_id": "999999",  # permission is checked before the lookup
            "attribute_id": "999999",
        }
        assert s.scalars(select(Message.id)).first() is not None
    who = {"owner": "owner", "admin": "admin", "agent": "anna", "dpo": "dpo", "viewer": "viewer"}
    mismatches = []
    for (method, template), expected in sorted(MATRIX.items()):
        if (method, template) not in app_routes(app):
            continue  # reported by test_every_route_has_an_expectation
        path = (template + QUERY.get((method, template), "")).format(**values)
        body = JSON_BODY.get((method, template))
        if body is not None:
            body = {k: (int(values["contact_id"]) if v == "{contact_id}" else v) for k, v in body.items()}
        client.cookies.clear()
        anon = client.request(method, path, follow_redirects=False, json=body)
        if expected == PUBLIC:
            if method == "GET" and _denied(anon):
                mismatches.append(f"{method} {template}: anonymous denied, expected public")
            continue
        if not _denied(anon):
            mismatches.append(f"{method} {template}: anonymous got {anon.status_code}")
        for role in ROLES:
            client.cookies.clear()
            csrf = sign_in(client, ctx, crew.users[who[role]])
            kwargs: dict[str, Any] = {"follow_redirects": False, "headers": {CSRF_HEADER: csrf}}
            if body is not None:
                kwargs["json"] = body
            elif method == "POST":
                kwargs["data"] = {"csrf_token": csrf}
                if (method, template) in FILES:
                    kwargs["files"] = FILES[(method, template)]
            resp = client.request(method, path, **kwargs)
            allowed = not _denied(resp, (method, template))
            if allowed != (role in expected):
                mismatches.append(f"{method} {template} as {role}: got {resp.status_code}")
    assert mismatches == []


# --- agent scope (S3, #13 finding 4) ---------------------------------------------------------------
# For every route an agent may use: how it reaches contacts. A new route an agent may use fails
# test_every_agent_route_has_a_scope_rule until it has a line here.
CONTACT = "contact"  # the path names a contact: out of the agent's teams → 404
MESSAGE = "message"  # the path names a message: its contact out of the agent's teams → 404
BODY_CONTACT = "body-contact"  # the JSON body names a contact → 404
CONVERSATION = "conversation"  # the path names a conversation: another team's → 404 (flows.inbox)
LIST = "list"  # lists contacts or conversations: another team's never appear
NONE = "none"  # no contact data at all

SCOPE: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/topics"): NONE,
    ("GET", "/api/v1/broadcasts"): NONE,
    ("GET", "/api/v1/broadcasts/{broadcast_id}"): NONE,
    # segments: definitions and counts, no contact data for agents (sample names need all teams)
    ("GET", "/admin/segments"): NONE,
    ("POST", "/admin/segments/preview"): NONE,
    ("GET", "/admin/segments/{segment_id}"): NONE,
    ("GET", "/api/v1/segments"): NONE,
    ("POST", "/api/v1/segments/preview"): NONE,
    ("GET", "/api/v1/segments/{segment_id}"): NONE,
    ("GET", "/api/v1/contact-pressure"): NONE,
    ("GET", "/api/v1/templates"): NONE,
    ("GET", "/api/v1/webhook-event-types"): NONE,
    ("POST", "/api/v1/optins"): NONE,  # starts a pending opt-in from a shop: no existing contact
    ("GET", "/api/v1/contacts/{contact_id}/consents"): CONTACT,
    ("PUT", "/api/v1/contacts/{contact_id}/name"): CONTACT,
    ("POST", "/admin/contacts/{contact_id}/name"): CONTACT,
    ("GET", "/admin/me"): NONE,  # the staff member's own profile
    ("POST", "/admin/me"): NONE,
    ("PATCH", "/api/v1/contacts/{contact_id}"): CONTACT,
    ("GET", "/api/v1/conversations"): LIST,
    ("GET", "/api/v1/conversations/{conversation_id}"): CONVERSATION,
    ("POST", "/api/v1/conversations/{conversation_id}/assign"): CONVERSATION,
    ("POST", "/api/v1/conversations/{conversation_id}/notes"): CONVERSATION,
    ("POST", "/api/v1/conversations/{conversation_id}/reply"): CONVERSATION,
    ("POST", "/api/v1/conversations/{conversation_id}/state"): CONVERSATION,
    ("PUT", "/api/v1/conversations/{conversation_id}/labels"): CONVERSATION,
    ("GET", "/api/v1/topics/{slug}"): NONE,
    ("GET", "/api/v1/consent-texts/{locale}"): NONE,
    ("GET", "/api/v1/consent-texts/{locale}/diff"): NONE,
    ("GET", "/api/v1/consent-texts/{locale}/{version}"): NONE,
    ("GET", "/api/v1/channels"): NONE,
    ("GET", "/api/v1/contacts"): LIST,
    ("GET", "/api/v1/contacts/{contact_id}"): CONTACT,
    ("GET", "/api/v1/contacts/{contact_id}/messages"): CONTACT,
    ("POST", "/api/v1/contacts/{contact_id}/withdraw"): CONTACT,
    ("POST", "/api/v1/messages"): BODY_CONTACT,
    ("GET", "/api/v1/messages/{message_id}"): MESSAGE,
    ("GET", "/api/v1/messages/{message_id}/media"): MESSAGE,
    ("POST", "/admin/logout"): NONE,
    ("GET", "/admin/password"): NONE,
    ("POST", "/admin/password"): NONE,
    ("GET", "/admin"): NONE,
    ("GET", "/admin/contacts"): LIST,
    ("GET", "/admin/contacts/{contact_id}"): CONTACT,
    ("POST", "/admin/contacts/{contact_id}/reply"): CONTACT,
    ("POST", "/admin/contacts/{contact_id}/withdraw"): CONTACT,
    ("GET", "/admin/inbox/events"): LIST,
    ("GET", "/admin/inbox"): LIST,
    ("GET", "/admin/inbox/rows"): LIST,
    ("GET", "/admin/inbox/{cid}"): CONVERSATION,
    ("GET", "/admin/inbox/{cid}/thread"): CONVERSATION,
    ("POST", "/admin/inbox/{cid}/reply"): CONVERSATION,
    ("POST", "/admin/inbox/{cid}/reply-interactive"): CONVERSATION,
    ("POST", "/admin/inbox/{cid}/template"): CONVERSATION,
    ("POST", "/admin/inbox/{cid}/assign"): CONVERSATION,
    ("POST", "/admin/inbox/{cid}/state"): CONVERSATION,
    ("POST", "/admin/inbox/{cid}/snooze"): CONVERSATION,
    ("POST", "/admin/inbox/{cid}/note"): CONVERSATION,
    ("POST", "/admin/inbox/{cid}/labels"): CONVERSATION,
    ("POST", "/admin/inbox/{cid}/takeover"): CONVERSATION,
    ("POST", "/admin/inbox/{cid}/withdraw-data"): CONVERSATION,
    ("POST", "/admin/inbox/{cid}/panel"): CONVERSATION,
    ("POST", "/admin/inbox/{cid}/typing"): CONVERSATION,
    ("GET", "/admin/inbox/{cid}/files/{file_id}"): CONVERSATION,
    ("GET", "/admin/templates"): NONE,
    ("GET", "/admin/templates/{template_id}"): NONE,
    ("GET", "/admin/security/totp"): NONE,
    ("POST", "/admin/security/totp"): NONE,
    ("GET", "/admin/privacy/contact"): CONTACT,  # a redirect to the contact's rights page, checked there
    ("GET", "/admin/privacy/contacts/{contact_id}"): CONTACT,
    ("POST", "/admin/privacy/contacts/{contact_id}/export"): CONTACT,
    ("POST", "/admin/privacy/contacts/{contact_id}/erase"): CONTACT,
    ("POST", "/admin/privacy/contacts/{contact_id}/rectify"): CONTACT,
    ("POST", "/admin/privacy/contacts/{contact_id}/object"): CONTACT,
    ("GET", "/admin/broadcasts"): NONE,
    ("GET", "/admin/broadcasts/{broadcast_id}"): NONE,
    ("GET", "/admin/broadcasts/{broadcast_id}/progress.json"): NONE,
    ("GET", "/admin/broadcasts/{broadcast_id}/funnel.svg"): NONE,
    ("GET", "/api/v1/contact-labels"): NONE,  # the tenant's vocabulary, no contact
    ("GET", "/api/v1/contact-attributes"): NONE,
    ("GET", "/api/v1/broadcasts/{broadcast_id}/costs"): NONE,
    ("GET", "/api/v1/contact-search"): LIST,
    ("GET", "/api/v1/contacts/{contact_id}/data"): CONTACT,
    ("PUT", "/api/v1/contacts/{contact_id}/data"): CONTACT,
    ("POST", "/admin/contacts/{contact_id}/data"): CONTACT,
}


def _agent_routes(app: Any) -> set[tuple[str, str]]:
    return {r for r in app_routes(app) if MATRIX.get(r) != PUBLIC and "agent" in MATRIX.get(r, frozenset())}


def test_every_agent_route_has_a_scope_rule(app: Any) -> None:
    """S3: each route an agent may use says how it is limited to the agent's teams."""
    routes = _agent_routes(app)
    assert not sorted(routes - set(SCOPE)), f"add these routes to SCOPE in {__file__}"
    assert not sorted(set(SCOPE) - routes), "these SCOPE entries are not agent routes any more"


def _outsiders(ctx: Konsent, crew: Crew) -> dict[str, int]:
    """A contact who wrote only to the support team (not Anna's), with a message; a contact
    imported without any conversation; one whose conversation no team has yet."""
    from konsent.flows.contacts import get_or_create_contact
    from konsent.store.tables import ChannelAccount, Conversation

    say(ctx, crew, "+491702222222", "Mein Drucker ist kaputt", name="Otto Outside")
    conv = conversation_of(ctx, crew, "+491702222222")
    with ctx.db.write() as s:
        s.get(Conversation, conv.id).team_id = crew.support
        msg = s.scalars(select(Message.id).where(Message.contact_id == conv.contact_id)).first()
        acc = s.get(ChannelAccount, crew.account_id)
        imported, _, _ = get_or_create_contact(ctx, s, acc, "+491703333333", name="Ina Imported")
    say(ctx, crew, "+491704444444", "Hallo")  # no team yet, and agents may not see unrouted ones
    unrouted = conversation_of(ctx, crew, "+491704444444")
    assert unrouted.team_id is None
    return {
        "contact": conv.contact_id,
        "message": msg,
        "conversation": conv.id,
        "imported": imported.id,
        "unrouted": unrouted.contact_id,
        "unrouted_conversation": unrouted.id,
    }


def test_agents_reach_no_contact_outside_their_teams_on_any_route(
    ctx: Konsent, crew: Crew, app: Any, client: Any
):
    """S3: agent Anna (sales) gets 404 for a support-team contact, its message and conversation, and
    for an imported contact without conversation, on every route of SCOPE; lists leave them out.
    An admin reaches the same contact (the rule limits agents, not the routes)."""
    say(ctx, crew, "+491701111111", "Hallo")
    say(ctx, crew, "+491701111111", "Kaufen")  # routed to sales: Anna's own contact
    out = _outsiders(ctx, crew)
    mismatches = []
    for role in ("anna", "admin"):
        client.cookies.clear()
        csrf = sign_in(client, ctx, crew.users[role])
        for (method, template), kind in sorted(SCOPE.items()):
            if kind in (NONE, LIST):
                continue
            if kind in (CONTACT, BODY_CONTACT):
                targets = [out["contact"], out["imported"], out["unrouted"]]
            elif kind == CONVERSATION:
                targets = [out["conversation"], out["unrouted_conversation"]]
            else:
                targets = [out[kind]]
            for target in targets:
                values = {
                    "contact_id": target,
                    "message_id": target,
                    "cid": target,
                    "conversation_id": target,
                    "file_id": "1",
                }
                path = (template + QUERY.get((method, template), "")).format(**values)
                kwargs: dict[str, Any] = {"follow_redirects": True, "headers": {CSRF_HEADER: csrf}}
                if kind == BODY_CONTACT or (method != "GET" and template.startswith("/api/")):
                    body = dict(JSON_BODY.get((method, template), {}))
                    kwargs["json"] = {k: (target if v == "{contact_id}" else v) for k, v in body.items()}
                elif method == "POST":
                    kwargs["data"] = {"csrf_token": csrf}
                resp = client.request(method, path, **kwargs)
                hidden = resp.status_code == 404
                if role == "anna" and not hidden:
                    mismatches.append(f"{method} {template} as agent for {target}: {resp.status_code}")
                no_media = template.endswith("/media")  # 404 "no attachment" for a text message
                if (
                    role == "admin"
                    and hidden
                    and not (kind == CONVERSATION or target == out["imported"] or no_media)
                ):
                    mismatches.append(f"{method} {template} as admin for {target}: 404")
    client.cookies.clear()
    sign_in(client, ctx, crew.users["anna"])
    who = (out["contact"], out["imported"], out["unrouted"])
    convs = (out["conversation"], out["unrouted_conversation"])
    lists = {
        "/api/v1/contacts": lambda r: {c["id"] for c in r.json()} & set(who),
        "/api/v1/conversations": lambda r: {c["id"] for c in r.json()} & set(convs),
        "/admin/contacts": lambda r: [i for i in who if f'/admin/contacts/{i}"' in r.text],
        "/admin/inbox": lambda r: [c for c in convs if f'/admin/inbox/{c}"' in r.text],
        "/admin/inbox/rows": lambda r: [c for c in convs if f'/admin/inbox/{c}"' in r.text],
    }
    own = conversation_of(ctx, crew, "+491701111111").id
    events = client.get("/admin/inbox/events?timeout=3&since=0").text
    assert f'"conversation_id": {own}' in events  # the stream does show Anna's own conversation
    if [c for c in convs if f'"conversation_id": {c}' in events]:
        mismatches.append("GET /admin/inbox/events as agent streams an outsider's conversation")
    for path, leak in lists.items():
        resp = client.get(path)
        assert resp.status_code == 200, path
        if leak(resp):
            mismatches.append(f"GET {path} as agent lists an outsider")
    assert mismatches == []
