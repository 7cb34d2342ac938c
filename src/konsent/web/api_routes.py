"""The REST API's routers beyond web/api.py, included in one place (M4)."""

from __future__ import annotations

from fastapi import FastAPI


def include(app: FastAPI) -> None:
    from konsent.web import (
        admin_webhooks,
        api_campaigns,
        api_contact_data,
        api_contacts,
        api_costs,
        api_inbox,
        api_webhooks,
    )

    app.include_router(api_contacts.router)
    app.include_router(api_contact_data.router)
    app.include_router(api_campaigns.router)
    app.include_router(api_costs.router)
    app.include_router(api_inbox.router)
    app.include_router(api_webhooks.router)
    app.include_router(admin_webhooks.router)
    from konsent.web import api_audience  # segments, broadcast proof, contact pressure (#17)

    app.include_router(api_audience.router)
