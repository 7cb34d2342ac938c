"""CSV import of existing contacts: consent only with evidence per row, suppression respected (C7).

Validate every row first, then write all accepted rows in one transaction: a broken file
imports nothing half. Rows without evidence become service-only contacts (no consent) or
are rejected, as the caller chooses; every row gets a reason in the report.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.domain.errors import InvalidInput
from konsent.domain.purposes import ConsentStatus, Purpose
from konsent.flows import audit
from konsent.flows.consent.grants import grant_consent
from konsent.flows.contacts import get_or_create_contact
from konsent.flows.context import Konsent
from konsent.flows.organisation.tenants import get_account, topics
from konsent.flows.privacy.rights import is_suppressed
from konsent.store.tables import ChannelAccount, Consent, ConsentText, Contact
from konsent.store.types import utcnow

REQUIRED = ("address",)
EVIDENCE = ("consent_text_version", "consent_time", "source")
OPTIONAL = ("name", "locale", "topics")
MAX_ROWS = 100_000
MAX_FIELD = 500
MAX_BYTES = 20_000_000


@dataclass(frozen=True)
class RowResult:
    line: int
    outcome: str  # consented / service_only / rejected
    msgid: str = ""  # the reason as a catalog message with {placeholders}, shown in the reader's language
    params: dict[str, str] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        """The reason in English (CLI, JSON report)."""
        return self.msgid.format(**self.params) if self.msgid else ""


@dataclass
class ImportReport:
    rows: list[RowResult] = field(default_factory=list)
    committed: bool = False

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.rows if r.outcome == outcome)

    def as_dict(self) -> dict[str, object]:
        return {
            "committed": self.committed,
            "consented": self.count("consented"),
            "service_only": self.count("service_only"),
            "rejected": self.count("rejected"),
            "rows": [
                {
                    "line": r.line,
                    "outcome": r.outcome,
                    "reason": r.reason,
                    "msgid": r.msgid,
                    "params": r.params,
                }
                for r in self.rows
            ],
        }


@dataclass(frozen=True)
class _Row:
    line: int
    address: str
    name: str
    locale: str | None
    topics: list[str]
    evidence: dict[str, str] | None
    text_version: int
    consent_time: datetime | None


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM) only; anything else is a clear error, not mojibake."""
    if len(data) > MAX_BYTES:
        raise InvalidInput("file larger than {limit} bytes", limit=MAX_BYTES)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            "the file is not UTF-8 (byte {byte}); save it as 'CSV UTF-8' and try again", byte=exc.start
        ) from exc


def _normalize(address: str, kind_is_phone: bool) -> str:
    if not kind_is_phone:
        return address.strip()
    num = phonenumbers.parse(address, "DE")
    if not phonenumbers.is_valid_number(num):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def normalize_address(ctx: Konsent, account: ChannelAccount, address: str) -> str:
    """An address as the importer stores it (E.164 for phone channels); ValueError if it is none."""
    try:
        return _normalize(address, ctx.adapter(account.kind).capabilities.address_is_phone)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("not a valid phone number") from exc


def _parse_time(value: str) -> datetime:
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("consent_time is not a date and time like 2025-03-01T10:00:00+01:00") from None
    if dt.tzinfo is None:
        raise ValueError("consent_time needs a time zone, e.g. 2025-03-01T10:00:00+01:00")
    return dt.astimezone(UTC)


