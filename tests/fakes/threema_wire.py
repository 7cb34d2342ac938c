"""The Threema Gateway's wire format as the fake speaks it, written from shared/protocols/threema.md
alone (not from konsent's adapter), so a mistake in konsent's encoder is not mirrored here.

§3: a message is `type (u8) ‖ body ‖ padding`, the padding PKCS#7-style (n bytes of value n,
1 ≤ n ≤ 255) and the whole at least 32 bytes; it travels as NaCl `crypto_box`
(Curve25519/XSalsa20/Poly1305) under a 24-byte nonce. A callback is a form whose `mac` is the
lowercase hex HMAC-SHA256, keyed with the API secret, over from‖to‖messageId‖date‖nonce‖box.
A delivery receipt's body is `status (u8) ‖ 8-byte message ids`.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from nacl import bindings

MIN_PADDED = 32
NONCE_BYTES = 24
KEY_BYTES = 32
MAC_ORDER = ("from", "to", "messageId", "date", "nonce", "box")


class WireError(ValueError):
    """What the fake received does not follow threema.md."""


def keypair() -> tuple[bytes, bytes]:
    """A fresh (public, private) Curve25519 key pair, raw 32 bytes each."""
    return bindings.crypto_box_keypair()


def public_of(private: bytes) -> bytes:
    """The Curve25519 public key of a private key (scalar multiplication by the base point)."""
    return bindings.crypto_scalarmult_base(private)


def pad(kind: int, body: bytes, n: int | None = None) -> bytes:
    """type ‖ body ‖ n bytes of value n; n random in 1..255 unless given, raised to reach 32 bytes."""
    if n is None:
        n = 1 + int.from_bytes(os.urandom(1)) % 255
    n = max(n, MIN_PADDED - 1 - len(body))
    if not 1 <= n <= 255:
        raise WireError(f"padding length {n} outside 1..255")
    return bytes([kind]) + body + bytes([n]) * n


def unpad(plain: bytes) -> tuple[int, bytes]:
    """(type, body) of a padded message; strict about every rule of §3."""
    if len(plain) < MIN_PADDED:
        raise WireError(f"padded message of {len(plain)} bytes, fewer than {MIN_PADDED}")
    n = plain[-1]
    if n == 0 or n > len(plain) - 1:
        raise WireError(f"padding length {n} does not fit")
    if plain[-n:] != bytes([n]) * n:
        raise WireError("padding bytes are not all equal to the padding length")
    return plain[0], plain[1:-n]


def seal(plain: bytes, nonce: bytes, recipient_public: bytes, sender_private: bytes) -> bytes:
    """crypto_box: the 16-byte Poly1305 tag followed by the ciphertext."""
    if len(nonce) != NONCE_BYTES:
        raise WireError("a nonce is 24 bytes")
    return bindings.crypto_box(plain, nonce, recipient_public, sender_private)


def open_box(box: bytes, nonce: bytes, sender_public: bytes, recipient_private: bytes) -> bytes:
    if len(nonce) != NONCE_BYTES:
        raise WireError("a nonce is 24 bytes")
    try:
        return bindings.crypto_box_open(box, nonce, sender_public, recipient_private)
    except Exception as exc:  # nacl's CryptoError: wrong key or a forged box
        raise WireError("the box does not open") from exc


def encrypt(kind: int, body: bytes, recipient_public: bytes, sender_private: bytes) -> tuple[bytes, bytes]:
    """(nonce, box) of a padded message under a fresh random nonce."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce, seal(pad(kind, body), nonce, recipient_public, sender_private)


def decrypt(nonce: bytes, box: bytes, sender_public: bytes, recipient_private: bytes) -> tuple[int, bytes]:
    return unpad(open_box(box, nonce, sender_public, recipient_private))


def mac(secret: str, fields: dict[str, str]) -> str:
    """The callback MAC over the six fields' values exactly as sent."""
    message = "".join(fields[name] for name in MAC_ORDER).encode("ascii")
    return hmac.new(secret.encode("ascii"), message, hashlib.sha256).hexdigest()


def callback(
    secret: str, sender: str, gateway_id: str, message_id: str, date: int, nonce: bytes, box: bytes
) -> dict[str, str]:
    """The form fields of a callback to the gateway's customer, `mac` included."""
    fields = {
        "from": sender,
        "to": gateway_id,
        "messageId": message_id,
        "date": str(date),
        "nonce": nonce.hex(),
        "box": box.hex(),
    }
    fields["mac"] = mac(secret, fields)
    return fields


def receipt(status: int, message_ids: list[str]) -> bytes:
    """A delivery receipt's body: status, then each 16-hex-digit message id as its 8 bytes."""
    out = bytearray([status])
    for mid in message_ids:
        raw = bytes.fromhex(mid)
        if len(raw) != 8:
            raise WireError("a message id is 8 bytes")
        out += raw
    return bytes(out)
