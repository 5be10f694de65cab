"""Adyen standard webhooks and payouts (README.md)."""