def validate(
    ctx: Konsent,
    s: Session,
    account: ChannelAccount,
    text: str,
    *,
    without_evidence: str = "service_only",
    default_topics: list[str] | None = None,
) -> tuple[list[_Row], ImportReport]:
    """Check every row of a CSV file; nothing is written here."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in (*REQUIRED, *EVIDENCE, *OPTIONAL)]
    if missing or unknown:
        raise InvalidInput(
            "columns: missing {missing}, unknown {unknown}; expected {expected}",
            missing=", ".join(missing) or "-",
            unknown=", ".join(unknown) or "-",
            expected=", ".join((*REQUIRED, *EVIDENCE, *OPTIONAL)),
        )
    reader.fieldnames = header
    try:
        return validate_records(
            ctx,
            s,
            account,
            ((reader.line_num, raw) for raw in reader),
            without_evidence=without_evidence,
            default_topics=default_topics,
        )
    except csv.Error as exc:
        raise InvalidInput("line {line}: {problem}", line=reader.line_num, problem=str(exc)) from exc


def validate_records(
    ctx: Konsent,
    s: Session,
    account: ChannelAccount,
    records: Iterable[tuple[int, dict[Any, Any]]],
    *,
    without_evidence: str = "service_only",
    default_topics: list[str] | None = None,
) -> tuple[list[_Row], ImportReport]:
    """Check every record (line number, column → value); nothing is written here (C7)."""
    if without_evidence not in ("service_only", "reject"):
        raise InvalidInput(detail="without_evidence must be service_only or reject")
    known_topics = {tp.slug for tp in topics(s, account.tenant_id)}
    versions = set(
        s.scalars(select(ConsentText.version).where(ConsentText.tenant_id == account.tenant_id)).all()
    )
    phone_like = ctx.adapter(account.kind).capabilities.address_is_phone
    report = ImportReport()
    rows: list[_Row] = []
    seen: set[str] = set()
    now = utcnow()
    for line, raw in records:
        if len(rows) + len(report.rows) >= MAX_ROWS:
            raise InvalidInput("more than {limit} rows; split the file", limit=MAX_ROWS)

        def reject(msgid: str, line: int = line, **params: str) -> None:
            report.rows.append(RowResult(line, "rejected", msgid, params))

        if None in raw:
            reject("more fields than columns")
            continue
        values = {k: (v or "").strip() for k, v in raw.items()}
        too_long = [k for k, v in values.items() if len(v) > MAX_FIELD]
        if too_long:
            reject("field too long: {fields}", fields=", ".join(too_long))
            continue
        try:
            address = _normalize(values.get("address", ""), phone_like)
        except (ValueError, phonenumbers.NumberParseException):
            reject("address is not a valid phone number")
            continue
        if not address:
            reject("address is empty")
            continue
        if address in seen:
            reject("duplicate of an earlier row")
            continue
        seen.add(address)
        locale = values.get("locale") or None
        if locale not in (None, "de", "en"):
            reject("locale must be de or en")
            continue
        wanted = [t for t in values.get("topics", "").replace(";", ",").split(",") if t.strip()]
        wanted = [t.strip() for t in wanted] or list(default_topics or [])
        bad = [t for t in wanted if t not in known_topics]
        if bad:
            reject("unknown topic: {topics}", topics=", ".join(bad))
            continue
        ev = {k: values.get(k, "") for k in EVIDENCE}
        evidence: dict[str, str] | None = ev if all(ev.values()) and wanted else None
        version, when = 0, None
        if any(ev.values()) and not all(ev.values()):
            reject(
                "incomplete evidence: {fields} missing",
                fields=", ".join(k for k, v in ev.items() if not v),
            )
            continue
        if evidence is not None:
            try:
                version = int(ev["consent_text_version"])
            except ValueError:
                reject("consent_text_version is not a whole number")
                continue
            try:
                when = _parse_time(ev["consent_time"])
            except ValueError as exc:
                reject(str(exc))  # one of _parse_time's two messages, both in the catalog
                continue
            if version not in versions:
                reject("consent text version {version} does not exist", version=str(version))
                continue
            if when > now:
                reject("consent_time lies in the future")
                continue
        if is_suppressed(ctx, s, account.tenant_id, address):
            reject("suppressed: this number withdrew or was erased; only a fresh opt-in brings it back")
            continue
        if evidence is None and without_evidence == "reject":
            reject("no consent evidence (consent_text_version, consent_time, source) and no topic")
            continue
        rows.append(_Row(line, address, values.get("name", ""), locale, wanted, evidence, version, when))
    return rows, report


def _withdrawn(s: Session, contact: Contact, purposes: list[str]) -> list[str]:
    return list(
        s.scalars(
            select(Consent.purpose).where(
                Consent.tenant_id == contact.tenant_id,
                Consent.contact_id == contact.id,
                Consent.purpose.in_(purposes),
                Consent.status == ConsentStatus.WITHDRAWN,
            )
        ).all()
    )


def import_csv(
    ctx: Konsent,
    tenant_id: int,
    account_id: int,
    data: bytes,
    *,
    actor: str,
    without_evidence: str = "service_only",
    default_topics: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Validate all rows of a CSV file, then import the accepted ones in one transaction (C7)."""
    text = decode(data)
    return _import(
        ctx,
        tenant_id,
        account_id,
        lambda s, account: validate(
            ctx, s, account, text, without_evidence=without_evidence, default_topics=default_topics
        ),
        actor=actor,
        via="csv",
        progress=progress,
    )


