"""Public pages: widget.js and its API, /demo, /simulator (filled in by the public-pages work)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["public"])
