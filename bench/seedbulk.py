"""Fast seeding of large consented audiences for benchmarks and scaled-up delivery tests.

Contacts get their own wrapped data key and sealed address exactly as the flows
make them; consent rows are written directly (no ledger entries: this is load,
not evidence).
"""

from __future__ import annotations

from sqlalchemy import func, insert, select, text

from konsent import crypto
from konsent.flows.context import Konsent
from konsent.flows.organisation import tenants
from konsent.flows.outbound.messaging import _copy_rows
from konsent.store.keys import wrap_contact_key
from konsent.store.tables import Consent, Contact, ContactIdentity
from konsent.store.types import utcnow


def setup_tenant(
    ctx: Konsent,
    url: str,
    accounts: int = 1,
    rate: float = 100_000.0,
    secrets_: dict[str, str] | None = None,
    **settings: object,
) -> tuple[int, list[int]]:
    """A tenant with topic `news` and `accounts` benchhttp accounts pointing at the fake provider."""
    import bench.benchhttp  # noqa: F401 - registers the adapter

    with ctx.db.write() as s:
        t = tenants.create_tenant(ctx, s, f"bench{utcnow().strftime('%H%M%S%f')}", "Bench GmbH")
        tenants.add_topic(s, t, "news", {"de": "News", "en": "News"})
        ids = [
            tenants.create_channel_account(
                ctx,
                s,
                t,
                "benchhttp",
                f"number {i}",
                settings={"url": url, "throughput_per_s": rate, **settings},
                secrets_=secrets_,
            ).id
            for i in range(accounts)
        ]
        return t.id, ids


def seed_bulk(
    ctx: Konsent, tenant_id: int, account_ids: list[int], n: int, topic: str = "news", batch: int = 5000
) -> list[int]:
    """`n` contacts with active consent for `topic`, spread over the accounts; returns the phone suffixes."""
    now = utcnow()
    purpose = f"newsletter:{topic}"
    with ctx.db.read() as s:
        tk = ctx.keys.tenant(s, tenant_id)
        start = int(s.scalar(select(func.max(Contact.id))) or 0) + 1
    done = 0
    while done < n:
        k = min(batch, n - done)
        contacts, idents, consents, secrets_ = [], [], [], []
        for i in range(k):
            cid = start + done + i
            acc = account_ids[cid % len(account_ids)]
            key, secret = crypto.new_key(), crypto.new_key()
            secrets_.append((tenant_id, cid, secret))
            address = f"+49170{cid:08d}"
            contacts.append(
                {
                    "id": cid,
                    "tenant_id": tenant_id,
                    "locale": "de",
                    "wrapped_key": wrap_contact_key(tk.data_key, secret, key, cid),
                    # a name, as a personalised newsletter greets people by it (sealed like the flows do)
                    "name_sealed": crypto.seal_text(key, f"Kim {cid}", f"contact:{cid}:name".encode()),
                    "key_version": tk.version,
                    "has_contacted_us": False,
                    "unreachable": False,
                    "objected_marketing": False,
                    "last_activity_at": now,
                    "created_at": now,
                }
            )
            idents.append(
                {
                    "tenant_id": tenant_id,
                    "contact_id": cid,
                    "channel_account_id": acc,
                    "address_index": crypto.blind_index(tk.index_key, "benchhttp", address),
                    "address_sealed": crypto.seal_text(key, address, f"contact:{cid}:address".encode()),
                    "created_at": now,
                }
            )
            consents.append(
                {
                    "tenant_id": tenant_id,
                    "contact_id": cid,
                    "purpose": purpose,
                    "status": "active",
                    "text_version": 1,
                    "channel_account_id": acc,
                    "changed_at": now,
                }
            )
        ctx.keys.store.put_many(secrets_)  # durable before the contacts that need them
        with ctx.db.write() as s:
            if ctx.db.is_postgres:
                _copy_rows(s, Contact, contacts)
                _copy_rows(s, ContactIdentity, idents)
                _copy_rows(s, Consent, consents)
            else:
                s.execute(insert(Contact), contacts)
                s.execute(insert(ContactIdentity), idents)
                s.execute(insert(Consent), consents)
        done += k
    if ctx.db.is_postgres:
        with ctx.db.write() as s:
            s.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('contacts', 'id'), (SELECT max(id) FROM contacts))"
                )
            )
        with ctx.db.engine.connect() as conn:  # fresh bulk data: planner statistics, as autovacuum would
            conn.execute(text("ANALYZE contacts, contact_identities, consents"))
            conn.commit()
    return list(range(start, start + n))
