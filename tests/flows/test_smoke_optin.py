"""Step 3 of issue 2 in its simplest form: the code confirms, the phone gets the confirmation (C2)."""

from tests.conftest import drain
from tests.helpers import phone_texts, subscribe


def test_code_sent_from_phone_confirms_topics_and_replies(ctx, demo):
    subscribe(ctx, "+4915112345678", ["angebote"], locale="en")
    drain(ctx)
    texts = phone_texts(ctx, "+4915112345678")
    assert len(texts) == 1
    assert "Offers" in texts[0] and "STOP" in texts[0]
