"""What messages cost: the imported price table, estimates before a broadcast, the month's bill (CH6).

Prices are the operator's: a CSV per version (`konsent prices import FILE --valid-from DATE`),
valid from its date until the next version, per country and Meta pricing category. What a
message was charged as comes from the provider (`message_charges`, written by the status
webhooks); its price is the table's price on the day of the charge. An estimate counts the
audience per country and category and multiplies by the table in force now.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from konsent.channels import adapter_class
from konsent.domain import costs
from konsent.domain.errors import DomainError
from konsent.domain.events import StatusUpdate
from konsent.flows import audit
from konsent.store.tables import (
    Broadcast,
    ChannelAccount,
    ContactIdentity,
    Message,
    MessageCharge,
    MessageTemplate,
    Price,
    PriceList,
)
from konsent.store.types import utcnow


def priced(kind: str) -> bool:
    """Whether the provider of this channel kind charges per message (its capabilities say so)."""
    try:
        return adapter_class(kind).capabilities.priced_per_message
    except KeyError:
        return False


class PriceTableInvalid(DomainError):
    """A price CSV with broken lines: nothing was imported."""

    code = "invalid_price_table"
    message = "The price table was refused and nothing was stored."

    def __init__(self, problems: list[costs.PriceProblem]) -> None:
        super().__init__()
        self.problems = problems  # each an English msgid with its parameters


Table = dict[tuple[str, str], int]


# ------------------------------------------------------------------ price lists


def import_prices(
    s: Session,
    tenant_id: int,
    text: str,
    valid_from: datetime,
    *,
    currency: str = "EUR",
    source: str = "",
    actor: str = "",
) -> PriceList:
    """Store a new version of the price table, all or nothing (CH6); earlier versions stay."""
    rows, problems = costs.parse_price_csv(text)
    if problems:
        raise PriceTableInvalid(problems)
    currency = (currency or "EUR").strip().upper()[:3]
    pl = PriceList(
        tenant_id=tenant_id, valid_from=valid_from, currency=currency, source=source[:200],
        imported_by=actor[:120], imported_at=utcnow(),
    )  # fmt: skip
    s.add(pl)
    s.flush()
    s.add_all(
        Price(
            tenant_id=tenant_id,
            price_list_id=pl.id,
            country=r.country,
            category=r.category,
            price_micros=r.micros,
        )
        for r in rows
    )
    audit.record(
        s, tenant_id, actor or "operator", "prices.import", f"price_list:{pl.id}",
        valid_from=valid_from.isoformat(), rows=len(rows), currency=currency, source=source[:200],
    )  # fmt: skip
    return pl


@dataclass(frozen=True)
class PriceListInfo:
    id: int
    valid_from: datetime
    currency: str
    source: str
    imported_by: str
    imported_at: datetime
    rows: int
    current: bool


def price_lists(s: Session, tenant_id: int, now: datetime | None = None) -> list[PriceListInfo]:
    """Every imported version, newest first, with the one in force now marked (admin, CLI)."""
    now = now or utcnow()
    counts = dict(
        s.execute(
            select(Price.price_list_id, func.count(Price.id))
            .where(Price.tenant_id == tenant_id)
            .group_by(Price.price_list_id)
        )
        .tuples()
        .all()
    )
    lists = s.scalars(
        select(PriceList)
        .where(PriceList.tenant_id == tenant_id)
        .order_by(PriceList.valid_from.desc(), PriceList.id.desc())
    ).all()
    current = next((pl.id for pl in lists if pl.valid_from <= now), None)
    return [
        PriceListInfo(
            pl.id, pl.valid_from, pl.currency, pl.source, pl.imported_by, pl.imported_at,
            counts.get(pl.id, 0), pl.id == current,
        )
        for pl in lists
    ]  # fmt: skip


def list_in_force(s: Session, tenant_id: int, at: datetime) -> PriceList | None:
    return s.scalars(
        select(PriceList)
        .where(PriceList.tenant_id == tenant_id, PriceList.valid_from <= at)
        .order_by(PriceList.valid_from.desc(), PriceList.id.desc())
        .limit(1)
    ).first()


def table_of(s: Session, tenant_id: int, price_list_id: int) -> Table:
    return {
        (c, k): m
        for c, k, m in s.execute(
            select(Price.country, Price.category, Price.price_micros).where(
                Price.tenant_id == tenant_id, Price.price_list_id == price_list_id
            )
        ).tuples()
    }


def prices_in_force(s: Session, tenant_id: int, at: datetime) -> tuple[Table, str, PriceList | None]:
    """The table valid at `at`, its currency and version (an empty table when none was imported)."""
    pl = list_in_force(s, tenant_id, at)
    if pl is None:
        return {}, "EUR", None
    return table_of(s, tenant_id, pl.id), pl.currency, pl


# ------------------------------------------------------------------ charges (status webhooks)


def record_charge(s: Session, msg: Message, ev: StatusUpdate) -> None:
    """The slow path's twin of `domain.status_batch.charge_rows`: keep the pricing block once per message."""
    p = ev.pricing
    if p is None:
        return
    values = {
        "tenant_id": msg.tenant_id, "channel_account_id": msg.channel_account_id, "message_ref": msg.id,
        "purpose": (msg.purpose or "")[:80], "country": ev.country[:2], "category": p.category,
        "pricing_type": p.pricing_type, "pricing_model": p.pricing_model, "billable": p.billable,
        "month": ev.at.strftime("%Y-%m"), "at": ev.at,
    }  # fmt: skip
    dialect = s.get_bind().dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(MessageCharge)
    s.execute(ins.values(**values).on_conflict_do_nothing(index_elements=["tenant_id", "message_ref"]))


