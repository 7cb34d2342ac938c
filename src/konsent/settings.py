"""Configuration: one environment variable per setting, `KONSENT_` prefix."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of a konsent installation, with its default."""

    model_config = SettingsConfigDict(env_prefix="KONSENT_", extra="ignore")

    data_dir: Path = Field(Path("./konsent-data"), description="Where SQLite, the key file and exports live.")
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite in data_dir.")
    keystore_url: str = Field(
        "",
        description="SQLAlchemy URL of the contact key store, backed up apart from the database (D2);"
        " empty means keystore.db in data_dir.",
    )
    master_key: SecretStr | None = Field(
        None, description="Base64 32-byte master key; else a 0600 key file in data_dir."
    )
    previous_master_keys: SecretStr | None = Field(
        None, description="Comma-separated old master keys, accepted for reading during a rotation (S1)."
    )
    base_url: str = Field(
        "http://127.0.0.1:8000", description="Public URL of this installation (links, QR codes)."
    )
    host: str = Field("127.0.0.1", description="Interface `konsent serve` binds to.")
    port: int = Field(8000, description="Port `konsent serve` binds to.")
    optin_ttl_hours: int = Field(
        48, description="Unconfirmed opt-ins expire and are deleted after this many hours (C2)."
    )
    session_ttl_hours: int = Field(12, description="Staff sessions expire after this many hours.")
    secure_cookies: bool = Field(
        False, description="Mark cookies Secure even when KONSENT_BASE_URL is http (always on for https)."
    )
    worker_batch: int = Field(200, description="Outbox rows a worker claims at once.")
    worker_concurrency: int = Field(64, description="Provider calls a worker keeps in flight.")
    worker_poll_seconds: float = Field(0.2, description="Idle wait between outbox polls.")
    lease_seconds: int = Field(60, description="How long a claimed outbox row stays leased to one worker.")
    echo_grace_seconds: float = Field(
        300.0,
        description="After a crash, how long a send of unknown outcome waits for the provider's echo "
        "of its reference before it is sent again (WhatsApp, 360dialog, Messenger, Instagram, simulator).",
    )
    stop_grace_seconds: float = Field(
        10.0, description="On SIGTERM the worker finishes and records what is on the wire within this bound."
    )
    max_attempts: int = Field(8, description="Attempts before an outbox row is discarded with its reason.")
    embedded_worker: bool = Field(True, description="`konsent serve` also runs a delivery worker in-process.")
    max_body_bytes: int = Field(1_000_000, description="Largest accepted request body (413 above).")
    web_threads: int = Field(
        40,
        ge=1,
        le=1000,
        description="Threads of one web process for its synchronous handlers (anyio's default: 40). "
        "Fewer cut the p99 of customer messages under load; see docs/OPERATIONS.md, Sizing.",
    )
    upload_max_bytes: int = Field(
        10_000_000, description="Largest file an agent may attach to a reply in the inbox (413 above)."
    )
    upload_mime_types: str = Field(
        "image/jpeg,image/png,image/webp,image/gif,application/pdf,text/plain,text/csv,video/mp4,"
        "video/3gpp,audio/mpeg,audio/ogg,audio/aac,audio/mp4,"
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document,"
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet,"
        "application/msword,application/vnd.ms-excel",
        description="Comma-separated MIME types agents may attach (415 for others); HTML, SVG and"
        " scripts are never shown inline, even when listed here.",
    )
    upload_link_seconds: int = Field(
        6 * 3600,
        description="Lifetime of the signed link a provider fetches an agent's attachment from; a reply"
        " still queued after it fails with the provider's download error.",
    )
    default_locale: str = Field("de", description="Locale for contacts whose language is unknown.")
    export_ttl_days: int = Field(
        30, description="Data exports not downloaded are deleted after this many days (D1, L1)."
    )
    rate_limit_signin: str = Field(
        "10/minute;60/hour", description="Sign-in attempts per client address (429 above; `limits` syntax)."
    )
    rate_limit_signin_account: str = Field(
        "20/minute;100/hour",
        description="Sign-in attempts per account from browsers not yet trusted by it (429 above).",
    )
    rate_limit_optin: str = Field("20/minute;200/hour", description="Widget opt-ins per client address.")
    rate_limit_simulator: str = Field(
        "30/minute;300/hour", description="Simulator sends and read receipts per client address."
    )
    rate_limit_simulator_read: str = Field(
        "120/minute", description="Simulator page loads and mailbox polls per client address."
    )
    rate_limit_privacy: str = Field(
        "30/minute;200/hour", description="Requests to the contact's self-service privacy pages per client."
    )
    simulator_enabled: bool = Field(
        False, description="Serve the simulator phone pages (`konsent demo` turns this on)."
    )
    log_level: str = Field("INFO", description="Application log level; personal data is always redacted.")
    allow_private_urls: bool = Field(
        False,
        description="Let outbound calls (channel adapters, outgoing webhooks) reach http:// and private,"
        " loopback or link-local addresses (tests, fakes, in-house CRMs); off: https to public hosts only.",
    )
    provider_base_urls: dict[str, str] = Field(
        {},
        description='API base URL per channel kind, JSON, e.g. {"telegram": "https://bot-api.example.org"}'
        " (a self-hosted Bot API server); empty: each provider's documented host.",
    )
    allow_account_base_urls: bool = Field(
        False,
        description="Honour the API base URL stored on a channel account (older versions let tenant"
        " admins set it); off: only KONSENT_PROVIDER_BASE_URLS and the documented hosts.",
    )
    webhook_timeout_seconds: float = Field(10.0, description="Seconds an outgoing webhook may answer in.")
    api_rate_limit: str = Field(
        "600/minute", description="Requests one API token may make, in `limits` notation (429 beyond)."
    )
    api_rate_limit_storage: str = Field(
        "memory://", description="Where rate-limit counters live (`limits` storage URI, e.g. redis://)."
    )
    smtp_host: str = Field(
        "", description="SMTP server for staff invitations and reset links; empty: links are only shown."
    )
    smtp_port: int = Field(587, description="Port of the SMTP server.")
    smtp_username: str = Field("", description="SMTP user name; empty: no authentication.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_from: str = Field("", description="Sender address of konsent's e-mails, e.g. konsent@example.com.")
    smtp_starttls: bool = Field(
        True, description="Upgrade the SMTP connection with STARTTLS (turn off only for a local relay)."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines as text or as JSON objects, one per line (still redacted)."
    )
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token for /metrics from other hosts; without it only localhost may scrape."
    )

    @property
    def cookies_secure(self) -> bool:
        """Cookies carry Secure when the setting says so or the public URL is https (#13)."""
        return self.secure_cookies or self.base_url.lower().startswith("https://")


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings (tests clear the cache)."""
    return Settings()
