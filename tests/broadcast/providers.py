"""Real channel adapters against the protocol fakes, for the crash tests of #14 (worker processes).

Each `Provider` starts its fake, connects one channel account of a new tenant to it, pumps the
fake's webhooks into konsent the way the web app takes them (the adapter verifies and parses
each delivery, the statuses go to the status sink's group commit), and counts what reached the
fake per address and when.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from bench.seedbulk import phone
from sqlalchemy import func, select

from konsent.channels.base import WebhookRequest
from konsent.domain.events import StatusUpdate
from konsent.flows.context import Konsent
from konsent.flows.inbound import status_sink
from konsent.flows.organisation import tenants
from konsent.store.tables import ChannelAccount, SimulatorMail
from konsent.store.types import utcnow
from tests.fakes.meta_fake import MetaFake
from tests.fakes.telegram_fake import TelegramFake

TOKEN = "123456:ABCdefGhIJKlmnOPQrstUVwxyz_12345"


class WebhookPump:
    """Every 20 ms: the fake's webhooks, verified and parsed by the adapter, into the status sink."""

    def __init__(self, ctx: Konsent, take: Callable[[], list[tuple[dict[str, str], bytes]]]) -> None:
        self.ctx, self.take = ctx, take
        self.account_id = self.tenant_id = 0
        self.kind = ""
        self.cfg: Any = None
        self.statuses = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, account_id: int) -> None:
        with self.ctx.db.read() as s:
            acc = s.get(ChannelAccount, account_id)
            assert acc is not None
            self.account_id, self.tenant_id, self.kind = acc.id, acc.tenant_id, acc.kind
            self.cfg = tenants.account_config(self.ctx, s, acc)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.pump()
        self.pump()

    def pump(self) -> None:
        adapter = self.ctx.adapter(self.kind)
        events: list[StatusUpdate] = []
        for headers, body in self.take():
            req = WebhookRequest("POST", {k.lower(): v for k, v in headers.items()}, {}, body)
            adapter.verify(self.cfg, req)
            events += [ev for ev in adapter.parse(self.cfg, body) if isinstance(ev, StatusUpdate)]
        if events:
            status_sink.sink(self.ctx).submit(self.account_id, self.tenant_id, events)
            self.statuses += len(events)


class Provider:
    """One channel kind: its fake, its account, what arrived at the fake."""

    kind = ""
    echoes = True

    def __init__(self, ctx: Konsent, rate: float) -> None:
        self.ctx, self.rate = ctx, rate
        self.pump: WebhookPump | None = None

    def address(self, cid: int) -> str:
        return phone(cid)

    def __enter__(self) -> Provider:
        return self

    def __exit__(self, *_: object) -> None:
        if self.pump is not None:
            self.pump.stop()

    def account(self, tenant_id: int) -> int:
        raise NotImplementedError

    def _create(self, tenant_id: int, settings: dict[str, Any], secrets_: dict[str, str]) -> int:
        with self.ctx.db.write() as s:
            t = s.get(tenants.Tenant, tenant_id)
            assert t is not None
            acc = tenants.create_channel_account(
                self.ctx,
                s,
                t,
                self.kind,
                self.kind,
                settings={**settings, "throughput_per_s": self.rate},
                secrets_=secrets_,
            )
            return acc.id

    def arrivals(self) -> dict[str, list[float]]:
        """Address -> monotonic times at which a message to it reached the provider."""
        raise NotImplementedError

    def keys(self, addresses: list[str]) -> dict[str, str]:
        """How `arrivals` names each address."""
        return {a: a for a in addresses}

    def counts(self) -> Counter[str]:
        return Counter({a: len(t) for a, t in self.arrivals().items()})

    def total(self) -> int:
        """Messages that reached the provider so far (cheap: polled while the test waits)."""
        return sum(self.counts().values())


