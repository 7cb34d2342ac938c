"""Inbound: webhooks in (keywords, opt-in codes, the bot, the inbox) and delivery statuses (CH2, CH4).

Owns: `receive` (verify, parse, store once, dispatch), `routes` (the account behind a webhook URL),
`status_sink` (group commit of status webhooks, with the writers' rules) and its writers
`status_pg` / `status_sqlite`, `status_early`, `watermarks`, `simulator` (the simulator's mailbox and
phone). May import every other flows sub-package; nothing in flows imports it except the top-level
facades (`admin_ops`, `api_ops`, `public_ops`, `demo`).
"""
