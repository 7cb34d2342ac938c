"""Outbound: the one door to the outbox, templates, personalisation and broadcasts (C5, M1, M3, T1).

Owns: `messaging` (enqueue through `may_send`), `templates` (the registry), `personalise`, `broadcast`,
`broadcast_stats`, `reconsent` (asking for and confirming a changed consent text, C6).
May import: `consent`, `organisation` and the shared flows modules.
"""
