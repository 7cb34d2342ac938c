"""Fuzz: 10,000 random mutations of the Telegram and Threema fixtures through the webhook flow.

Never a 500 (receive_webhook never raises and answers 200/400/401/403), and
never an unauthenticated write: only authenticated, parseable deliveries add
webhook events, and those add exactly as many as the flow reports (CH2).
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, select

from konsent.channels.base import WebhookRequest
from konsent.channels.threema import TYPE_RECEIPT, TYPE_TEXT, generate_private_key, public_key_hex
from konsent.flows.inbound.receive import receive_webhook
from konsent.store.tables import Consent, Contact, Message, OutboxRow, WebhookEvent
from tests.channels import fixtures_telegram as fx
from tests.conftest import on_postgres
from tests.fakes import threema_wire as wire

GATEWAY = "*KONSENT"
SECRET = "fuzz-secret"
SENDER = "ECHOECHO"
# 10,000 in all; fewer through the whole flow on PostgreSQL, whose round trips cost more.
N_UNAUTH, N_AUTH = (500, 400) if on_postgres() else (1500, 1000)
N_PARSE = 10_000 - N_UNAUTH - N_AUTH

WEIRD: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**70,
    1.5,
    "",
    "x" * 5000,
    "/start KS0123456789",
    "/start@bot a_b-c",
    "STOP",
    "\u0000\ud7ff\U0001f600",
    [],
    {},
    [1, [2, [3]]],
    {"id": "x"},
    {"type": "private", "id": 7},
]


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:  # type: ignore[type-arg]
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def mutate_json(rng: random.Random, doc: Any) -> bytes:
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(_paths(doc))
        if not path:
            doc = rng.choice([doc, copy.deepcopy(rng.choice(WEIRD))])
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        key = path[-1]
        op = rng.random()
        if op < 0.55:
            weird = copy.deepcopy(rng.choice(WEIRD))
            parent[key] = weird if rng.random() < 0.7 else rng.randint(-(2**40), 2**40)
        elif op < 0.8 and isinstance(parent, dict):
            del parent[key]
        elif isinstance(parent, dict):
            parent[rng.choice(["poll", "edited_message", "chat_member", "message", "x" * 300])] = parent.pop(
                key
            )
    raw = json.dumps(doc).encode()
    if rng.random() < 0.15:  # byte-level damage on top
        i = rng.randrange(len(raw) + 1)
        raw = raw[:i] + bytes([rng.randrange(256)]) * rng.randint(0, 3) + raw[i + rng.randint(0, 5) :]
    return raw


def _call(ctx, route_key: str, headers: dict[str, str], body: bytes):  # type: ignore[no-untyped-def]
    result = receive_webhook(ctx, route_key, WebhookRequest("POST", headers, {}, body))
    assert result.status in (200, 400, 401, 403), result
    return result


def _rows(ctx) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with ctx.db.read() as s:
        return {
            t.__name__: int(s.scalar(select(func.count()).select_from(t)) or 0)
            for t in (WebhookEvent, Message, Contact, Consent, OutboxRow)
        }


class Cases:
    """Random damaged deliveries for both providers, from one seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.gateway_private = generate_private_key()
        self.gateway_public = wire.public_of(bytes.fromhex(self.gateway_private))
        self.sender_public, self.sender = wire.keypair()
        self.plaintexts = [
            (TYPE_TEXT, b"Hallo STOP"),
            (TYPE_TEXT, b"\xff\xfe bad utf-8"),
            (TYPE_RECEIPT, wire.receipt(0x01, ["0102030405060708"])),
            (TYPE_RECEIPT, wire.receipt(0x02, ["0102030405060708", "1112131415161718"])),
            (TYPE_RECEIPT, b"\x01\x02"),
            (0x17, b"{}"),
        ]

    def telegram(self, fresh_id: float = 0.0) -> bytes:
        doc = copy.deepcopy(self.rng.choice(fx.ALL_UPDATES))
        if self.rng.random() < fresh_id:  # a new update_id, so the event is not a duplicate
            doc["update_id"] = self.rng.randrange(10**9)
        return mutate_json(self.rng, doc)

    def threema(self, authentic: bool) -> bytes:
        rng = self.rng
        kind, plain = rng.choice(self.plaintexts)
        if authentic and rng.random() < 0.5:
            j = rng.randrange(len(plain) + 1)
            plain = plain[:j] + bytes([rng.randrange(256)]) + plain[j + 1 :]
        nonce, box = wire.encrypt(kind, plain, self.gateway_public, self.sender)
        message_id = f"{rng.getrandbits(64):016x}"
        fields = wire.callback(SECRET, SENDER, GATEWAY, message_id, 1_700_000_000, nonce, box)
        if authentic:
            if rng.random() < 0.4:
                field = rng.choice(["from", "messageId", "date", "nonce", "box"])
                fields[field] = rng.choice(["", "00", "zz", fields[field][:-2], "ABCDEFGH", "9" * 30])
                fields["mac"] = wire.mac(SECRET, fields)  # re-signed: the parser must cope
        else:
            field = rng.choice([*fields])
            fields[field] = rng.choice(["", "00", fields[field][:-1], fields[field] + "0", "ÄÖ", "*OTHERID"])
            if rng.random() < 0.3:
                fields["mac"] = f"{rng.getrandbits(256):064x}"
        raw = urlencode(fields).encode()
        if rng.random() < 0.1:
            i = rng.randrange(len(raw) + 1)
            raw = raw[:i] + bytes([rng.randrange(256)]) + raw[i + 1 :]
        return raw


