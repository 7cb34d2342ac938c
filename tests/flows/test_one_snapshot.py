"""One legal-basis snapshot on every deciding path (#11 item 4, C5, D2): `enqueue_message`,
`enqueue_many` and the worker's claim agree on what "erased" means, including a contact whose
key is gone while its row is not yet marked erased. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from konsent.channels.base import OutboundContent
from konsent.delivery import outbox
from konsent.domain.errors import NoLegalBasis
from konsent.flows.outbound import messaging
from konsent.store.tables import Contact
from konsent.store.types import utcnow
from tests.conftest import drain
from tests.flows.support import contact_of, enqueue, message_status, outbox_state
from tests.helpers import sim_account, subscribe

PHONE = "+4915112345678"
OFFERS = "newsletter:angebote"
GONE = {
    "key_gone": {"wrapped_key": None},
    "marked_erased": {"erased_at": utcnow()},
}


@pytest.fixture
def contact_id(ctx, demo) -> int:
    subscribe(ctx, PHONE, ["angebote"])
    drain(ctx)
    return contact_of(ctx, PHONE).id


def _erase(ctx, contact_id: int, how: str) -> None:
    with ctx.db.write() as s:
        s.execute(update(Contact).where(Contact.id == contact_id).values(**GONE[how]))


@pytest.mark.parametrize("how", sorted(GONE))
@pytest.mark.parametrize("purpose", [OFFERS, "service"])
def test_enqueue_message_refuses_an_erased_contact_as_erased(ctx, contact_id, how, purpose):
    _erase(ctx, contact_id, how)
    with pytest.raises(NoLegalBasis) as exc, ctx.db.write() as s:
        c = s.get(Contact, contact_id)
        messaging.enqueue_message(ctx, s, c, purpose, OutboundContent(text="Hallo"))  # type: ignore[arg-type]
    assert exc.value.params["reason_code"] == "erased"


@pytest.mark.parametrize("how", sorted(GONE))
def test_enqueue_many_skips_an_erased_contact_as_erased(ctx, contact_id, how):
    _erase(ctx, contact_id, how)
    with ctx.db.write() as s:
        c = s.get(Contact, contact_id)
        draft = messaging.Draft(c, OutboundContent(text="Hallo"), sim_account(ctx).id)  # type: ignore[arg-type]
        result = messaging.enqueue_many(ctx, s, [draft], OFFERS)
    assert (result.queued, result.skipped) == ({}, {contact_id: "erased"})


@pytest.mark.parametrize("how", sorted(GONE))
def test_claim_refuses_a_queued_message_of_an_erased_contact_as_erased(ctx, contact_id, how):
    mid = enqueue(ctx, contact_id, OFFERS, "Hallo")
    _erase(ctx, contact_id, how)
    assert outbox.claim(ctx, "w", 10, utcnow(), 30) == []
    assert outbox_state(ctx, mid) == "refused"
    assert message_status(ctx, mid) == ("refused", "erased: the contact was erased")