# ------------------------------------------------------------------ estimates


@dataclass(frozen=True)
class Line:
    """One line of an estimate or a bill."""

    country: str  # "" unknown
    category: str
    count: int
    unit_micros: int
    total_micros: int


@dataclass
class Estimate:
    """What a broadcast is expected to cost when every message is delivered (CH6)."""

    currency: str = "EUR"
    price_list_id: int | None = None
    lines: list[Line] = field(default_factory=list)
    total_micros: int = 0
    audience: int = 0
    unknown_country: int = 0  # contacts priced at the "*" row (their number's country is not known)

    def as_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "price_list_id": self.price_list_id,
            "total": costs.money(self.total_micros, self.currency).split()[0],
            "total_micros": self.total_micros,
            "audience": self.audience,
            "unknown_country": self.unknown_country,
            "lines": [
                {
                    "country": ln.country or None, "category": ln.category, "count": ln.count,
                    "unit_micros": ln.unit_micros, "total_micros": ln.total_micros,
                }
                for ln in self.lines
            ],
        }  # fmt: skip


def template_categories(s: Session, tenant_id: int, content: dict[str, Any]) -> dict[int, str]:
    """The pricing category of a broadcast's content per channel account: its template's CURRENT
    category where it uses one (the registry follows Meta's re-categorisations), else `service`."""
    name = content.get("template")
    if not name:
        return {}
    q = select(MessageTemplate.channel_account_id, MessageTemplate.category).where(
        MessageTemplate.tenant_id == tenant_id, MessageTemplate.name == name
    )
    if content.get("template_language"):
        q = q.where(MessageTemplate.language == content["template_language"])
    out: dict[int, str] = {}
    for acc, cat in s.execute(q).tuples():
        c = costs.category_of(cat)
        # several languages on one account: the dearer reading (marketing before utility)
        if out.get(acc) != "marketing":
            out[acc] = c
    return out


def draft_category(categories: dict[int, str], content: dict[str, Any], account_id: int) -> str:
    if content.get("template"):
        return categories.get(account_id, "marketing")  # unknown here: assume the dearest
    return "service"


def estimate_broadcast(
    s: Session, b: Broadcast, audience_query: Any, now: datetime | None = None
) -> Estimate:
    """Audience size per country and category × the price table in force (CH6).

    `audience_query` is the broadcast's audience (broadcast._audience); each contact is counted on
    the account the broadcast would use for them (its own account, else where they subscribed)."""
    now = now or utcnow()
    table, currency, pl = prices_in_force(s, b.tenant_id, now)
    sub = audience_query.subquery()
    if b.channel_account_id is not None:
        account: Any = literal(b.channel_account_id)
    else:  # where they subscribed, else their first account (as broadcast queuing picks it)
        first = aliased(ContactIdentity)
        fallback = (
            select(func.min(first.channel_account_id))
            .where(first.contact_id == sub.c.id, first.tenant_id == b.tenant_id)
            .scalar_subquery()
        )
        account = func.coalesce(sub.c.consent_account, fallback)
    acc_col = ContactIdentity.channel_account_id
    q = (
        select(acc_col, ChannelAccount.kind, ContactIdentity.country, func.count())
        .select_from(sub)
        .join(
            ContactIdentity,
            and_(
                ContactIdentity.contact_id == sub.c.id,
                ContactIdentity.tenant_id == b.tenant_id,
                acc_col == account,
            ),
        )
        .join(ChannelAccount, ChannelAccount.id == acc_col)
        .group_by(acc_col, ChannelAccount.kind, ContactIdentity.country)
    )
    categories = template_categories(s, b.tenant_id, b.content or {})
    tally: Tally[tuple[str, str]] = Tally()
    est = Estimate(currency=currency, price_list_id=pl.id if pl else None)
    for acc, kind, country, n in s.execute(q).tuples():
        est.audience += n
        if not priced(kind):
            tally[("", "free")] += n  # no per-message charge on this channel
            continue
        tally[(country or "", draft_category(categories, b.content or {}, acc))] += n
        if not country:
            est.unknown_country += n
    for (country, category), n in sorted(tally.items()):
        unit = 0 if category == "free" else costs.price(table, country or costs.OTHER, category)
        est.lines.append(Line(country, category, n, unit, unit * n))
        est.total_micros += unit * n
    return est


