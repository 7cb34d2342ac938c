"""What staff keep about a contact beyond the conversation: labels, typed attributes, search, CSV export.

Owns (#17 item 2; M5, S1, S4, L1):
- `labels`: the tenant's label vocabulary and the labels on each contact;
- `attributes`: typed attribute definitions (text, number, date, choice) with a purpose and a
  retention rule each, and each contact's values, sealed with the contact's key;
- `profile`: the contact page's one Save (labels and attributes together, one audit entry);
- `index`: the keyed search index (blind index of attribute values, keyed trigrams of names);
- `search`: contact search by name, number, label and attribute; `query`: the contact-id
  selects other use cases build on (segments);
- `retention`: deleting attribute values whose rule has run out; `csv_export`: the audited
  CSV export.

Shared layer: imports only `context`, `audit`, `contacts` and what lies below flows; the
privacy, outbound and inbox sub-packages build on it. Erasure needs no hook here: every table of
this package carries `contact_id`, so `privacy.rights.purge_contact_rows` finds and deletes them.
"""
