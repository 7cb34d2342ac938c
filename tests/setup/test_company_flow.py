"""Controller data and the first-run checklist; the notice and Art. 30 record use them (#12 items 1, 7)."""

from __future__ import annotations

import pytest

from konsent.domain.errors import InvalidInput
from konsent.flows.organisation import company, tenants
from konsent.flows.privacy import transparency
from tests.setup.support import SLUG, bare_tenant, make_company, subscribe

GOOD = {
    "legal_name": "Kaffee GmbH",
    "address": "Röstweg 1, 20095 Hamburg",
    "representative": "Erika Bohne",
    "supervisory_authority": "HmbBfDI",
    "privacy_url": "https://kaffee.example/datenschutz",
}


def _steps(ctx) -> dict[str, bool]:
    with ctx.db.read() as s:
        return {x.key: x.done for x in company.checklist(s, tenants.tenant_by_slug(s, SLUG))}


def test_a_new_tenant_starts_with_every_setup_step_open(ctx):
    bare_tenant(ctx)
    assert _steps(ctx) == {
        "company": False,
        "topics": False,
        "texts": False,
        "channel": False,
        "widget": False,
    }


def test_the_checklist_is_complete_after_the_first_confirmed_sign_up(ctx):
    co = make_company(ctx)
    assert _steps(ctx) == {"company": True, "topics": True, "texts": True, "channel": True, "widget": False}
    subscribe(ctx, co, "+49 151 0000031", ["kurse"])
    assert all(_steps(ctx).values())


@pytest.mark.parametrize(
    "change",
    [{"legal_name": ""}, {"privacy_url": "javascript:alert(1)"}, {"time_zone": "Mars/Olympus"},
     {"default_locale": "fr"}, {"privacy_version": ""}, {"address": "x" * 501}],
)  # fmt: skip
def test_bad_company_data_is_refused_and_nothing_is_half_saved(ctx, change):
    bare_tenant(ctx)
    with pytest.raises(InvalidInput), ctx.db.write() as s:
        company.update_company(
            s, tenants.tenant_by_slug(s, SLUG), {**GOOD, "time_zone": "Europe/Vienna", **change}
        )
    with ctx.db.read() as s:
        t = tenants.tenant_by_slug(s, SLUG)
        assert company.controller(t)["legal_name"] == "" and t.privacy_url == ""
        assert company.time_zone(t) == company.DEFAULT_TIME_ZONE


def test_company_data_is_saved_together(ctx):
    bare_tenant(ctx)
    with ctx.db.write() as s:
        company.update_company(s, tenants.tenant_by_slug(s, SLUG), {**GOOD, "time_zone": "Europe/Vienna",
                                                                    "default_locale": "en"})  # fmt: skip
    with ctx.db.read() as s:
        c = company.company(tenants.tenant_by_slug(s, SLUG))
    assert (c.controller["representative"], c.time_zone, c.default_locale) == (
        "Erika Bohne",
        "Europe/Vienna",
        "en",
    )


def test_the_privacy_notice_and_art30_record_name_the_controller_from_the_setup(ctx):
    make_company(ctx)
    with ctx.db.read() as s:
        t = tenants.tenant_by_slug(s, SLUG)
        notice = transparency.privacy_notice(ctx, s, t, "de")
        record = transparency.art30_record(ctx, s, t, "de")
    for doc in (notice, record):
        assert "Röstweg 1, 20095 Hamburg" in doc and "Erika Bohne" in doc and "HmbBfDI" in doc
        assert "datenschutz@kaffee.example" in doc


@pytest.mark.parametrize("fragment", ["this installation", "no transfer", "safeguard", "transfers to Meta"])
def test_the_german_notice_and_record_have_no_english_fragments(ctx, fragment):
    make_company(ctx)
    with ctx.db.write() as s:
        t = tenants.tenant_by_slug(s, SLUG)
        tenants.create_channel_account(ctx, s, t, "whatsapp", "WhatsApp", provider_ref="123",
                                       settings={"phone_number": "+49301234567"})  # fmt: skip
    with ctx.db.read() as s:
        t = tenants.tenant_by_slug(s, SLUG)
        docs = transparency.privacy_notice(ctx, s, t, "de") + transparency.art30_record(ctx, s, t, "de")
    assert fragment not in docs
    assert "keine Übermittlung" in docs and "Übermittlung an Meta Platforms Inc., USA" in docs
