"""Outgoing-webhook rules as pure functions: signature, tolerance, filters, sources, URLs (M4, S8)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from konsent.domain import webhooks as rules


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"id":"evt_1"}'
    expected = hmac.new(b"whsec_x", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert rules.signature_header(["whsec_x"], 1700000000, body) == f"t=1700000000,v1={expected}"


def test_verify_refuses_a_stale_timestamp_a_changed_body_and_another_secret():
    body = b"{}"
    header = rules.signature_header(["s1"], 1000, body)
    assert rules.verify("s1", header, body, 1000 + rules.TOLERANCE_SECONDS)
    assert not rules.verify("s1", header, body, 1000 + rules.TOLERANCE_SECONDS + 1)
    assert not rules.verify("s1", header, b"{ }", 1000)
    assert not rules.verify("s2", header, body, 1000)
    assert not rules.verify("s1", "v1=abc", body, 1000)


def test_during_rotation_either_secret_verifies():
    header = rules.signature_header(["new", "old"], 5, b"x")
    assert rules.verify("new", header, b"x", 5) and rules.verify("old", header, b"x", 5)


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("keyword", "keyword"),
        ("staff:user:3", "staff"),
        ("staff:token:7", "api"),
        ("provider_opt_out", "provider"),
        ("provider_preference", "provider"),
        ("objection:portal", "widget"),
        ("objection:email", "staff"),
    ],
)
def test_withdrawal_sources_map_to_the_documented_kinds(source, kind):
    assert rules.consent_source(source) == kind


def test_filters_take_named_events_or_all():
    assert rules.wants(["*"], "contact.erased") and rules.wants(["contact.erased"], "contact.erased")
    assert not rules.wants(["consent.granted"], "contact.erased")


@pytest.mark.parametrize(
    "url", ["http://a.example/", "https://127.0.0.2/", "https://[::ffff:10.0.0.1]/", "https://x.internal/"]
)
def test_private_or_plain_http_urls_are_refused_unless_allowed(url):
    with pytest.raises(rules.UrlRefused):
        rules.check_url(url, allow_private=False)
    assert rules.check_url(url, allow_private=True) == url


def test_public_https_urls_pass():
    assert (
        rules.check_url(" https://crm.example.com/hook ", allow_private=False)
        == "https://crm.example.com/hook"
    )
