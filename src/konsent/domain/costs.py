"""What a message costs: countries from numbers, pricing categories, price tables as data (CH6).

WhatsApp charges per delivered template message since 1 July 2025, by the recipient's country
(market) and the template's category; its status webhooks name the category and whether the
message is billable (`pricing`). The operator imports the prices (a CSV per version); konsent
estimates a broadcast before it is sent and sums what went out. Money is kept in millionths of
the price list's currency (integers, no floats).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MICROS = 1_000_000


def N_(msgid: str) -> str:
    """Mark a msgid for extraction; it is translated where it is shown."""
    return msgid


OTHER = "*"  # the price row for every country without its own

# Meta's pricing categories as the status webhooks name them (whatsapp-cloud.md §4.5).
CATEGORIES = (
    "marketing",
    "marketing_lite",
    "utility",
    "authentication",
    "authentication-international",
    "service",
    "referral_conversion",
)
PRICING_TYPES = ("regular", "free_customer_service", "free_entry_point")
PRICING_MODELS = ("PMP", "CBP")

# Country calling codes → ISO 3166 alpha-2 (longest prefix wins). NANP (+1) counts as US and
# +7 as RU: Meta prices North America and Russia/Kazakhstan as one market each.
CALLING_CODES: dict[str, str] = {
    "1": "US", "7": "RU", "20": "EG", "27": "ZA", "30": "GR", "31": "NL", "32": "BE", "33": "FR",
    "34": "ES", "36": "HU", "39": "IT", "40": "RO", "41": "CH", "43": "AT", "44": "GB", "45": "DK",
    "46": "SE", "47": "NO", "48": "PL", "49": "DE", "51": "PE", "52": "MX", "53": "CU", "54": "AR",
    "55": "BR", "56": "CL", "57": "CO", "58": "VE", "60": "MY", "61": "AU", "62": "ID", "63": "PH",
    "64": "NZ", "65": "SG", "66": "TH", "81": "JP", "82": "KR", "84": "VN", "86": "CN", "90": "TR",
    "91": "IN", "92": "PK", "93": "AF", "94": "LK", "95": "MM", "98": "IR", "212": "MA", "213": "DZ",
    "216": "TN", "218": "LY", "234": "NG", "254": "KE", "255": "TZ", "256": "UG", "263": "ZW",
    "351": "PT", "352": "LU", "353": "IE", "354": "IS", "355": "AL", "356": "MT", "357": "CY",
    "358": "FI", "359": "BG", "370": "LT", "371": "LV", "372": "EE", "373": "MD", "374": "AM",
    "375": "BY", "376": "AD", "377": "MC", "378": "SM", "380": "UA", "381": "RS", "382": "ME",
    "383": "XK", "385": "HR", "386": "SI", "387": "BA", "389": "MK", "420": "CZ", "421": "SK",
    "423": "LI", "852": "HK", "880": "BD", "886": "TW", "961": "LB", "962": "JO", "963": "SY",
    "964": "IQ", "965": "KW", "966": "SA", "967": "YE", "968": "OM", "970": "PS", "971": "AE",
    "972": "IL", "973": "BH", "974": "QA", "977": "NP", "994": "AZ", "995": "GE", "998": "UZ",
}  # fmt: skip
_ISO = frozenset(CALLING_CODES.values())
_BSUID = re.compile(r"^([A-Z]{2})\.")


def country_of(address: str | None) -> str:
    """The ISO country of an E.164 number (`+4917…`) or a WhatsApp BSUID (`DE.1234…`); "" unknown."""
    if not address:
        return ""
    m = _BSUID.match(address)
    if m:
        return m.group(1)
    digits = address[1:] if address.startswith("+") else ""
    if not digits.isdigit():
        return ""
    for n in (3, 2, 1):
        hit = CALLING_CODES.get(digits[:n])
        if hit:
            return hit
    return ""


def category_of(template_category: str | None) -> str:
    """The pricing category of a message: its template's category, or `service` for anything else."""
    cat = (template_category or "").lower()
    return cat if cat in ("marketing", "utility", "authentication") else "service"


@dataclass(frozen=True)
class Pricing:
    """A status webhook's `pricing` block, normalised."""

    category: str
    pricing_type: str = ""
    pricing_model: str = ""
    billable: bool = True


def pricing_of(block: Mapping[str, object]) -> Pricing | None:
    """Read a `pricing` object; None when it names no known category (nothing is guessed)."""
    cat = str(block.get("category") or "").lower()
    if cat not in CATEGORIES:
        return None
    ptype = str(block.get("type") or "").lower()
    model = str(block.get("pricing_model") or "").upper()
    billable = block.get("billable")
    if not isinstance(billable, bool):  # `billable` is slated for deprecation: derive it then
        billable = ptype not in ("free_customer_service", "free_entry_point")
    return Pricing(
        category=cat,
        pricing_type=ptype if ptype in PRICING_TYPES else "",
        pricing_model=model if model in PRICING_MODELS else "",
        billable=billable,
    )