def import_records(
    ctx: Konsent,
    tenant_id: int,
    account_id: int,
    records: list[dict[str, str]],
    *,
    actor: str,
    without_evidence: str = "service_only",
    session: Session | None = None,
) -> ImportReport:
    """The same checks and the same single transaction for contacts sent through the API (C7);
    in `session` when given (the API's idempotency key commits with it)."""
    unknown = sorted({k for r in records for k in r} - {*REQUIRED, *EVIDENCE, *OPTIONAL})
    if unknown:
        raise InvalidInput("unknown fields: {fields}", fields=", ".join(unknown))
    return _import(
        ctx,
        tenant_id,
        account_id,
        lambda s, account: validate_records(
            ctx, s, account, enumerate(records, start=1), without_evidence=without_evidence
        ),
        actor=actor,
        via="api",
        session=session,
    )


def _import(
    ctx: Konsent,
    tenant_id: int,
    account_id: int,
    check: Callable[[Session, ChannelAccount], tuple[list[_Row], ImportReport]],
    *,
    actor: str,
    via: str,
    progress: Callable[[int, int], None] | None = None,
    session: Session | None = None,
) -> ImportReport:
    with contextlib.nullcontext(session) if session is not None else ctx.db.write() as s:
        account = get_account(s, tenant_id, account_id)
        rows, report = check(s, account)
        for i, row in enumerate(rows):
            contact, _, _ = get_or_create_contact(
                ctx, s, account, row.address, name=row.name or None, locale=row.locale
            )
            purposes = [str(Purpose.newsletter(t)) for t in row.topics]
            blocked = _withdrawn(s, contact, purposes)
            if row.evidence is None:
                report.rows.append(RowResult(row.line, "service_only", "no consent evidence: no newsletter"))
            elif blocked:
                report.rows.append(
                    RowResult(
                        row.line,
                        "rejected",
                        "withdrawn earlier: {purposes} stays withdrawn",
                        {"purposes": ", ".join(blocked)},
                    )
                )
            else:
                assert row.consent_time is not None
                for p in purposes:
                    grant_consent(
                        s,
                        contact,
                        Purpose.parse(p),
                        text_version=row.text_version,
                        evidence={
                            "method": "import",
                            "source": row.evidence["source"],
                            "consent_text_version": row.text_version,
                            "consent_time": row.consent_time,
                            "imported_by": actor,
                            "channel_account_id": account.id,
                        },
                        channel_account_id=account.id,
                        at=row.consent_time,
                    )
                report.rows.append(RowResult(row.line, "consented"))
            if progress is not None:
                progress(i + 1, len(rows))
        report.rows.sort(key=lambda r: r.line)
        audit.record(
            s,
            tenant_id,
            actor,
            "contacts.import",
            f"account:{account.id}",
            via=via,
            consented=report.count("consented"),
            service_only=report.count("service_only"),
            rejected=report.count("rejected"),
        )
        report.committed = True
    return report
