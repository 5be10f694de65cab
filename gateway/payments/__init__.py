"""Payments: the cashier's deposits and withdrawals and the PSPs' webhooks (docs/PAYMENTS.md).

One folder per PSP (``adyen/``, ``stripe/``: wire schemas, signature check, event table,
README citing the rules) on one shared pipeline: ``events.py`` (what a notification means,
PSP-neutral), ``rules.py`` (what the wallet does about it, pure), ``store.py`` (the payment
tables), ``service.py`` (the I/O shell the edge routes call).
"""