TG_OK = {"x-telegram-bot-api-secret-token": fx.SECRET_TOKEN, "content-type": "application/json"}
TG_BAD: list[dict[str, str]] = [
    {},
    {"x-telegram-bot-api-secret-token": fx.SECRET_TOKEN[:-1]},
    {"x-telegram-bot-api-secret-token": ""},
    {"x-telegram-bot-api-secret-token": fx.SECRET_TOKEN + " "},
]
FORM = {"content-type": "application/x-www-form-urlencoded"}


def test_ten_thousand_mutations_never_500_and_never_write_unauthenticated(ctx, demo):
    """CH2, bad input: random damage to every fixture, with and without valid credentials."""
    rng = random.Random(20261124)
    cases = Cases(rng)
    _, tg_route = fx.telegram_account(ctx)
    _, th_route = fx.add_account(
        ctx,
        "threema",
        {
            "gateway_id": GATEWAY,
            "api_base": "http://127.0.0.1:9",  # unknown senders: the key lookup fails fast
            "pubkeys": {SENDER: cases.sender_public.hex()},
        },
        {"api_secret": SECRET, "private_key": cases.gateway_private},
    )
    assert public_key_hex(cases.gateway_private) == cases.gateway_public.hex()

    # 1. Through the flow, without valid credentials: 401/403 and nothing written but counters.
    before = _rows(ctx)
    for i in range(N_UNAUTH):
        if i % 2:
            status = _call(ctx, tg_route, rng.choice(TG_BAD), cases.telegram()).status
        else:
            status = _call(ctx, th_route, FORM, cases.threema(authentic=False)).status
        assert status in (401, 403)
    assert _rows(ctx) == before

    # 2. Through the flow, authentic but damaged: 200 or 400; exactly the reported events are stored.
    reported = 0
    for i in range(N_AUTH):
        if i % 2:
            reported += _call(ctx, tg_route, TG_OK, cases.telegram(fresh_id=0.3)).events
        else:
            reported += _call(ctx, th_route, FORM, cases.threema(authentic=True)).events
    assert _rows(ctx)["WebhookEvent"] - before["WebhookEvent"] == reported
    # The fuzz reached the handlers, not only the parsers' error paths: about a quarter of the
    # authentic cases survive their damage (random nonces make the share vary a little).
    assert reported > N_AUTH // 5

    # 3. The adapters alone, many more: only the errors the flow turns into 401/403/400 may escape.
    from konsent.channels.base import WebhookRejected
    from konsent.flows.organisation.tenants import account_config
    from konsent.store.tables import ChannelAccount

    with ctx.db.read() as s:
        accounts = {
            a.kind: account_config(ctx, s, a)
            for a in s.scalars(select(ChannelAccount).where(ChannelAccount.kind.in_(["telegram", "threema"])))
        }
    tg, th = ctx.adapter("telegram"), ctx.adapter("threema")
    outcomes = {"rejected": 0, "malformed": 0, "parsed": 0}
    for i in range(N_PARSE):
        if i % 2:
            adapter, cfg, headers = tg, accounts["telegram"], rng.choice([TG_OK, TG_OK, *TG_BAD])
            body = cases.telegram()
        else:
            adapter, cfg, headers = th, accounts["threema"], FORM
            body = cases.threema(authentic=rng.random() < 0.8)
        try:
            adapter.verify(cfg, WebhookRequest("POST", headers, {}, body))
        except WebhookRejected as exc:
            assert exc.status in (401, 403)
            outcomes["rejected"] += 1
            continue
        try:
            events = adapter.parse(cfg, body)
        except (ValueError, KeyError, TypeError):
            outcomes["malformed"] += 1
            continue
        outcomes["parsed"] += 1
        for ev in events:
            assert len(getattr(ev, "provider_id", "")) <= 200
            assert len(getattr(ev, "address", "") or "") <= 64
            assert len(getattr(ev, "text", "")) <= 4096
    assert min(outcomes.values()) > 300, outcomes
