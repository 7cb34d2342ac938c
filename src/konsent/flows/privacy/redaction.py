"""Links and codes meant for the contact alone, hidden from everyone else (D1-D4, S8, #13).

The DATEN and INFO answers carry a self-service link, and the proof code goes to the
contact's messenger. Such a message is stored twice: `body_sealed` with the secrets
replaced (what the inbox, the contact page, the API and every export show) and
`secret_sealed` with the clear text, which only the delivery worker reads and which is
cleared once the message is sent. Even the clear link is of no use without the code sent
to the contact's own messenger (flows.privacy.proof_code).
"""

from __future__ import annotations

import re

HIDDEN = "[…]"
_LINK = re.compile(r"(/privacy/(?:export/)?)[A-Za-z0-9_-]{20,}")
_CODE = re.compile(r"\bPR\d{6}\b")


def redact(text: str) -> str:
    """`text` with self-service link tokens and proof codes replaced by a marker."""
    return _CODE.sub("PR" + HIDDEN, _LINK.sub(r"\g<1>" + HIDDEN, text))


def has_secret(text: str) -> bool:
    return redact(text) != text
