"""Random sequences of sign-ups, STOPs, sends and worker runs against a simple model of consent:
a newsletter reaches the phone exactly when it was queued with consent and no STOP for its topic
came before the worker (C2, C4, C5, invariants 1 and 2)."""

from __future__ import annotations

import random

import pytest

from konsent.domain.errors import NoLegalBasis
from konsent.flows.inbound import simulator
from tests.conftest import drain
from tests.flows.support import contact_of, enqueue
from tests.helpers import phone_texts, request_code, sim_account

TOPICS = {"angebote": "Angebote", "produktnews": "Produktneuheiten"}


@pytest.mark.parametrize("seed", range(1, 7))
def test_random_histories_match_the_consent_model(ctx, demo, seed):
    rng = random.Random(seed)
    acc = sim_account(ctx).id
    phone = f"+49151555{seed:05d}"
    active: set[str] = set()
    pending: list[tuple[str, str]] = []  # (topic, text) queued and not yet worked
    delivered: list[str] = []
    n = 0
    wrote = False
    for _ in range(20):
        op = rng.choices(["subscribe", "stop_all", "stop_topic", "send", "drain"], [3, 1, 2, 6, 3])[0]
        if op == "subscribe":
            chosen = rng.sample(sorted(TOPICS), rng.randint(1, 2))
            simulator.phone_send(ctx, acc, phone, request_code(ctx, chosen).prefill, locale="de")
            active |= set(chosen)
            wrote = True
        elif op == "stop_all" and wrote:
            simulator.phone_send(ctx, acc, phone, rng.choice(["STOP", "stopp!", "🛑 Abmelden"]))
            active.clear()
            pending.clear()
        elif op == "stop_topic" and wrote:
            topic = rng.choice(sorted(TOPICS))
            simulator.phone_send(ctx, acc, phone, f"STOP {TOPICS[topic]}")
            active.discard(topic)
            pending[:] = [p for p in pending if p[0] != topic]
        elif op == "send" and wrote:  # before the first message there is no contact to write to
            topic = rng.choice(sorted(TOPICS))
            n += 1
            text = f"NL-{topic}-{n}"
            try:
                enqueue(ctx, contact_of(ctx, phone).id, f"newsletter:{topic}", text)
            except NoLegalBasis:
                assert topic not in active, f"refused although subscribed to {topic}"
            else:
                assert topic in active, f"queued although not subscribed to {topic}"
                pending.append((topic, text))
        elif op == "drain":
            drain(ctx)
            delivered += [text for _, text in pending]
            pending.clear()
    drain(ctx)
    delivered += [text for _, text in pending]
    got = [m for m in phone_texts(ctx, phone) if m.startswith("NL-")] if wrote else []
    assert sorted(got) == sorted(delivered)  # one batch is sent concurrently: order is free
