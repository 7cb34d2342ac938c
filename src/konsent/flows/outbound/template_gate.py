"""The template's category at claim time: a message queued before Meta re-categorised its template
is judged by what the template is now (T4, C5, invariant 1).

The worker asks `check` for every claimed batch, inside the claim transaction (delivery.outbox):
one query for the templates the batch uses. A MARKETING template needs a marketing purpose
(a `newsletter:<topic>` the contact consented to): a `service` message using a template that
is now MARKETING is refused with the reason, like any other claim-time refusal. The current
category also travels with the send (`OutboundContent.template_category`), so the channel can
route MARKETING templates through WhatsApp's Marketing Messages API.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol, TypeVar

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from konsent.channels.base import AccountConfig, OutboundContent
from konsent.domain.purposes import Purpose
from konsent.store.tables import MessageTemplate

RECATEGORISED = "no legal basis: the template is now MARKETING: marketing consent needed"


class _Job(Protocol):
    @property
    def outbox_id(self) -> int: ...
    @property
    def message_id(self) -> int: ...
    @property
    def tenant_id(self) -> int: ...
    @property
    def purpose(self) -> str: ...
    @property
    def account(self) -> AccountConfig: ...
    @property
    def content(self) -> OutboundContent: ...


J = TypeVar("J", bound=_Job)


def check(s: Session, jobs: Sequence[J]) -> tuple[list[J], list[tuple[int, int, str]]]:
    """(jobs to send, with their template's current category; refusals as (outbox id, message id, reason))."""
    keys = {
        (j.tenant_id, j.account.id, j.content.template, j.content.template_language or "")
        for j in jobs
        if j.content.template
    }
    if not keys:
        return list(jobs), []
    current = {
        (t, a, n, lang): cat
        for t, a, n, lang, cat in s.execute(
            select(
                MessageTemplate.tenant_id,
                MessageTemplate.channel_account_id,
                MessageTemplate.name,
                MessageTemplate.language,
                MessageTemplate.category,
            ).where(
                tuple_(
                    MessageTemplate.tenant_id,
                    MessageTemplate.channel_account_id,
                    MessageTemplate.name,
                    MessageTemplate.language,
                ).in_(sorted(keys))
            )
        ).tuples()
    }
    out: list[J] = []
    refused: list[tuple[int, int, str]] = []
    for j in jobs:
        c = j.content
        if not c.template:
            out.append(j)
            continue
        category = current.get((j.tenant_id, j.account.id, c.template, c.template_language or ""))
        if category == "MARKETING" and not Purpose.parse(j.purpose).is_marketing:
            refused.append((j.outbox_id, j.message_id, RECATEGORISED))
            continue
        if category:
            j = dataclasses.replace(j, content=dataclasses.replace(c, template_category=category))  # type: ignore[type-var]
        out.append(j)
    return out, refused


__all__ = ["RECATEGORISED", "check"]
