"""The use cases, one sub-package per domain; each function works over a unit of work.

Layers, bottom to top (a sub-package imports only those below it; tests/test_architecture.py checks):
shared modules (`context`, `audit`, `contacts`, `texts`) → `organisation` → `consent` → `privacy` →
`outbound` → `inbox` → `inbound` → the facades the web and CLI call (`admin_ops`, `api_ops`,
`public_ops`, `demo`).
"""
