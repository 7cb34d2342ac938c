"""/try/{tenant}: a plain page with a tenant's widget, to test a sign-up before embedding it (U5)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from konsent.domain.errors import NotFound
from konsent.flows import widget
from konsent.web.deps import get_ctx, render, request_locale

router = APIRouter(include_in_schema=False)


@router.get("/try/{tenant_slug}")
def try_page(tenant_slug: str, request: Request) -> Response:
    """The widget of one tenant on an otherwise empty page; what it shows is public anyway."""
    locale = request_locale(request)
    try:
        cfg = widget.widget_config(get_ctx(request), tenant_slug[:64], locale)
    except NotFound:
        return render(request, "public/try_missing.html", {}, status_code=404)
    return render(
        request, "public/try.html", {"tenant_slug": cfg.tenant_slug, "tenant_name": cfg.tenant_name}
    )
