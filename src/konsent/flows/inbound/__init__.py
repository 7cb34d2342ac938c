"""Inbound: webhooks in (keywords, opt-in codes, the bot, the inbox) and delivery statuses (CH2, CH4).

Owns: `receive` (verify, parse, store once, dispatch), `routes` (the account behind a webhook URL),
`status_sink` (group commit of status webhooks; its writers are `store.status_pg` /
`store.status_sqlite`, its rules `domain.status_batch`), `status_early`, `watermarks`, `simulator`
(the simulator's mailbox and phone). May import every other flows sub-package; nothing in flows
imports it except the top-level use cases (`dashboard`, `contact_views`, `message_desk`,
`contact_directory`, `widget`, `demo`).
"""
