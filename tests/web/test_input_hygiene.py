"""Input hygiene at every door (#13 finding 8): NUL, lone surrogates, deep JSON, huge integers → 4xx.

On PostgreSQL a NUL byte in a text parameter is a database error; these requests used to
answer 500, and the traceback logged the typed e-mail address. Each door below must answer
with a client error, and nothing personal may reach the log.
"""

from __future__ import annotations

import logging

import pytest

from konsent.domain.events import InboundMessage, StatusUpdate
from konsent.domain.inputs import InputProblem, checked_event, json_depth, json_problem, loads_json
from konsent.logs import RedactingFilter
from tests.flows.support import api_token, auth
from tests.web.test_admin_auth import login

DEEP = b'{"a":' * 1000 + b"1" + b"}" * 1000
EMAIL = "victim\x00@demo.example"


def _no_server_error(r) -> None:  # type: ignore[no-untyped-def]
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])


def test_nul_in_the_login_email_is_a_client_error_and_the_email_is_not_logged(client, demo, caplog) -> None:  # type: ignore[no-untyped-def]
    """The PostgreSQL case of the finding: 500 and the address in the traceback."""
    caplog.set_level(logging.DEBUG)
    r = login(client, EMAIL, "whatever")
    _no_server_error(r)
    logged = " ".join(rec.getMessage() + (rec.exc_text or "") for rec in caplog.records)
    assert "victim" not in logged and "demo.example" not in logged


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/api/public/v1/widget/%00/config", {}),
        ("GET", "/api/public/v1/widget/demo%ED%A0%80/config", {}),
        ("POST", "/api/public/v1/widget/demo/optin", {"json": {"channel_account_id": 1, "topics": ["\x00"]}}),
        (
            "POST",
            "/api/public/v1/widget/demo/optin",
            {"content": b'{"channel_account_id": 1, "topics": ["\\ud800"]}'},
        ),
        ("POST", "/api/public/v1/widget/demo/optin", {"json": {"channel_account_id": 2**63, "topics": []}}),
        ("POST", "/api/public/v1/widget/demo/optin", {"content": DEEP}),
        ("POST", "/simulator/api/ack", {"json": {"account": 1, "ids": ["\x00"], "status": "read"}}),
        ("POST", "/simulator/api/ack", {"content": DEEP}),
        ("GET", "/webhooks/%00", {}),
        ("POST", "/webhooks/%00", {"content": b"{}"}),
        ("GET", "/privacy/%00", {}),
        ("GET", "/admin/login?next=%00", {}),
    ],
)
def test_public_doors_answer_bad_characters_and_shapes_with_a_client_error(
    client, demo, method, path, kwargs
) -> None:  # type: ignore[no-untyped-def]
    if "content" in kwargs:
        kwargs = {**kwargs, "headers": {"content-type": "application/json"}}
    _no_server_error(client.request(method, path, **kwargs))


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/api/v1/contacts?offset=9223372036854775808", {}),
        ("GET", "/api/v1/contacts?limit=99999999999999999999", {}),
        ("GET", "/api/v1/contacts/99999999999999999999", {}),
        # more digits than Python converts (4,300): found by schemathesis on /contact-export
        ("GET", "/api/v1/contact-export?fields=" + "0" * 5000, {}),
        ("GET", "/api/v1/contacts?limit=" + "9" * 5000, {}),
        ("GET", "/api/v1/contacts/" + "1" * 5000, {}),
        ("POST", "/api/v1/contacts/import", {"content": b'{"contacts": [], "topic": "\\ud800"}'}),
        ("POST", "/api/v1/messages", {"json": {"contact_id": 1, "purpose": "service", "text": "a\x00b"}}),
        ("POST", "/api/v1/messages", {"content": DEEP}),
        ("POST", "/api/v1/messages", {"content": b'{"contact_id": 1e999, "purpose": "service"}'}),
    ],
)
def test_rest_queries_and_bodies_with_bad_values_are_client_errors(
    ctx, client, demo, method, path, kwargs
) -> None:  # type: ignore[no-untyped-def]
    headers = auth(api_token(ctx))
    if "content" in kwargs:
        headers["content-type"] = "application/json"
    _no_server_error(client.request(method, path, headers=headers, **kwargs))


def test_integers_of_thousands_of_digits_are_judged_by_their_value_not_converted() -> None:
    from konsent.web.hygiene import long_int_out_of_range

    assert long_int_out_of_range("9" * 5000) and long_int_out_of_range("-" + "9" * 5000)
    assert not long_int_out_of_range("0" * 4990 + "42")  # 42, however it is padded
    assert long_int_out_of_range("9223372036854775808") and not long_int_out_of_range("9223372036854775807")


def test_the_refusal_names_the_problem(client, demo) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/public/v1/widget/demo/optin", json={"channel_account_id": 1, "topics": ["\x00"]})
    assert r.status_code == 422
    assert r.json()["code"] == "invalid_input" and r.json()["errors"][0]["message"] == "nul"


# --- the rules themselves ---------------------------------------------------------------------------


def test_json_depth_is_measured_without_parsing_and_strings_do_not_count() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[[{{{{"}]}') == 3
    assert json_depth(DEEP) == 1000
    assert json_problem(DEEP) == "too_deep"
    with pytest.raises(ValueError):
        loads_json(DEEP)
    assert loads_json(b'{"a": [1, 2]}') == {"a": [1, 2]}


def test_json_bodies_with_nul_lone_surrogates_or_huge_integers_are_named() -> None:
    assert json_problem(b'{"a": "x\\u0000"}') == "nul"
    assert json_problem(b'{"a": "\\ud800"}') == "surrogate"
    assert json_problem(b'{"a": "\\ud83d\\ude00"}') == ""  # a valid pair (an emoji) is fine
    assert json_problem(b'{"a": 9223372036854775808}') == "integer_out_of_range"
    assert json_problem(b'{"a": 123456789}') == ""
    assert json_problem(b'{"a": 9223372036854775807}') == ""  # the largest BIGINT is fine
    assert json_problem(b'{"text": "Ref: 12345678901234567890123"}') == ""  # digits in text are text


def test_webhook_events_with_unstorable_ids_are_refused_and_free_text_is_cleaned() -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    with pytest.raises(InputProblem):
        checked_event(StatusUpdate("wamid\x00", "read", now))
    with pytest.raises(InputProblem):
        checked_event(StatusUpdate("x" * 201, "read", now))
    with pytest.raises(InputProblem):
        checked_event(InboundMessage("id", "123", now, payload={"a": 1}))  # type: ignore[arg-type]
    ev = checked_event(InboundMessage("id", "123", now, text="hi\x00 \ud800", profile_name="A\x00"))
    assert ev.text == "hi ?" and ev.profile_name == "A"


def test_tracebacks_are_redacted_like_messages() -> None:
    try:
        raise ValueError("no user alex@example.org with +49 170 1234567")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    RedactingFilter().filter(record)
    assert "alex@example.org" not in (record.exc_text or "") and "1234567" not in (record.exc_text or "")


def test_database_errors_never_quote_sql_parameters(ctx) -> None:  # type: ignore[no-untyped-def]
    """A failing statement's message (and so any traceback) leaves the parameters out."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    with pytest.raises(SQLAlchemyError) as caught, ctx.db.engine.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table WHERE a = :x"), {"x": "alex@example.org"})
    assert "alex@example.org" not in str(caught.value)
