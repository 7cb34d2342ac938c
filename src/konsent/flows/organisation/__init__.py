"""Organisation: tenants and their topics and channel accounts, staff, roles, 2FA and teams (U4, S3).

Owns: `tenants`, `staff` (users, roles, sessions, API tokens, who acts: `StaffMember`), `totp`, `teams`,
`channel_setup`, `signin` (sign-in, trusted browsers, password change), `channel_views` (the channel
setup page), `company` (controller data, time zone, the first-run checklist), `topics` (create,
rename, order, archive), `consent_texts` (versions per language, diff).
May import: domain, crypto, store, channels and the shared flows modules
(`context`, `audit`, `contacts`, `texts`); no other flows sub-package.
"""
