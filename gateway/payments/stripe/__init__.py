"""Stripe webhooks and payouts (README.md)."""
