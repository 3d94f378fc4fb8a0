"""Alerts out: the dispatcher that sends webhooks and e-mail for audit events."""
