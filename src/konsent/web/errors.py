"""How domain errors look on the web: the HTTP status for each error code, and the message in the
reader's language. The domain knows codes and msgids, never HTTP (#11, STYLE "errors a person can act on")."""

from __future__ import annotations

from typing import Any, Protocol

from konsent.i18n import t

# Error code → HTTP status. One table, read by the API, the admin pages and the public pages.
STATUS_BY_CODE: dict[str, int] = {
    "domain_error": 400,
    "invalid_input": 422,
    "idempotency_key_reused": 422,
    "rate_limited": 429,
    "invalid_template": 422,
    "invalid_template_import": 422,
    "invalid_price_table": 422,
    "invalid_budget": 422,
    "unauthenticated": 401,
    "forbidden": 403,
    "csrf_failed": 403,
    "not_found": 404,
    "no_legal_basis": 409,
    "window_closed": 409,
    "conflict": 409,
    "suppressed": 409,
    "gone": 410,
    "proof_required": 403,  # a self-service action before the code from the contact's messenger
    "proof_refused": 403,
    "file_too_large": 413,
    "file_type_refused": 415,
}


class Refusal(Protocol):
    """A domain error as web code reads it: a stable code, an English msgid and its parameters."""

    code: str
    message: str
    params: dict[str, Any]


def status_of(exc: Refusal) -> int:
    """The HTTP status for a domain error (400 for a code the table does not know)."""
    return STATUS_BY_CODE.get(exc.code, 400)


def message_of(exc: Refusal, locale: str | None) -> str:
    """The error's message in `locale`; parameters that are msgids themselves are translated too."""
    params = {k: (t(locale, v) if isinstance(v, str) and v else v) for k, v in exc.params.items()}
    try:
        return t(locale, exc.message, **params)
    except (KeyError, IndexError, ValueError):  # a translation whose placeholders do not fit
        return str(exc)


def as_json(exc: Refusal, locale: str | None) -> dict[str, Any]:
    """The JSON body of an error answer: code, message in the reader's language, parameters."""
    return {
        **{k: str(v) for k, v in exc.params.items()},
        "code": exc.code,
        "message": message_of(exc, locale),
    }
