"""Per-contact spacing: WhatsApp's pair rate limit, Telegram's one message per second per chat (CH3, M3)."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import select

from konsent.channels import register
from konsent.channels.base import (
    AccountConfig,
    Capabilities,
    ChannelAdapter,
    OutboundContent,
    SendOutcome,
    SendResult,
)
from konsent.delivery.pacing import ContactSpacing
from konsent.flows.outbound.messaging import enqueue_message
from konsent.store.tables import Contact, OutboxRow
from tests.broadcast.seed import add_account, seed
from tests.conftest import drain


def test_gcra_allows_the_documented_burst_then_one_per_interval():
    """WhatsApp: 45 messages to one user at once, then one every 6 s; other users are not held back."""
    sp = ContactSpacing()
    waits = [sp.reserve(1, 7, 6.0, 45, now=100.0) for _ in range(47)]
    assert waits[:45] == [0.0] * 45
    assert waits[45] == 6.0 and waits[46] == 12.0
    assert sp.reserve(1, 8, 6.0, 45, now=100.0) == 0.0  # another contact
    assert sp.reserve(2, 7, 6.0, 45, now=100.0) == 0.0  # the same person on another number
    # the burst borrowed from later: after it, the user is free again only once it is paid back
    assert sp.reserve(1, 7, 6.0, 45, now=100.0 + 47 * 6.0) == 0.0


def test_one_per_second_per_chat_and_memory_only_for_recent_contacts():
    """Telegram: one message per second per chat; contacts not written to lately are forgotten."""
    sp = ContactSpacing()
    assert sp.reserve(1, 1, 1.0, 1, now=0.0) == 0.0
    assert sp.reserve(1, 1, 1.0, 1, now=0.2) == 0.8
    for cid in range(2, 10_002):
        sp.reserve(1, cid, 1.0, 1, now=1.0)
    assert sp.reserve(1, 99_999, 1.0, 1, now=60.0) == 0.0
    assert len(sp) == 1  # everyone else's slot lies in the past: pruned
    sp.release(1, 99_999, 1.0)
    assert sp.reserve(1, 99_999, 1.0, 1, now=60.0) == 0.0  # a released slot is free again


@register
class PairLimitedChannel(ChannelAdapter):
    """A test channel with a per-contact interval, recording when each address got a message."""

    kind = "test_pair_limited"
    label = "Pair-limited test channel"
    capabilities = Capabilities(throughput_per_s=10_000, per_contact_interval_s=0.4, per_contact_burst=1)
    sent: list[tuple[str, str, float]] = []  # noqa: RUF012 - a test recorder

    async def send(self, account: AccountConfig, address: str, content: OutboundContent) -> SendResult:
        PairLimitedChannel.sent.append((address, content.text, time.monotonic()))
        return SendResult(SendOutcome.SENT, provider_id=f"p.{uuid.uuid4().hex}")


def _queue(ctx, contact_id: int, texts: list[str]) -> None:  # type: ignore[no-untyped-def]
    with ctx.db.write() as s:
        contact = s.get(Contact, contact_id)
        for text in texts:
            enqueue_message(ctx, s, contact, "newsletter:angebote", OutboundContent(text=text))


def test_messages_to_one_contact_are_spaced_others_are_not_held_back(ctx, demo):
    """CH3: three messages to one contact go out at least the interval apart and in order; another
    contact's message in the same batch goes out in between, not after them."""
    PairLimitedChannel.sent.clear()
    acc = add_account(ctx, demo.tenant_id, "test_pair_limited")
    first, second = seed(ctx, acc, ["+4915120000001", "+4915120000002"])
    _queue(ctx, first, ["eins", "zwei", "drei"])
    _queue(ctx, second, ["andere"])
    drain(ctx)
    mine = [(text, at) for address, text, at in PairLimitedChannel.sent if address == "+4915120000001"]
    assert [text for text, _ in mine] == ["eins", "zwei", "drei"]
    assert mine[1][1] - mine[0][1] >= 0.35 and mine[2][1] - mine[1][1] >= 0.35
    other = next(at for address, _, at in PairLimitedChannel.sent if address == "+4915120000002")
    assert other < mine[2][1]


def test_a_wait_longer_than_the_lease_allows_postpones_without_spending_an_attempt(ctx, demo, monkeypatch):
    """CH3: the second message to a contact within a long interval is put back with its run time
    moved, no attempt spent, and the account keeps sending to everyone else."""
    PairLimitedChannel.sent.clear()
    monkeypatch.setattr(
        PairLimitedChannel,
        "capabilities",
        Capabilities(throughput_per_s=10_000, per_contact_interval_s=600.0, per_contact_burst=1),
    )
    acc = add_account(ctx, demo.tenant_id, "test_pair_limited")
    first, second = seed(ctx, acc, ["+4915120000003", "+4915120000004"])
    _queue(ctx, first, ["eins", "zwei"])
    _queue(ctx, second, ["andere"])
    drain(ctx)
    assert sorted(text for _, text, _ in PairLimitedChannel.sent) == ["andere", "eins"]
    with ctx.db.read() as s:
        waiting = s.scalars(select(OutboxRow).where(OutboxRow.state == "available")).one()
        assert waiting.contact_id == first and waiting.attempt == 0
        assert (waiting.run_at - waiting.created_at).total_seconds() > 500
