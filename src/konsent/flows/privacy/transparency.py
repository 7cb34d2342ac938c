"""Transparency: privacy-notice block and Art. 30 record from the tenant's real configuration (T1-T3).

Both documents are generated from the same facts: the tenant's channel accounts and what
their adapters declare (provider, processing region, transfer safeguard), its topics and
their legal bases, and its retention rules. They are legal texts in two languages, kept
here side by side rather than as single msgids, so each reads as a whole.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from konsent.domain.retention import Category
from konsent.flows.context import Konsent
from konsent.flows.organisation import company, tenants
from konsent.flows.privacy import retention
from konsent.flows.texts import N_
from konsent.i18n import t
from konsent.store.tables import Tenant

SHORT_NOTICE = N_(
    "{tenant} processes your number and messages to answer you and, only with your consent, "
    "to send newsletters."
)


def short_notice(ctx: Konsent, s: Session, tenant: Tenant, locale: str) -> str:
    """The one-sentence notice the INFO keyword answers with (T3)."""
    return t(locale, SHORT_NOTICE, tenant=tenant.name)


@dataclass(frozen=True)
class ChannelFact:
    name: str
    provider: str
    region: str
    safeguard: str


def facts(ctx: Konsent, s: Session, tenant: Tenant, locale: str = "en") -> dict[str, Any]:
    """What both documents are made of, read from the live configuration, in `locale`."""
    chans = []
    for acc in tenants.channel_accounts(s, tenant.id):
        adapter = ctx.adapter(acc.kind)
        caps = adapter.capabilities
        region = t(locale, caps.processing_region) if caps.processing_region else ""
        safeguard = t(locale, caps.safeguard) if caps.safeguard else ""
        chans.append(ChannelFact(acc.name, adapter.label, region, safeguard))
    return {
        "tenant": tenant,
        "controller": company.controller(tenant),
        "channels": chans,
        "topics": [
            (tp.slug, tp.names.get("de") or tp.slug, tp.names.get("en") or tp.slug)
            for tp in tenants.topics(s, tenant.id)
        ],
        "rules": {r.category: r.hours for r in retention.rules(s, tenant.id)},
    }


def _period(hours: int, locale: str) -> str:
    if hours % (365 * 24) == 0:
        n, unit = hours // (365 * 24), ("Jahr", "Jahre") if locale == "de" else ("year", "years")
    elif hours % 24 == 0 and hours >= 72:
        n, unit = hours // 24, ("Tag", "Tage") if locale == "de" else ("day", "days")
    else:
        n, unit = hours, ("Stunde", "Stunden") if locale == "de" else ("hour", "hours")
    return f"{n} {unit[0] if n == 1 else unit[1]}"


_RET_LABEL = {
    "de": {
        Category.UNCONFIRMED_OPTINS: "Nicht bestätigte Anmeldungen",
        Category.MESSAGES: "Nachrichten, nach Abschluss der Unterhaltung",
        Category.INACTIVE_CONTACTS: "Kontakte ohne aktiven Zweck, nach der letzten Aktivität",
        Category.EXPORTS: "Datenauskünfte (spätestens; sonst sofort nach dem Download)",
        Category.RAW_WEBHOOKS: "Rohdaten eingehender Ereignisse",
        Category.AUDIT_LOG: "Protokoll der Zugriffe durch Mitarbeitende",
    },
    "en": {
        Category.UNCONFIRMED_OPTINS: "Unconfirmed sign-ups",
        Category.MESSAGES: "Messages, after the conversation was closed",
        Category.INACTIVE_CONTACTS: "Contacts without an active purpose, after their last activity",
        Category.EXPORTS: "Data exports (at the latest; otherwise right after download)",
        Category.RAW_WEBHOOKS: "Raw inbound event records",
        Category.AUDIT_LOG: "Log of staff access",
    },
}


def privacy_notice(ctx: Konsent, s: Session, tenant: Tenant, locale: str) -> str:
    """A Markdown block for the tenant's privacy policy (T1)."""
    f = facts(ctx, s, tenant, locale)
    de = locale == "de"
    lines = [
        "## Messenger-Kommunikation" if de else "## Messenger communication",
        "",
        _controller_sentence(tenant, f["controller"], de),
        "",
        (
            "Wenn Sie uns über einen Messenger schreiben oder unseren "
            "Newsletter per Messenger abonnieren, verarbeiten wir Ihre Telefonnummer bzw. Kennung beim "
            "Messenger, Ihren Profilnamen, Ihre Nachrichten und deren Zustellstatus. Die Daten werden "
            "verschlüsselt in unserer eigenen Datenbank gespeichert (Software: konsent)."
            if de
            else "When you write to us through a messenger or subscribe "
            "to our newsletter by messenger, we process your phone number or messenger id, your profile "
            "name, your messages and their delivery status. The data is stored encrypted in our own "
            "database (software: konsent)."
        ),
        "",
        "### Zwecke und Rechtsgrundlagen" if de else "### Purposes and legal bases",
        "",
        (
            "- Beantwortung Ihrer Anfragen in einer von Ihnen begonnenen Unterhaltung: "
            "Art. 6 Abs. 1 lit. b DSGVO (Vertrag/Anbahnung) bzw. lit. f (berechtigtes Interesse an der "
            "Beantwortung). Daraus folgt keine Einwilligung in Werbung."
            if de
            else "- Answering your enquiries in a conversation you started: Art. 6(1)(b) GDPR "
            "(contract or pre-contract) or (f) (legitimate interest in answering). This never implies "
            "consent to advertising."
        ),
    ]
    for _slug, name_de, name_en in f["topics"]:
        lines.append(
            f"- Newsletter „{name_de}“: Art. 6 Abs. 1 lit. a DSGVO (Ihre Einwilligung, jederzeit widerrufbar "
            "mit STOP)."
            if de
            else f'- Newsletter "{name_en}": Art. 6(1)(a) GDPR (your consent, revocable at any time '
            "with STOP)."
        )
    lines += ["", "### Empfänger und Drittlandübermittlung" if de else "### Recipients and transfers", ""]
    if not f["channels"]:
        lines.append(
            "- Keine Messenger-Kanäle eingerichtet." if de else "- No messenger channels configured."
        )
    for c in f["channels"]:
        lines.append(
            f"- {c.provider} ({c.name}): {c.region or '-'}; Garantie: {c.safeguard or '-'}"
            if de
            else f"- {c.provider} ({c.name}): {c.region or '-'}; safeguard: {c.safeguard or '-'}"
        )
    lines += ["", "### Speicherdauer" if de else "### Retention", ""]
    for cat in Category:
        lines.append(f"- {_RET_LABEL['de' if de else 'en'][cat]}: {_period(f['rules'][cat], locale)}")
    lines += [
        "",
        "### Ihre Rechte" if de else "### Your rights",
        "",
        (
            "Sie haben das Recht auf Auskunft, Berichtigung, Löschung, Einschränkung, Datenübertragbarkeit "
            "und Widerspruch gegen Werbung sowie auf Beschwerde bei einer Aufsichtsbehörde. Im Chat genügt: "
            "DATEN (Auskunft als Datei), LÖSCHEN (Löschung, mit Bestätigung), STOP (Abmeldung), "
            "INFO (dieser Hinweis)."
            if de
            else "You have the right of access, rectification, erasure, restriction, portability and to "
            "object to advertising, and to lodge a complaint with a supervisory authority. In the chat, "
            "send MY DATA (export as a file), DELETE (erasure, with confirmation), STOP (unsubscribe), "
            "INFO (this notice)."
        ),
    ]
    return "\n".join(lines) + "\n"


