"""Agent scope on every route: one app-wide dependency, driven by the route's path (S3, #13).

Any route whose path names a `contact_id` or a `message_id` is checked here, before its
own code runs, with `flows.inbox.scope.may_see`: a contact outside the caller's teams answers 404
exactly like another tenant's. A new route with such a parameter is covered without doing
anything; tests/inbox/test_role_matrix.py fails for a new route until its scope is stated.
"""

from __future__ import annotations

from fastapi import Request

from konsent.domain.errors import NotFound
from konsent.flows.inbox import scope
from konsent.web.deps import Caller, _bearer, api_caller, get_ctx, session_caller

SCOPED_PARAMS = ("contact_id", "message_id")


def _id(raw: object) -> int | None:
    text = str(raw)
    return int(text) if text.isdigit() and len(text) <= 18 else None


def _caller(request: Request) -> Caller | None:
    if _bearer(request):
        return api_caller(request)  # a bad token is refused here as it would be by the route
    return session_caller(request)  # no session: the route's own dependency answers 401 / sign-in


def agent_scope(request: Request) -> None:
    """404 unless the caller may see the contact (or the message's contact) the path names."""
    params = request.path_params
    if not any(name in params for name in SCOPED_PARAMS):
        return
    contact_id = _id(params["contact_id"]) if "contact_id" in params else None
    message_id = _id(params["message_id"]) if "message_id" in params else None
    if contact_id is None and message_id is None:
        return  # not an id at all: the route answers 404 / 422 itself
    caller = _caller(request)
    if caller is None:
        return
    with get_ctx(request).db.read() as s:
        if not scope.may_see(s, caller, contact_id=contact_id, message_id=message_id):
            raise NotFound()
