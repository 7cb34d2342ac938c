"""The privacy centre: data-subject rights, proofs, transparency, retention, import, key rotation (D1-D4, L1).

Owns: `rights` (erasure, rectification, objection, request log, suppression), `export`, `selfservice`
(DATEN / LÖSCHEN / INFO and the self-service page), `proof` (consent proof), `transparency` (privacy
notice, Art. 30 record), `retention`, `importer`, `keyrotation`, `contact_locale` (the language of the
pages behind a contact's link). May import: `consent`, `organisation`
and the shared flows modules.
"""
