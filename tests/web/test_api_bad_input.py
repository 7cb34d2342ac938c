"""REST API bad input: a clear 4xx, and nothing stored (issue 2 "Bad input", M4, C5)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from konsent.store.tables import AuditEntry, Message, OutboxRow
from tests.flows.support import api_token, auth, contact_of
from tests.helpers import subscribe

PHONE = "+4915112345678"


@pytest.fixture
def subscriber(ctx, demo) -> int:
    subscribe(ctx, PHONE, ["angebote"])
    return contact_of(ctx, PHONE).id


def _stored(ctx) -> tuple[int, int]:
    with ctx.db.read() as s:
        out = s.scalar(select(func.count()).select_from(Message).where(Message.direction == "out"))
        queued = s.scalar(select(func.count()).select_from(OutboxRow))
        return int(out or 0), int(queued or 0)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"purpose": "marketing", "text": "Hallo"}, None),
        ({"purpose": "newsletter:", "text": "Hallo"}, None),
        ({"purpose": "newsletter:Angebote", "text": "Hallo"}, None),
        ({"purpose": "newsletter:wetter", "text": "Hallo"}, None),  # no such topic
        ({"purpose": "x" * 200, "text": "Hallo"}, "purpose"),
        ({"purpose": "service", "text": ""}, "text"),
        ({"purpose": "service", "text": " \n\t "}, "text"),
        ({"purpose": "service", "text": "x" * 5000}, "text"),
        ({"purpose": "service"}, "text"),
        ({"text": "Hallo"}, "purpose"),
        ({"purpose": "service", "text": "Hallo", "contact_id": "eins"}, "contact_id"),
    ],
)
def test_send_with_invalid_fields_is_422_with_a_reason_and_stores_nothing(
    ctx, client, subscriber, body, field
):
    before = _stored(ctx)
    payload = {"contact_id": subscriber, **body}
    r = client.post("/api/v1/messages", json=payload, headers=auth(api_token(ctx)))
    assert r.status_code == 422, r.text
    data = r.json()
    assert data["code"] == "invalid_input" and data["message"]
    if field:
        assert field in {e["field"] for e in data["detail"]}
    assert _stored(ctx) == before


def test_unknown_purpose_names_the_allowed_forms(ctx, client, subscriber):
    r = client.post(
        "/api/v1/messages",
        json={"contact_id": subscriber, "purpose": "marketing", "text": "Hallo"},
        headers=auth(api_token(ctx)),
    )
    assert r.status_code == 422 and "newsletter:<topic>" in r.json()["message"]


def test_unknown_topic_is_422_not_a_missing_consent(ctx, client, subscriber):
    r = client.post(
        "/api/v1/messages",
        json={"contact_id": subscriber, "purpose": "newsletter:wetter", "text": "Hallo"},
        headers=auth(api_token(ctx)),
    )
    assert r.status_code == 422 and "wetter" in r.json()["message"]


@pytest.mark.parametrize(
    ("content", "ctype"),
    [
        (b"purpose=service&text=hi", "application/x-www-form-urlencoded"),
        (b"{not json", "application/json"),
        (b'["a", "list"]', "application/json"),
        (b"", "application/json"),
    ],
)
def test_non_json_body_is_422_and_stores_nothing(ctx, client, subscriber, content, ctype):
    before = _stored(ctx)
    r = client.post(
        "/api/v1/messages", content=content, headers={**auth(api_token(ctx)), "content-type": ctype}
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_input"
    assert _stored(ctx) == before


def test_body_that_is_not_utf8_is_a_client_error(ctx, client, subscriber):
    """FastAPI answers an undecodable body with its own 400 before validation; still nothing stored."""
    before = _stored(ctx)
    r = client.post(
        "/api/v1/messages",
        content='{"text": "\u00fc"}'.encode("latin-1"),
        headers={**auth(api_token(ctx)), "content-type": "application/json"},
    )
    assert r.status_code in (400, 422), r.text
    assert _stored(ctx) == before


def test_unknown_contact_is_404(ctx, client, subscriber):
    r = client.post(
        "/api/v1/messages",
        json={"contact_id": subscriber + 999, "purpose": "service", "text": "Hallo"},
        headers=auth(api_token(ctx)),
    )
    assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_oversized_body_is_413_before_anything_is_read(ctx, subscriber):
    """KONSENT_MAX_BODY_BYTES: a body over the limit gets 413, declared or streamed."""
    from konsent.web.app import create_app

    ctx.settings.max_body_bytes = 2000
    before = _stored(ctx)
    with TestClient(create_app(ctx)) as c:
        headers = auth(api_token(ctx))
        big = {"contact_id": subscriber, "purpose": "service", "text": "x" * 3000}
        r = c.post("/api/v1/messages", json=big, headers=headers)
        assert r.status_code == 413 and r.json()["code"] == "too_large"

        def chunks():
            yield b'{"contact_id": 1, "purpose": "service", "text": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}'

        r = c.post(
            "/api/v1/messages", content=chunks(), headers={**headers, "content-type": "application/json"}
        )
        assert r.status_code == 413
        ok = c.post(
            "/api/v1/messages",
            json={"contact_id": subscriber, "purpose": "service", "text": "ok"},
            headers=headers,
        )
        assert ok.status_code == 202
    assert _stored(ctx) == (before[0] + 1, before[1] + 1)


def test_withdraw_with_a_service_or_garbage_purpose_is_422(ctx, client, subscriber):
    for purposes in (["service"], ["quatsch"]):
        r = client.post(
            f"/api/v1/contacts/{subscriber}/withdraw",
            json={"purposes": purposes},
            headers=auth(api_token(ctx)),
        )
        assert r.status_code == 422, r.text
    with ctx.db.read() as s:
        assert (
            s.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "consent.withdraw")
            )
            == 0
        )


@pytest.mark.parametrize(
    "query", ["limit=-1", "cursor=bm90LWEtY3Vyc29y", "limit=0", "limit=100000", "limit=abc"]
)
def test_contact_list_paging_out_of_range_is_422(ctx, client, subscriber, query):
    r = client.get(f"/api/v1/contacts?{query}", headers=auth(api_token(ctx)))
    assert r.status_code == 422, r.text


def test_contact_list_pages_by_cursor_until_the_last_page_has_no_next(ctx, client, subscriber):
    r = client.get("/api/v1/contacts?limit=1", headers=auth(api_token(ctx)))
    assert r.status_code == 200 and [c["id"] for c in r.json()] == [subscriber]
    nxt = r.headers["x-next-cursor"]
    assert 'rel="next"' in r.headers["link"]
    last = client.get(f"/api/v1/contacts?limit=1&cursor={nxt}", headers=auth(api_token(ctx)))
    assert last.json() == [] and "x-next-cursor" not in last.headers


@pytest.mark.parametrize("big", [2**63, 10**30, -(2**63) - 1])
def test_ids_beyond_the_database_range_are_a_client_error(ctx, client, subscriber, big):
    """An id no row can have is answered like any unknown id, not with a database error."""
    token = api_token(ctx)
    for url in (f"/api/v1/contacts/{big}", f"/api/v1/messages/{big}", f"/api/v1/contacts/{big}/proof"):
        assert client.get(url, headers=auth(token)).status_code in (404, 422), url
    r = client.post(
        "/api/v1/messages",
        json={"contact_id": big, "purpose": "service", "text": "Hallo"},
        headers=auth(token),
    )
    assert r.status_code in (404, 422)
