"""Staff e-mail (invitations, reset links) over SMTP, when the operator configured it (S3).

smtplib blocks, so async callers use `send_async`, which runs it in a thread; the event
loop never waits on the mail server. Contacts never get e-mail from here.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from email.message import EmailMessage

from konsent.settings import Settings

log = logging.getLogger(__name__)
TIMEOUT_S = 15.0


def configured(settings: Settings) -> bool:
    return bool(settings.smtp_host and settings.smtp_from)


def send(settings: Settings, to: str, subject: str, body: str) -> bool:
    """Send one plain-text e-mail; False (and a log line without the address) when it fails."""
    if not configured(settings):
        return False
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=TIMEOUT_S) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
                smtp.login(settings.smtp_username, password)
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("staff e-mail not sent: %s", type(exc).__name__)
        return False
    return True


async def send_async(settings: Settings, to: str, subject: str, body: str) -> bool:
    """`send` in a worker thread, so a slow mail server never blocks the event loop."""
    return await asyncio.to_thread(send, settings, to, subject, body)
