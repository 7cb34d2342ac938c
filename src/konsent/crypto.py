"""Envelope encryption and blind indexes (S1, invariant 5).

A contact's fields are sealed with that contact's data key; the data key is
wrapped by the tenant key; the tenant key by the installation's master key.
Destroying the wrapped contact key makes every copy of that contact's data
unreadable (crypto-shredding).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
_NONCE = 12
_VERSION = b"\x01"


class DecryptionError(Exception):
    """The ciphertext does not open with this key (wrong key, shredded key or tampering)."""


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def seal(key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """Encrypt and authenticate; `aad` binds the ciphertext to its place (row, column)."""
    nonce = os.urandom(_NONCE)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes = b"") -> bytes:
    if not blob or blob[:1] != _VERSION:
        raise DecryptionError("unknown ciphertext format")
    try:
        return AESGCM(key).decrypt(blob[1 : 1 + _NONCE], blob[1 + _NONCE :], aad)
    except InvalidTag as exc:
        raise DecryptionError("ciphertext does not open with this key") from exc


def seal_text(key: bytes, text: str, aad: bytes = b"") -> bytes:
    return seal(key, text.encode(), aad)


def open_text(key: bytes, blob: bytes, aad: bytes = b"") -> str:
    return open_sealed(key, blob, aad).decode()


def wrap_key(kek: bytes, key: bytes, aad: bytes) -> bytes:
    """Wrap a data key with a key-encryption key (AES-GCM key wrap)."""
    return seal(kek, key, b"wrap:" + aad)


def unwrap_key(kek: bytes, wrapped: bytes, aad: bytes) -> bytes:
    return open_sealed(kek, wrapped, b"wrap:" + aad)


def blind_index(index_key: bytes, kind: str, value: str) -> str:
    """Keyed HMAC of a normalised identifier, so look-ups never need the clear value."""
    return hmac.new(index_key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def keyed_hash(key: bytes, value: str) -> str:
    """Keyed hash of an IP address or user agent for the consent proof (C3)."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]


def load_master_key(configured: str | None, data_dir: Path) -> bytes:
    """The master key from KONSENT_MASTER_KEY, else from a 0600 key file created on first start."""
    if configured:
        key = base64.urlsafe_b64decode(configured.encode() + b"==")
        if len(key) != KEY_BYTES:
            raise ValueError("KONSENT_MASTER_KEY must be 32 bytes, base64-encoded")
        return key
    path = data_dir / "master.key"
    if path.exists():
        key = base64.urlsafe_b64decode(path.read_bytes().strip() + b"==")
        if len(key) != KEY_BYTES:
            raise ValueError(f"{path} does not hold a 32-byte key")
        return key
    data_dir.mkdir(parents=True, exist_ok=True)
    key = new_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(base64.urlsafe_b64encode(key))
    return key
