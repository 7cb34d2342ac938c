"""Outgoing webhooks (M4): `events` writes an event in the transaction of the action that causes it
(every flow may call it); `endpoints` manages a tenant's endpoints, secrets and delivery logs."""