class WhatsApp(Provider):
    kind = "whatsapp"

    def __enter__(self) -> Provider:
        self.fake = MetaFake(max_lifetime_s=3600).start()
        self.fake.status_flow = ("sent",)  # the status that echoes biz_opaque_callback_data is enough here
        self.fake.add_phone("1001", "wa-token", "wa-secret")
        return self

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.fake.stop()

    def account(self, tenant_id: int) -> int:
        acc = self._create(
            tenant_id,
            {
                "phone_number_id": "1001",
                "display_phone_number": "4930123456",
                "api_base": self.fake.url + "/v21.0",
            },
            {"access_token": "wa-token", "app_secret": "wa-secret", "verify_token": "v"},
        )
        self.pump = WebhookPump(self.ctx, lambda: [(d.headers, d.body) for d in self.fake.take_outgoing()])
        self.pump.start(acc)
        return acc

    def arrivals(self) -> dict[str, list[float]]:
        out: dict[str, list[float]] = defaultdict(list)
        for a in list(self.fake.accepted):
            out["+" + str(a["body"]["to"]).lstrip("+")].append(a["at"])
        return out

    def total(self) -> int:
        return len(self.fake.accepted)


class Messenger(WhatsApp):
    kind = "messenger"

    def __enter__(self) -> Provider:
        self.fake = MetaFake(max_lifetime_s=3600).start()
        self.fake.status_flow = ()  # deliveries and reads are watermarks; the echo is what counts here
        self.fake.echo_messages = True  # the Page is subscribed to message_echoes
        self.fake.add_page("2002", "page-token", "page-secret")
        return self

    def account(self, tenant_id: int) -> int:
        acc = self._create(
            tenant_id,
            {"page_id": "2002", "page_name": "konsent", "api_base": self.fake.url + "/v21.0"},
            {"page_access_token": "page-token", "app_secret": "page-secret", "verify_token": "v"},
        )
        self.pump = WebhookPump(self.ctx, lambda: [(d.headers, d.body) for d in self.fake.take_outgoing()])
        self.pump.start(acc)
        return acc

    def arrivals(self) -> dict[str, list[float]]:
        out: dict[str, list[float]] = defaultdict(list)
        for a in list(self.fake.accepted):
            out[str(a["body"]["recipient"]["id"])].append(a["at"])
        return out


class Simulator(Provider):
    """The simulator's provider side is its mailbox table, written by the worker process itself."""

    kind = "simulator"

    def account(self, tenant_id: int) -> int:
        self.tenant_id = tenant_id
        self.account_id = self._create(tenant_id, {}, {"webhook_secret": "sim-secret"})
        return self.account_id

    def arrivals(self) -> dict[str, list[float]]:
        # wall-clock times of the mails, as monotonic times of this process
        offset = time.monotonic() - utcnow().timestamp()
        with self.ctx.db.read() as s:
            rows = s.execute(
                select(SimulatorMail.address_index, SimulatorMail.created_at).where(
                    SimulatorMail.channel_account_id == self.account_id
                )
            ).all()
        out: dict[str, list[float]] = defaultdict(list)
        for idx, at in rows:
            out[idx].append(at.timestamp() + offset)
        return out

    def total(self) -> int:
        with self.ctx.db.read() as s:
            return int(
                s.scalar(
                    select(func.count())
                    .select_from(SimulatorMail)
                    .where(SimulatorMail.channel_account_id == self.account_id)
                )
                or 0
            )

    def keys(self, addresses: list[str]) -> dict[str, str]:
        with self.ctx.db.read() as s:
            return {a: self.ctx.keys.index(s, self.tenant_id, "sim-mail", a) for a in addresses}


class Telegram(Provider):
    kind = "telegram"
    echoes = False

    def address(self, cid: int) -> str:
        return f"49170{cid:08d}"  # a chat id

    def __enter__(self) -> Provider:
        self.fake = TelegramFake(bots=[(TOKEN, "konsent_bot")], bot_rate=100_000, max_lifetime_s=3600)
        self.fake.start()
        self.fake.sent = type(self.fake.sent)()  # unbounded: every message counts
        return self

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.fake.stop()

    def account(self, tenant_id: int) -> int:
        return self._create(
            tenant_id,
            {"api_base": self.fake.url, "bot_username": "konsent_bot"},
            {"bot_token": TOKEN, "secret_token": "tg-secret"},
        )

    def start_chats(self, cids: list[int]) -> None:
        self.fake.started.update(int(self.address(c)) for c in cids)

    def arrivals(self) -> dict[str, list[float]]:
        out: dict[str, list[float]] = defaultdict(list)
        for m in list(self.fake.sent):
            out[str(m.chat_id)].append(m.at)
        return out

    def total(self) -> int:
        return len(self.fake.sent)


PROVIDERS: dict[str, type[Provider]] = {p.kind: p for p in (WhatsApp, Messenger, Simulator, Telegram)}
