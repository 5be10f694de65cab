"""Reconciliation of PSP settlement reports against the ledger (docs/RECONCILIATION.md).

``lines.py`` (a report line, PSP-neutral), ``adyen_report.py`` and ``stripe_report.py``
(streaming parsers with line-numbered errors), ``matching.py`` (the classification rules,
pure), ``ledger.py`` (the ledger read in batches), ``run.py`` (the I/O shell of a run).
"""
