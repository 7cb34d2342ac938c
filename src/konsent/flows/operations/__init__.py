"""Operating an installation (U6, U1, D2): worker heartbeats, health and readiness, metrics,
backup and restore, and the configuration doctor. Nothing here reads or shows personal data;
tenants appear as ids only."""