def _controller_sentence(tenant: Tenant, ctrl: dict[str, str], de: bool) -> str:
    """Who is responsible, and how to reach them (Art. 13(1)(a), (b) GDPR), from the setup."""
    name = ctrl["legal_name"] or tenant.name
    who = ", ".join(x for x in (name, ctrl["address"]) if x)
    parts = [f"Verantwortlich ist {who}." if de else f"The controller is {who}."]
    if ctrl["representative"]:
        parts.append(
            f"Vertreten durch {ctrl['representative']}."
            if de
            else f"Represented by {ctrl['representative']}."
        )
    if ctrl["dpo_contact"]:
        parts.append(
            f"Unsere Datenschutzbeauftragte bzw. unseren Datenschutzbeauftragten erreichen Sie unter "
            f"{ctrl['dpo_contact']}."
            if de
            else f"Our data-protection officer can be reached at {ctrl['dpo_contact']}."
        )
    if ctrl["supervisory_authority"]:
        parts.append(
            f"Zuständige Aufsichtsbehörde: {ctrl['supervisory_authority']}."
            if de
            else f"Competent supervisory authority: {ctrl['supervisory_authority']}."
        )
    return " ".join(parts)


def art30_record(ctx: Konsent, s: Session, tenant: Tenant, locale: str = "de") -> str:
    """The record of processing activities for messenger communication, as Markdown (T2)."""
    f = facts(ctx, s, tenant, locale)
    de = locale == "de"
    ctrl = f["controller"]
    topics_de = ", ".join(n for _, n, _ in f["topics"]) or "-"
    topics_en = ", ".join(n for _, _, n in f["topics"]) or "-"
    rows = [
        (
            "Verantwortlicher" if de else "Controller",
            ", ".join(x for x in (ctrl["legal_name"] or tenant.name, ctrl["address"]) if x),
        ),
        ("Vertreten durch" if de else "Represented by", ctrl["representative"] or "-"),
        ("Datenschutzbeauftragte(r)" if de else "Data-protection officer", ctrl["dpo_contact"] or "-"),
        (
            "Zuständige Aufsichtsbehörde" if de else "Supervisory authority",
            ctrl["supervisory_authority"] or "-",
        ),
        (
            "Bezeichnung der Verarbeitung" if de else "Processing activity",
            "Messenger-Kundenkommunikation und Newsletter"
            if de
            else "Messenger customer communication and newsletters",
        ),
        (
            "Zwecke" if de else "Purposes",
            f"Beantwortung von Anfragen (Art. 6 Abs. 1 lit. b/f DSGVO); Newsletter {topics_de} "
            "(Art. 6 Abs. 1 lit. a DSGVO)"
            if de
            else f"Answering enquiries (Art. 6(1)(b)/(f) GDPR); newsletters {topics_en} (Art. 6(1)(a) GDPR)",
        ),
        (
            "Kategorien betroffener Personen" if de else "Categories of data subjects",
            "Kunden, Interessenten, Newsletter-Abonnenten"
            if de
            else "Customers, prospects, newsletter subscribers",
        ),
        (
            "Kategorien personenbezogener Daten" if de else "Categories of personal data",
            "Telefonnummer/Messenger-Kennung, Profilname, Nachrichteninhalte, Zustellstatus, "
            "Einwilligungsnachweise (mit verschlüsselten Hashes von IP und Browser)"
            if de
            else "Phone number or messenger id, profile name, message contents, delivery statuses, "
            "consent evidence (with keyed hashes of IP and browser)",
        ),
        (
            "Empfänger" if de else "Recipients",
            "; ".join(f"{c.provider} ({c.region or '-'})" for c in f["channels"]) or "-",
        ),
        (
            "Drittlandübermittlungen und Garantien" if de else "Third-country transfers and safeguards",
            "; ".join(f"{c.provider}: {c.safeguard or '-'}" for c in f["channels"]) or "-",
        ),
        (
            "Löschfristen" if de else "Erasure periods",
            "; ".join(
                f"{_RET_LABEL['de' if de else 'en'][cat]}: {_period(f['rules'][cat], locale)}"
                for cat in Category
            ),
        ),
        (
            "Technische und organisatorische Maßnahmen" if de else "Technical and organisational measures",
            "Verschlüsselung je Kontakt (AES-256-GCM, Schlüssel je Kontakt, je Mandant und Hauptschlüssel), "
            "Suche über Blind-Index, Crypto-Shredding bei Löschung, Rollen und Rechte, hash-verkettetes "
            "Zugriffsprotokoll, keine personenbezogenen Daten in Logdateien"
            if de
            else "Per-contact encryption (AES-256-GCM; contact, tenant and master keys), blind-index "
            "look-ups, crypto-shredding on erasure, roles and permissions, hash-chained access log, "
            "no personal data in log files",
        ),
    ]
    title = (
        "Verzeichnis von Verarbeitungstätigkeiten (Art. 30 DSGVO)"
        if de
        else "Record of processing (Art. 30 GDPR)"
    )
    out = [f"# {title}", "", "| | |", "|---|---|"]
    for k, v in rows:
        out.append(f"| {k} | {v.replace('|', '/')} |")
    return "\n".join(out) + "\n"


def markdown_to_html(md: str) -> str:
    """Just enough Markdown for these two documents: headings, lists, tables, paragraphs."""
    e = html.escape
    out: list[str] = []
    in_list = in_table = False
    for line in md.splitlines():
        if in_list and not line.startswith("- "):
            out.append("</ul>")
            in_list = False
        if in_table and not line.startswith("|"):
            out.append("</table>")
            in_table = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{e(line[level:].strip())}</h{level}>")
        elif line.startswith("- "):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{e(line[2:])}</li>")
        elif line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= {"-"} for c in cells):
                continue
            if not in_table:
                out.append("<table>")
                in_table = True
            if any(cells):
                out.append("<tr><th>" + e(cells[0]) + "</th><td>" + e(cells[-1]) + "</td></tr>")
        elif line.strip():
            out.append(f"<p>{e(line)}</p>")
    if in_list:
        out.append("</ul>")
    if in_table:
        out.append("</table>")
    return "\n".join(out)


def tenant_of(s: Session, tenant_id: int) -> Tenant:
    tenant = s.get(Tenant, tenant_id)
    if tenant is None:
        from konsent.domain.errors import NotFound

        raise NotFound()
    return tenant
