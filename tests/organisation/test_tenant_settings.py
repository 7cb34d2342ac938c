"""Two admins saving different settings at the same moment both keep their change (S3, U3).

Every tenant setting is a key of one JSON document; a writer that wrote back the document it had
read before the other committed would undo the other's change without a trace."""

from __future__ import annotations

import threading
import time

from konsent.flows.context import Konsent
from konsent.flows.organisation import localtime, staff_admin
from konsent.store.tables import Tenant


def test_two_settings_saved_at_the_same_moment_are_both_kept(ctx: Konsent, demo) -> None:
    first_saved, errors = threading.Event(), []

    def first_admin() -> None:
        try:
            with ctx.db.write() as s:
                localtime.set_tenant_zone(s, demo.tenant_id, "admin:1", "America/New_York")
                first_saved.set()
                time.sleep(1.0)  # still uncommitted while the second admin saves
        except Exception as exc:
            errors.append(exc)
            first_saved.set()

    thread = threading.Thread(target=first_admin)
    thread.start()
    assert first_saved.wait(10)
    with ctx.db.write() as s:
        staff_admin.set_roles_requiring_2fa(s, demo.tenant_id, "admin:2", ["owner", "admin"])
    thread.join(10)
    assert not errors
    with ctx.db.read() as s:
        tenant = s.get(Tenant, demo.tenant_id)
        assert localtime.tenant_zone(tenant) == "America/New_York"
        assert staff_admin.roles_requiring_2fa(tenant) == {"owner", "admin"}
