"""Provider conformance suite: wallet scenarios written once, run against every adapter.

``driver.py`` is the contract, ``drivers/<name>.py`` say each action in one protocol's
words, ``test_conformance.py`` holds the scenarios.
"""