# ------------------------------------------------------------------ price tables


@dataclass(frozen=True)
class PriceRow:
    country: str  # ISO alpha-2 or OTHER
    category: str
    micros: int


@dataclass(frozen=True)
class PriceProblem:
    line: int
    reason: str  # an English msgid with {placeholders}
    params: tuple[tuple[str, str], ...] = ()


def to_micros(text: str) -> int | None:
    """A decimal amount ("0.0613", "0,0613") in millionths; None when it is not one or negative."""
    try:
        value = Decimal(text.strip().replace(",", "."))
    except InvalidOperation:
        return None
    if not value.is_finite() or value < 0 or value > 1000:
        return None
    return int((value * MICROS).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def money(micros: int, currency: str = "EUR") -> str:
    """An amount for people: 2 decimals, 4 where cents do not say it (per-message prices: 0.1131)."""
    value = Decimal(micros) / MICROS
    cents = Decimal("0.01")
    places = cents if value == value.quantize(cents) or abs(value) >= 100 else Decimal("0.0001")
    return f"{value.quantize(places, rounding=ROUND_HALF_UP)} {currency}"


def _country_key(text: str) -> str | None:
    t = text.strip().upper()
    if t in (OTHER, "OTHER", "REST"):
        return OTHER
    if re.fullmatch(r"\+?\d{1,3}", t):
        return CALLING_CODES.get(t.lstrip("+"))
    return t if re.fullmatch(r"[A-Z]{2}", t) else None


def parse_price_csv(text: str) -> tuple[list[PriceRow], list[PriceProblem]]:
    """The rows of a price CSV (`country,category,price`; `;` works too), or every problem found.

    Country: ISO alpha-2 (`DE`), a calling code (`+49`) or `*` for every other country; category:
    one of `CATEGORIES`; price: per message, decimal point or comma. Header line required.
    """
    sample = text[:2000]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows: list[PriceRow] = []
    problems: list[PriceProblem] = []
    header = next(reader, None)
    names = [h.strip().lower() for h in header or []]
    if not {"country", "category", "price"} <= set(names):
        return [], [PriceProblem(1, N_("the first line must name the columns country, category and price"))]
    ci, ki, pi = names.index("country"), names.index("category"), names.index("price")
    seen: set[tuple[str, str]] = set()
    for line, rec in enumerate(reader, start=2):
        if not any(cell.strip() for cell in rec):
            continue
        if len(rec) <= max(ci, ki, pi):
            problems.append(PriceProblem(line, N_("line {line}: too few columns"), (("line", str(line)),)))
            continue
        country = _country_key(rec[ci])
        category = rec[ki].strip().lower()
        micros = to_micros(rec[pi])
        at = ("line", str(line))
        if country is None:
            problems.append(
                PriceProblem(line, N_("line {line}: unknown country {value}"), (at, ("value", rec[ci][:20])))
            )
        elif category not in CATEGORIES:
            problems.append(
                PriceProblem(line, N_("line {line}: unknown category {value}"), (at, ("value", rec[ki][:40])))
            )
        elif micros is None:
            problems.append(
                PriceProblem(line, N_("line {line}: {value} is not a price"), (at, ("value", rec[pi][:20])))
            )
        elif (country, category) in seen:
            problems.append(PriceProblem(line, N_("line {line}: country and category twice"), (at,)))
        else:
            seen.add((country, category))
            rows.append(PriceRow(country, category, micros))
    if not rows and not problems:
        problems.append(PriceProblem(1, N_("the file holds no prices")))
    return rows, problems


def price(table: Mapping[tuple[str, str], int], country: str, category: str) -> int:
    """The price of one message: the country's own row, else the `*` row, else 0 (not priced)."""
    hit = table.get((country, category))
    if hit is None:
        hit = table.get((OTHER, category), 0)
    return hit


def estimate(table: Mapping[tuple[str, str], int], audience: Iterable[tuple[str, str, int]]) -> int:
    """Sum of (country, category, count) × price: the cost of a broadcast before it is sent."""
    return sum(price(table, country, category) * n for country, category, n in audience)


__all__ = [
    "CATEGORIES",
    "MICROS",
    "OTHER",
    "PriceProblem",
    "PriceRow",
    "Pricing",
    "category_of",
    "country_of",
    "estimate",
    "money",
    "parse_price_csv",
    "price",
    "pricing_of",
    "to_micros",
]
