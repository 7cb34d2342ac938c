"""The inbox: conversations, assignment, teams' queues, canned replies, the bot and live updates (M2, S3, S5).

Owns: `listing` (who sees what, the list), `conversation` (view, reply, assign, states, notes), `bot`,
`canned`, `live`, `stats`. May import: `outbound`, `privacy`, `consent`, `organisation` and the shared
flows modules.
"""
