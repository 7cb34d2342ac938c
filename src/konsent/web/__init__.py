"""HTTP: REST API, webhooks, admin UI and public pages. Thin: check access, call a flow, translate errors."""