# ------------------------------------------------------------------ the bill


@dataclass(frozen=True)
class BillLine:
    month: str
    purpose: str
    channel: str  # the account's kind
    account: str  # the account's name
    messages: int  # messages the provider reported pricing for
    billable: int
    total_micros: int


def _list_case(s: Session, tenant_id: int) -> tuple[Any, dict[int, Table], dict[int, str]]:
    """A SQL expression naming the price list in force at each charge's time, and the tables."""
    lists = s.scalars(
        select(PriceList)
        .where(PriceList.tenant_id == tenant_id)
        .order_by(PriceList.valid_from.desc(), PriceList.id.desc())
    ).all()
    if not lists:
        return None, {}, {}
    expr = case(*((MessageCharge.at >= pl.valid_from, pl.id) for pl in lists), else_=None)
    return expr, {pl.id: table_of(s, tenant_id, pl.id) for pl in lists}, {pl.id: pl.currency for pl in lists}


def monthly_costs(
    s: Session, tenant_id: int, months: Iterable[str] | None = None
) -> tuple[list[BillLine], str]:
    """What went out, per month, purpose and channel account, priced at the table of its day (CH6)."""
    list_of, tables, currencies = _list_case(s, tenant_id)
    cols = [
        MessageCharge.month, MessageCharge.purpose, MessageCharge.channel_account_id,
        MessageCharge.country, MessageCharge.category, MessageCharge.billable,
    ]  # fmt: skip
    if list_of is not None:
        cols.append(list_of.label("list_id"))
    q = select(*cols, func.count()).where(MessageCharge.tenant_id == tenant_id).group_by(*cols)
    if months is not None:
        q = q.where(MessageCharge.month.in_(list(months)))
    accounts = {
        a.id: (a.kind, a.name)
        for a in s.scalars(select(ChannelAccount).where(ChannelAccount.tenant_id == tenant_id))
    }
    sums: dict[tuple[str, str, int], list[int]] = {}
    for row in s.execute(q).all():
        month, purpose, acc, country, category, billable = cast(tuple[str, str, int, str, str, bool], row[:6])
        list_id = cast(int, row[6]) if list_of is not None else None
        n = cast(int, row[-1])
        table = tables.get(list_id, {}) if list_id is not None else {}
        unit = costs.price(table, country or costs.OTHER, category) if billable else 0
        acc_sum = sums.setdefault((month, purpose, acc), [0, 0, 0])
        acc_sum[0] += n
        acc_sum[1] += n if billable else 0
        acc_sum[2] += unit * n
    lines = [
        BillLine(
            month,
            purpose,
            accounts.get(acc, ("", ""))[0],
            accounts.get(acc, ("", str(acc)))[1],
            v[0],
            v[1],
            v[2],
        )
        for (month, purpose, acc), v in sorted(
            sums.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2]), reverse=True
        )
    ]
    currency = next(iter(currencies.values()), "EUR")
    return lines, currency


def spent(s: Session, tenant_id: int, month: str, exclude_newsletters: bool = False) -> int:
    """The month's actual cost so far (for the budget: without broadcasts, which reserve theirs)."""
    lines, _ = monthly_costs(s, tenant_id, [month])
    return sum(
        ln.total_micros for ln in lines if not (exclude_newsletters and ln.purpose.startswith("newsletter:"))
    )


__all__ = [
    "BillLine",
    "Estimate",
    "PriceTableInvalid",
    "estimate_broadcast",
    "import_prices",
    "monthly_costs",
    "price_lists",
    "priced",
    "prices_in_force",
    "record_charge",
]
