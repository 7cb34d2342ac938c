"""Contact pressure: how often and when a contact may get marketing (M5).

Two rules per tenant, both off until the tenant sets them:

- a frequency cap: at most N marketing messages per contact in any D days. A message over the
  cap is not sent at all (outcome "not sent: contact pressure"), never a failure, never retried:
  sending it later would only move the pressure.
- quiet hours: a time range in the contact's own time zone (e.g. 21:00-08:00) in which no
  marketing is sent. A message due in quiet hours is deferred to the end of the quiet hours, as a
  person expects of "quiet": tomorrow's 08:00 rather than never.

Only marketing purposes (newsletter topics) are subject to pressure; transactional messages (the
double opt-in confirmation, the STOP confirmation, privacy answers, service replies) never wait.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from konsent.domain.errors import InvalidInput
from konsent.domain.purposes import NEWSLETTER_PREFIX

NOT_SENT = "not_sent"  # the message status of a message held back by the cap
CAP_REASON = "contact pressure: at most {n} marketing messages per {days} days"
QUIET_REASON = "deferred: quiet hours until {until} (contact's local time)"
MAX_CAP = 1000
MAX_DAYS = 365
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d\Z")


@dataclass(frozen=True)
class PressureRules:
    """A tenant's frequency cap and quiet hours; 0 messages or empty times switch a rule off."""

    cap_messages: int = 0
    cap_days: int = 7
    quiet_start: str = ""
    quiet_end: str = ""

    @property
    def cap_on(self) -> bool:
        return self.cap_messages > 0

    @property
    def quiet_on(self) -> bool:
        return bool(self.quiet_start and self.quiet_end and self.quiet_start != self.quiet_end)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cap_messages": self.cap_messages,
            "cap_days": self.cap_days,
            "quiet_start": self.quiet_start,
            "quiet_end": self.quiet_end,
        }

    def cap_reason(self) -> str:
        return CAP_REASON.format(n=self.cap_messages, days=self.cap_days)


def applies_to(purpose: str) -> bool:
    """Marketing only: transactional answers are never held back by contact pressure."""
    return purpose.startswith(NEWSLETTER_PREFIX)


def rules_of(stored: Mapping[str, Any] | None) -> PressureRules:
    """The rules as stored in the tenant's settings; anything malformed counts as off."""
    try:
        return validate(dict(stored or {}))
    except InvalidInput:
        return PressureRules()


def validate(values: Mapping[str, Any]) -> PressureRules:
    """Rules from a form or the API, or InvalidInput naming what is wrong."""
    cap, days = values.get("cap_messages", 0), values.get("cap_days", 7)
    for key, value, most in (("cap_messages", cap, MAX_CAP), ("cap_days", days, MAX_DAYS)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= most:
            raise InvalidInput("{key} must be a whole number from 0 to {most}", key=key, most=most)
    if cap and not days:
        raise InvalidInput(detail="a frequency cap needs a period of at least one day")
    start = str(values.get("quiet_start") or "").strip()
    end = str(values.get("quiet_end") or "").strip()
    for key, value in (("quiet_start", start), ("quiet_end", end)):
        if value and not _HHMM.match(value):
            raise InvalidInput("{key} must be a time written as HH:MM", key=key)
    if bool(start) != bool(end):
        raise InvalidInput(detail="quiet hours need both a start and an end")
    return PressureRules(cap, days or 7, start, end)


def _at(hhmm: str) -> time:
    hours, minutes = hhmm.split(":")
    return time(int(hours), int(minutes))


def quiet_until(rules: PressureRules, local_now: datetime) -> datetime | None:
    """When the quiet hours around `local_now` end (in its zone), or None outside quiet hours.

    A range whose start is after its end (21:00-08:00) runs over midnight.
    """
    if not rules.quiet_on:
        return None
    start, end, now = _at(rules.quiet_start), _at(rules.quiet_end), local_now.timetz().replace(tzinfo=None)
    day = local_now.date()
    if start < end:
        inside = start <= now < end
        end_day = day
    else:
        inside = now >= start or now < end
        end_day = day + timedelta(days=1) if now >= start else day
    if not inside:
        return None
    return datetime.combine(end_day, end, local_now.tzinfo)


def over_cap(rules: PressureRules, already_sent: int) -> bool:
    """True when one more marketing message would exceed the cap."""
    return rules.cap_on and already_sent >= rules.cap_messages
