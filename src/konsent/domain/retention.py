"""Retention periods and due dates: the deletion concept as pure rules (L1, D5)."""

from __future__ import annotations

import calendar
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta


class Category(enum.StrEnum):
    """What the deletion concept deletes, one rule each."""

    UNCONFIRMED_OPTINS = "unconfirmed_optins"
    MESSAGES = "messages"
    INACTIVE_CONTACTS = "inactive_contacts"
    EXPORTS = "exports"
    RAW_WEBHOOKS = "raw_webhooks"
    AUDIT_LOG = "audit_log"


HOUR = 1
DAY = 24
YEAR = 365 * DAY

# The defaults of REQUIREMENTS.md L1, in hours.
DEFAULT_HOURS: Mapping[Category, int] = {
    Category.UNCONFIRMED_OPTINS: 48 * HOUR,
    Category.MESSAGES: 90 * DAY,
    Category.INACTIVE_CONTACTS: YEAR,
    Category.EXPORTS: 30 * DAY,
    Category.RAW_WEBHOOKS: 7 * DAY,
    Category.AUDIT_LOG: 3 * YEAR,
}

# Bounds an admin may choose within; the audit log is the controller's own evidence (Art. 5(2)).
MIN_HOURS: Mapping[Category, int] = {
    Category.UNCONFIRMED_OPTINS: 1,
    Category.MESSAGES: 1 * DAY,
    Category.INACTIVE_CONTACTS: 30 * DAY,
    Category.EXPORTS: 1 * HOUR,
    Category.RAW_WEBHOOKS: 1 * DAY,
    Category.AUDIT_LOG: YEAR,
}
MAX_HOURS = 10 * YEAR

DESCRIPTIONS: Mapping[Category, str] = {
    Category.UNCONFIRMED_OPTINS: "Opt-in requests that were never confirmed, after they were requested",
    Category.MESSAGES: "Messages, after their conversation was closed (newsletters: after sending)",
    Category.INACTIVE_CONTACTS: "Contacts with no active purpose, after their last activity (erased)",
    Category.EXPORTS: "Data exports not yet downloaded, after they were created",
    Category.RAW_WEBHOOKS: "Raw webhook event records, after they were received",
    Category.AUDIT_LOG: "Audit log entries, after they were written",
}


@dataclass(frozen=True)
class Rule:
    category: Category
    hours: int

    @property
    def period(self) -> timedelta:
        return timedelta(hours=self.hours)

    def cutoff(self, now: datetime) -> datetime:
        """Data older than this falls due."""
        return now - self.period


def validate_hours(category: Category, hours: int) -> str | None:
    """A readable reason why this period is not allowed, or None."""
    low = MIN_HOURS[category]
    if hours < low:
        return f"{category.value}: at least {low} hours"
    if hours > MAX_HOURS:
        return f"{category.value}: at most {MAX_HOURS} hours"
    return None


def effective_rules(overrides: Mapping[str, int]) -> list[Rule]:
    """The tenant's rules: its own periods where it set one, the defaults otherwise."""
    return [Rule(c, int(overrides.get(c.value, DEFAULT_HOURS[c]))) for c in Category]


def one_month_later(at: datetime) -> datetime:
    """The Art. 12(3) deadline: the same day next month, or that month's last day."""
    year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)
