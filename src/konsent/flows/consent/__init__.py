"""Consent: double opt-in and the legal bases a contact gave or withdrew (C1, C2, C4).

Owns: `optin` (codes, confirmation), `grants` (grant and withdraw, cancelling queued messages in the
same transaction). May import: `organisation` and the shared flows modules.
"""
