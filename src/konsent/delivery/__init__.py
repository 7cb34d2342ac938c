"""Outbox claiming with leases, pacing per channel account, retries, the worker and the scheduler."""
