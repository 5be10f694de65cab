"""Sportsbook: exact odds, the bet model and pure settlement math (docs/SPORTSBOOK.md)."""
