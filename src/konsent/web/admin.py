"""Admin UI under /admin (server-rendered, filled in by the admin work)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/admin", include_in_schema=False)
