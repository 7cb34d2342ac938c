"""Hypothesis: signed, hostile webhook bodies of every kind never get a 5xx (#13 finding 8, CH2).

Every delivery is authentic (valid signature, secret header, MAC), so it reaches the parsers
and the store: real fixtures with a value somewhere replaced by something hostile (NUL, lone
surrogates, 2^63 and larger integers, floats, wrong types, over-long strings and ids), JSON
nested ~1,000 levels, keys dropped, and random JSON. Each goes over HTTP through the whole
app (status fast path, route, flows, database). Providers retry failed deliveries, so a 500
would come back for days.

2,000 bodies per kind by default; `KONSENT_FUZZ_EXAMPLES=20000` for a longer run.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from konsent.channels.simulator import SIGNATURE_HEADER
from konsent.channels.simulator import sign as sim_sign
from konsent.channels.threema import TYPE_RECEIPT, TYPE_TEXT
from tests.channels import fixtures_meta as meta_fx
from tests.channels import fixtures_telegram as tg_fx
from tests.fakes import threema_wire as wire

EXAMPLES = int(os.environ.get("KONSENT_FUZZ_EXAMPLES", "2000"))
DEEP_MARK = "__deep__"
DEEP = b"[" * 1000 + b"]" * 1000

HOSTILE: list[Any] = [
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\U0001f600",
    "x" * 5000,
    "9" * 300,
    2**63,
    -(2**63) - 1,
    10**40,
    1e308,
    -1,
    0,
    1.5,
    True,
    None,
    [],
    {},
    [[[[[]]]]],
    {"id": "\x00"},
    DEEP_MARK,
]

SIM_FIXTURES: list[Any] = [
    {"messages": [{"id": "m1", "from": "+4915112345678", "text": "Hallo", "timestamp": 1_700_000_000}]},
    {"messages": [{"id": "m2", "from": "+4915112345678", "button": "yes", "name": "Alex", "locale": "de"}]},
    {"statuses": [{"id": "sim-1", "status": "read", "timestamp": 1_700_000_000}]},
]
FIXTURES: dict[str, list[Any]] = {
    "whatsapp": list(meta_fx.WHATSAPP_WEBHOOKS.values()),
    "dialog360": list(meta_fx.DIALOG360_WEBHOOKS.values()),
    "messenger": list(meta_fx.MESSENGER_WEBHOOKS.values()),
    "instagram": list(meta_fx.INSTAGRAM_WEBHOOKS.values()),
    "telegram": list(tg_fx.ALL_UPDATES),
    "simulator": SIM_FIXTURES,
}


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any, drop: bool) -> Any:
    if not path:
        return value
    doc = json.loads(json.dumps(doc))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if drop and isinstance(parent, dict):
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value
    return doc


@st.composite
def mutated(draw: st.DrawFn, kind: str) -> bytes:
    """A real payload of `kind` with one to three hostile changes, or random JSON."""
    if draw(st.integers(0, 9)) == 0:
        doc: Any = draw(
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                lambda inner: (
                    st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
                ),
                max_leaves=20,
            )
        )
    else:
        doc = draw(st.sampled_from(FIXTURES[kind]))
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(_paths(doc)))
            value = draw(st.sampled_from(HOSTILE) | st.text(max_size=30) | st.integers())
            doc = _replace(doc, path, value, drop=draw(st.integers(0, 5)) == 0)
    raw = json.dumps(doc).encode()  # ASCII: lone surrogates and NUL as \\u escapes
    return raw.replace(json.dumps(DEEP_MARK).encode(), DEEP)


@st.composite
def threema_bodies(draw: st.DrawFn, gateway_public: Any, sender: Any) -> bytes:
    """An authentic callback (valid MAC) with hostile plaintext or fields."""
    kind, plain = draw(
        st.sampled_from(
            [
                (TYPE_TEXT, b"Hallo STOP"),
                (TYPE_TEXT, b"\x00\xed\xa0\x80 \xff"),
                (TYPE_RECEIPT, wire.receipt(0x01, ["0102030405060708"])),
                (TYPE_RECEIPT, b"\x01\x02"),
                (0x17, b"{}"),
            ]
        )
        | st.tuples(st.integers(0, 255), st.binary(max_size=200))
    )
    nonce, box = wire.encrypt(kind, plain, gateway_public, sender)
    message_id = draw(st.sampled_from(["0102030405060708", "f" * 64, "f" * 300, "zz"]))
    date = draw(st.sampled_from([1_700_000_000, 2**63, -1, 0]))
    fields = wire.callback(SECRET, SENDER, GATEWAY, message_id, date, nonce, box)
    if draw(st.booleans()):
        fields["nickname"] = draw(st.sampled_from(["\x00", "\ud800", "A" * 5000, "Alex"]))
    return urlencode(fields, encoding="utf-8", errors="surrogatepass").encode()


GATEWAY = "*KONSENT"
SECRET = "fuzz-secret"
SENDER = "ECHOECHO"
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


def _headers(kind: str, body: bytes, secret: str = "") -> dict[str, str]:
    if kind in ("whatsapp", "messenger", "instagram"):
        return meta_fx.signed(body)
    if kind == "dialog360":
        return {"content-type": "application/json", meta_fx.D360_HEADER: "d360-shared-secret-xyz"}
    if kind == "telegram":
        return {"content-type": "application/json", "x-telegram-bot-api-secret-token": tg_fx.SECRET_TOKEN}
    return {"content-type": "application/json", SIGNATURE_HEADER: sim_sign(secret, body)}


def _route(ctx: Any, kind: str) -> str:
    if kind in ("whatsapp", "dialog360", "messenger", "instagram"):
        return meta_fx.connect(ctx, kind).route_key
    if kind == "telegram":
        return tg_fx.telegram_account(ctx)[1]
    return tg_fx.add_account(ctx, "simulator", {}, {"webhook_secret": "sim-secret"})[1]


@pytest.mark.parametrize("kind", ["whatsapp", "dialog360", "messenger", "instagram", "telegram", "simulator"])
def test_signed_hostile_json_bodies_never_get_a_server_error(ctx, demo, client, kind: str) -> None:  # type: ignore[no-untyped-def]
    route = _route(ctx, kind)
    seen: dict[int, int] = {}

    @FUZZ
    @given(body=mutated(kind))
    def deliver(body: bytes) -> None:
        r = client.post(f"/webhooks/{route}", content=body, headers=_headers(kind, body, "sim-secret"))
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        assert r.status_code < 500, (r.status_code, body[:300])
        assert r.status_code not in (401, 403), "the signature is valid: the body must reach the parser"

    deliver()
    assert seen.get(200, 0) > 0 and seen.get(400, 0) > 0  # both the store and the refusal were reached


def test_signed_hostile_threema_callbacks_never_get_a_server_error(ctx, demo, client) -> None:  # type: ignore[no-untyped-def]
    from nacl.public import PrivateKey

    gateway = PrivateKey.generate()
    sender = PrivateKey.generate()
    _, route = tg_fx.add_account(
        ctx,
        "threema",
        {"gateway_id": GATEWAY, "pubkeys": {SENDER: bytes(sender.public_key).hex()}},
        {"api_secret": SECRET, "private_key": bytes(gateway).hex()},
    )
    seen: dict[int, int] = {}

    @FUZZ
    @given(body=threema_bodies(bytes(gateway.public_key), bytes(sender)))
    def deliver(body: bytes) -> None:
        r = client.post(
            f"/webhooks/{route}", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
        )
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        assert r.status_code < 500, (r.status_code, body[:300])

    deliver()
    assert seen.get(200, 0) > 0 and seen.get(400, 0) > 0
