"""The use cases, one sub-package per domain; each function works over a unit of work.

Layers, bottom to top (a sub-package imports only those below it; tests/architecture/test_arrows.py
checks): shared modules (`context`, `audit`, `contacts`, `texts`) → `organisation` → `consent` →
`privacy` → `outbound` → `inbox` → `inbound` → the top-level use cases the web and CLI call, each named
after what it owns (`dashboard`, `contact_views`, `message_desk`, `contact_directory`, `widget`,
`demo`, `operations`).
"""
