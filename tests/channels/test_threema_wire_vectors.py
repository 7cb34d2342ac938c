"""The Threema fake's own wire code (tests/fakes/threema_wire.py) against published vectors, then
konsent's encoder against the fake: two independent implementations that must agree (#11 item 7)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from konsent.channels.threema import TYPE_TEXT, encrypt_message, generate_private_key, public_key_hex
from tests.fakes import threema_wire as wire

# threema.md §3: the callback MAC test vector of dbrgn/threema-gateway-rs [VERBATIM]
MAC_VECTOR = (
    "from=ECHOECHO&to=*TESTTST&messageId=0102030405060708&date=1616950936"
    "&nonce=ffffffffffffffffffffffffffffffffffffffffffffffff&box=012345abcdef"
    "&mac=622b362e8353658ee649a5548acecc9ce9b88384d6b7e08e212446d68455b14e"
)

# RFC 7748 §6.1 (X25519) key pairs, which the NaCl distribution's tests/box.c uses as well.
ALICE_SK = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PK = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_SK = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PK = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
# NaCl tests/box.c: Alice boxes this 131-byte message for Bob under this nonce.
BOX_NONCE = bytes.fromhex("69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37")
BOX_MESSAGE = bytes.fromhex(
    "be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffc"
    "e5ecbaaf33bd751a1ac728d45e6c61296cdc3c01233561f41db66cce314adb31"
    "0e3be8250c46f06dceea3a7fa1348057e2f6556ad6b1318a024a838f21af1fde"
    "048977eb48f59ffd4924ca1c60902e52f0a089bc76897040e082f93776384864"
    "5e0705"
)
BOX_CIPHERTEXT = bytes.fromhex(
    "f3ffc7703f9400e52a7dfb4b3d3305d98e993b9f48681273c29650ba32fc76ce"
    "48332ea7164d96a4476fb8c531a1186ac0dfc17c98dce87b4da7f011ec48c972"
    "71d2c20f9b928fe2270d6fb863d51738b48eeee314a7cc8ab932164548e526ae"
    "90224368517acfeabd6bb3732bc0e9da99832b61ca01b6de56244a9e88d5f9b3"
    "7973f622a43d14a6599b1f654cb45a74e355a5"
)


def test_fake_mac_matches_the_published_callback_vector_and_not_with_another_secret():
    fields = dict(parse_qsl(MAC_VECTOR))
    assert wire.mac("nevergonnagiveyouup", fields) == fields["mac"]
    assert wire.mac("nevergonnaletyoudown", fields) != fields["mac"]


def test_fake_derives_the_rfc7748_public_keys():
    assert (wire.public_of(ALICE_SK), wire.public_of(BOB_SK)) == (ALICE_PK, BOB_PK)


def test_fake_box_matches_the_nacl_box_vector_both_ways():
    assert wire.seal(BOX_MESSAGE, BOX_NONCE, BOB_PK, ALICE_SK) == BOX_CIPHERTEXT
    assert wire.open_box(BOX_CIPHERTEXT, BOX_NONCE, ALICE_PK, BOB_SK) == BOX_MESSAGE
    forged = BOX_CIPHERTEXT[:-1] + bytes([BOX_CIPHERTEXT[-1] ^ 1])
    with pytest.raises(wire.WireError):
        wire.open_box(forged, BOX_NONCE, ALICE_PK, BOB_SK)


def test_fake_padding_follows_threema_md():
    """type ‖ body ‖ n bytes of value n, at least 32 bytes; anything else is refused."""
    assert wire.pad(0x01, b"Hi", 3) == b"\x01Hi" + bytes([29]) * 29  # raised to reach 32 bytes
    assert wire.pad(0x01, b"x" * 40, 3) == b"\x01" + b"x" * 40 + b"\x03\x03\x03"
    assert wire.unpad(b"\x01" + b"x" * 40 + b"\x03\x03\x03") == (0x01, b"x" * 40)
    for bad in (
        b"\x01Hi" + bytes([4]) * 4,  # shorter than 32 bytes
        b"\x01" + b"x" * 40 + b"\x00",  # padding length 0
        b"\x01" + b"x" * 40 + b"\x07\x03\x03",  # padding bytes differ
        b"\x01" + b"x" * 31 + b"\xff",  # padding longer than the message
    ):
        with pytest.raises(wire.WireError):
            wire.unpad(bad)


def test_fake_receipt_body_is_status_then_eight_byte_ids():
    assert wire.receipt(0x02, ["0102030405060708", "a0a1a2a3a4a5a6a7"]) == bytes.fromhex(
        "020102030405060708a0a1a2a3a4a5a6a7"
    )


@pytest.mark.parametrize("text", ["", "Hallo 👋", "x" * 3000])
def test_konsents_encoder_produces_what_the_independent_fake_decodes(text):
    """The same message through konsent's encrypt_message and the fake's decrypt."""
    gateway_private = generate_private_key()
    user_public, user_private = wire.keypair()
    from nacl.public import PrivateKey, PublicKey

    nonce, box = encrypt_message(
        PrivateKey(bytes.fromhex(gateway_private)), PublicKey(user_public), TYPE_TEXT, text.encode()
    )
    gateway_public = bytes.fromhex(public_key_hex(gateway_private))
    assert wire.decrypt(nonce, box, gateway_public, user_private) == (TYPE_TEXT, text.encode())
