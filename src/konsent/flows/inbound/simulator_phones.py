"""Who may play which simulated phone, and which simulator page a link opens (CH1, S8, #13).

A simulator phone belongs to the browser that first used it: the browser holds a random
secret in an HttpOnly cookie, konsent keeps only a keyed hash of it next to the phone's
blind index. A browser can send as, read the mailbox of and acknowledge messages of its
own phones only. A number that konsent already knows on the account (a contact made some
other way) cannot be taken over by any browser.

A simulator page is opened with a key (`<account id>.<MAC>`, see
`channels.simulator.page_key`), so guessing account ids reveals nothing; only the demo
tenant's simulator opens without one.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from konsent.channels.simulator import page_key
from konsent.domain.errors import NotFound, PermissionDenied
from konsent.flows.context import Konsent
from konsent.flows.inbound.simulator import normalize_phone
from konsent.flows.organisation import tenants
from konsent.store.tables import ChannelAccount, ContactIdentity, SimulatorMail, SimulatorPhone, Tenant

DEMO_SLUG = "demo"
BROWSER_SECRET_BYTES = 32


def new_browser_secret() -> str:
    """The secret a browser keeps in its simulator cookie."""
    return secrets.token_urlsafe(BROWSER_SECRET_BYTES)


@dataclass(frozen=True)
class PhonePage:
    """The simulator account a phone page talks to: its id, its page key and whose it is."""

    account_id: int
    key: str
    tenant_name: str


def open_page(ctx: Konsent, key: str | None) -> PhonePage:
    """The account behind a page key, or the demo tenant's simulator without one; NotFound else."""
    with ctx.db.read() as s:
        if not key:
            tenant = s.scalars(select(Tenant).where(Tenant.slug == DEMO_SLUG)).one_or_none()
            if tenant is None:
                raise NotFound()
            acc = next((a for a in tenants.channel_accounts(s, tenant.id) if a.kind == "simulator"), None)
        else:
            acc = _account_by_key(s, ctx, key)
        if acc is None or acc.kind != "simulator" or not acc.active:
            raise NotFound()
        expected = page_key(tenants.account_config(ctx, s, acc))
        if not expected or (key and not hmac.compare_digest(key, expected)):
            raise NotFound()
        owner = s.get(Tenant, acc.tenant_id)
        assert owner is not None
        return PhonePage(acc.id, expected, owner.name)


def _account_by_key(s: Session, ctx: Konsent, key: str) -> ChannelAccount | None:
    head = key.split(".", 1)[0]
    if not head.isdigit() or len(head) > 18:
        return None
    return s.get(ChannelAccount, int(head))


def _browser_hash(ctx: Konsent, s: Session, tenant_id: int, browser: str) -> str:
    return ctx.keys.index(s, tenant_id, "sim-browser", browser)


def claim_phone(ctx: Konsent, account_id: int, phone: str, browser: str) -> str:
    """Let this browser act as `phone`: its own phone, or a number new to the account, which
    becomes its own. PermissionDenied for another browser's phone or a known contact's number.
    Returns the phone in E.164."""
    address = normalize_phone(phone)
    if not browser:
        raise PermissionDenied()
    for _ in range(2):  # a second round only after losing a race for the same new number
        try:
            with ctx.db.write() as s:
                acc = s.get(ChannelAccount, account_id)
                if acc is None or acc.kind != "simulator":
                    raise NotFound()
                idx = ctx.keys.index(s, acc.tenant_id, "sim-mail", address)
                mine = _browser_hash(ctx, s, acc.tenant_id, browser)
                row = s.scalars(
                    select(SimulatorPhone).where(
                        SimulatorPhone.channel_account_id == acc.id, SimulatorPhone.address_index == idx
                    )
                ).one_or_none()
                if row is not None:
                    if not hmac.compare_digest(row.browser_hash, mine):
                        raise PermissionDenied()
                    return address
                known = s.scalars(
                    select(ContactIdentity.id).where(
                        ContactIdentity.tenant_id == acc.tenant_id,
                        ContactIdentity.channel_account_id == acc.id,
                        ContactIdentity.address_index == ctx.keys.index(s, acc.tenant_id, acc.kind, address),
                    )
                ).first()
                if known is not None:
                    raise PermissionDenied()
                s.add(
                    SimulatorPhone(
                        tenant_id=acc.tenant_id,
                        channel_account_id=acc.id,
                        address_index=idx,
                        browser_hash=mine,
                    )
                )
                return address
        except IntegrityError:
            continue
    raise PermissionDenied()


def owns_phone(ctx: Konsent, account_id: int, phone: str, browser: str) -> bool:
    """Whether this browser made this phone (only then may it read the phone's mailbox)."""
    if not browser:
        return False
    address = normalize_phone(phone)
    with ctx.db.read() as s:
        acc = s.get(ChannelAccount, account_id)
        if acc is None:
            return False
        row = s.scalars(
            select(SimulatorPhone.browser_hash).where(
                SimulatorPhone.channel_account_id == acc.id,
                SimulatorPhone.address_index == ctx.keys.index(s, acc.tenant_id, "sim-mail", address),
            )
        ).one_or_none()
        return row is not None and hmac.compare_digest(row, _browser_hash(ctx, s, acc.tenant_id, browser))


def own_provider_ids(ctx: Konsent, account_id: int, phone: str, browser: str, ids: list[str]) -> list[str]:
    """Of `ids`, those konsent sent to this browser's phone: a browser acknowledges only its own mail."""
    if not ids or not owns_phone(ctx, account_id, phone, browser):
        return []
    address = normalize_phone(phone)
    with ctx.db.read() as s:
        acc = s.get(ChannelAccount, account_id)
        assert acc is not None
        idx = ctx.keys.index(s, acc.tenant_id, "sim-mail", address)
        return list(
            s.scalars(
                select(SimulatorMail.provider_id).where(
                    SimulatorMail.channel_account_id == acc.id,
                    SimulatorMail.address_index == idx,
                    SimulatorMail.provider_id.in_(ids[:200]),
                )
            ).all()
        )
