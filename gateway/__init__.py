"""Wallet and bet gateway for regulated iGaming operators."""

__version__ = "0.1.0"
