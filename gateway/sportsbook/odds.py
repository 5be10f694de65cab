"""Odds: every price is exact decimal odds, a ``Fraction`` greater than 1. No floats anywhere.

Three notations are read (docs/SPORTSBOOK.md, "Odds"; docs/specs/sportsbook.md, "Odds"):

- decimal, ``"2.50"``: the decimal odds themselves;
- fractional, ``"a/b"``: decimal odds ``1 + a/b`` (``"5/2"`` -> 7/2);
- American, ``"+A"``: ``1 + A/100`` (``"+150"`` -> 5/2); ``"-A"``: ``1 + 100/A``
  (``"-200"`` -> 3/2). ``A`` is at least 100 (``+100`` and ``-100`` are both evens, 2).

Parsing is exact and strict: text only (a float or a Decimal is refused, it may already have
lost digits), plain digits (no exponent, no NaN, no whitespace), at most
``ODDS_TEXT_DIGITS_MAX`` digits, and the result must be greater than 1 and at most a cap
(``DECIMAL_ODDS_MAX`` unless the caller passes its own, never above
``DECIMAL_ODDS_CEILING``). Every refusal is an ``OddsError`` with code ``invalid_odds``.

Storage keeps two things: the exact value in canonical form (``"num/den"`` in lowest terms,
``format_exact``) and the notation the price was offered in (``StoredOdds``), so the price
can be shown back as offered and settled from the exact value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, get_args

import msgspec

#: The notations ``parse_odds`` reads.
OddsStyle = Literal["decimal", "fractional", "american"]
ODDS_STYLES: tuple[str, ...] = get_args(OddsStyle)
_STYLE_BY_NAME: dict[str, OddsStyle] = {"decimal": "decimal", "fractional": "fractional", "american": "american"}

#: Default cap on decimal odds (10000.0, i.e. 9999/1): a larger price is a feed error.
DECIMAL_ODDS_MAX = Fraction(10_000)
#: Hard ceiling for any configured cap.
DECIMAL_ODDS_CEILING = Fraction(1_000_000)
#: Most digits an odds text may carry, all numbers in it counted together.
ODDS_TEXT_DIGITS_MAX = 12
#: Largest denominator of exact decimal odds (what 12 digits can produce).
ODDS_DENOMINATOR_MAX = 10**ODDS_TEXT_DIGITS_MAX

_TEXT_CHARS_MAX = 32
_DECIMAL_RE = re.compile(r"([0-9]+)(?:\.([0-9]+))?", re.ASCII)
_FRACTIONAL_RE = re.compile(r"([0-9]+)/([0-9]+)", re.ASCII)
_AMERICAN_RE = re.compile(r"([+-])([0-9]+)", re.ASCII)
_EXACT_RE = re.compile(r"([1-9][0-9]*)/([1-9][0-9]*)", re.ASCII)


class OddsError(ValueError):
    """Odds that are malformed, not exact, not above 1 or beyond the cap.

    ``code`` is the stable machine code: ``invalid_odds`` (any refused price) or
    ``invalid_limits`` (a cap outside 1 < cap <= DECIMAL_ODDS_CEILING).
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _check_cap(decimal_max: Fraction) -> None:
    if not (isinstance(decimal_max, Fraction | int) and not isinstance(decimal_max, bool)):
        raise OddsError("invalid_limits", "the odds cap must be a Fraction")
    if not 1 < decimal_max <= DECIMAL_ODDS_CEILING:
        raise OddsError("invalid_limits", f"the odds cap must be above 1 and at most {DECIMAL_ODDS_CEILING}")


def check_decimal_odds(value: object, *, decimal_max: Fraction = DECIMAL_ODDS_MAX) -> Fraction:
    """Validate exact decimal odds; returns them.

    ``value`` must be a ``Fraction`` (not a float, int or Decimal) with
    ``1 < value <= decimal_max`` and a denominator of at most ``ODDS_DENOMINATOR_MAX``.
    Raises OddsError ``invalid_odds`` (or ``invalid_limits`` for a bad cap).
    """
    _check_cap(decimal_max)
    if type(value) is not Fraction:
        raise OddsError("invalid_odds", "decimal odds must be an exact Fraction")
    if value <= 1:
        raise OddsError("invalid_odds", f"decimal odds must be greater than 1, not {value}")
    if value > decimal_max:
        raise OddsError("invalid_odds", f"decimal odds {value} exceed the maximum of {decimal_max}")
    if value.denominator > ODDS_DENOMINATOR_MAX:
        raise OddsError("invalid_odds", "decimal odds have too many digits")
    return value


def _decimal_of(text: str, style: OddsStyle) -> Fraction:
    """Exact decimal odds of ``text`` read in ``style``; shape errors only (no range check)."""
    if style == "decimal":
        m = _DECIMAL_RE.fullmatch(text)
        if m is None:
            raise OddsError("invalid_odds", f"not plain decimal odds: {text!r}")
        whole, frac = m.group(1), m.group(2) or ""
        return Fraction(int(whole + frac), 10 ** len(frac))
    if style == "fractional":
        m = _FRACTIONAL_RE.fullmatch(text)
        if m is None:
            raise OddsError("invalid_odds", f"not fractional odds a/b: {text!r}")
        numerator, denominator = int(m.group(1)), int(m.group(2))
        if denominator == 0:
            raise OddsError("invalid_odds", f"fractional odds with a zero denominator: {text!r}")
        return 1 + Fraction(numerator, denominator)
    m = _AMERICAN_RE.fullmatch(text)
    if m is None:
        raise OddsError("invalid_odds", f"not American odds +A/-A: {text!r}")
    sign, line = m.group(1), int(m.group(2))
    if line < 100:
        raise OddsError("invalid_odds", f"American odds must be at least 100 either side: {text!r}")
    return 1 + (Fraction(line, 100) if sign == "+" else Fraction(100, line))


def _style_of(text: str) -> OddsStyle:
    if text[:1] in ("+", "-"):
        return "american"
    if "/" in text:
        return "fractional"
    return "decimal"


@dataclass(frozen=True, slots=True)
class Odds:
    """A price as offered: exact decimal odds plus the notation and text it came in.

    ``decimal``: the exact decimal odds (``Fraction`` > 1); ``style``: one of
    ``ODDS_STYLES``; ``text``: the offered text, which must read back to ``decimal`` in
    ``style``. Construction checks all three (OddsError ``invalid_odds``), so an ``Odds``
    never disagrees with itself. Build one with ``parse_odds`` rather than by hand.
    """

    decimal: Fraction
    style: OddsStyle
    text: str

    def __post_init__(self) -> None:
        check_decimal_odds(self.decimal, decimal_max=DECIMAL_ODDS_CEILING)
        if self.style not in ODDS_STYLES or not isinstance(self.text, str):
            raise OddsError("invalid_odds", f"unknown odds style {self.style!r}")
        if _decimal_of(self.text, self.style) != self.decimal:
            raise OddsError("invalid_odds", f"{self.text!r} ({self.style}) is not {self.decimal}")

    @property
    def canonical(self) -> str:
        """The exact decimal odds as ``"num/den"`` (``format_exact``)."""
        return format_exact(self.decimal)


def parse_odds(text: object, *, style: OddsStyle | None = None, decimal_max: Fraction = DECIMAL_ODDS_MAX) -> Odds:
    """Read a price in any of the three notations, exactly.

    ``style=None`` infers it: a leading ``+``/``-`` is American, a ``/`` fractional, anything
    else decimal; a given ``style`` must match. ``decimal_max`` caps the decimal odds (default
    ``DECIMAL_ODDS_MAX``). Raises OddsError ``invalid_odds`` for a non-string, a float-like
    text (``"1e2"``, ``"nan"``, ``"inf"``), whitespace, too many digits, a zero denominator,
    American odds between -100 and +100, odds of 1 or less, odds above the cap.
    """
    _check_cap(decimal_max)
    if not isinstance(text, str):
        raise OddsError("invalid_odds", "odds must be given as text, not a number")
    if not text or len(text) > _TEXT_CHARS_MAX:
        raise OddsError("invalid_odds", "odds text is empty or too long")
    if sum(c.isdigit() for c in text) > ODDS_TEXT_DIGITS_MAX:
        raise OddsError("invalid_odds", f"odds text has more than {ODDS_TEXT_DIGITS_MAX} digits")
    if style is not None and style not in ODDS_STYLES:
        raise OddsError("invalid_odds", f"unknown odds style {style!r}")
    chosen = style if style is not None else _style_of(text)
    value = _decimal_of(text, chosen)
    check_decimal_odds(value, decimal_max=decimal_max)
    return Odds(decimal=value, style=chosen, text=text)


def format_exact(value: Fraction) -> str:
    """Canonical exact form of decimal odds: ``"num/den"`` in lowest terms (7/2 -> "7/2", 2 -> "2/1")."""
    return f"{value.numerator}/{value.denominator}"


def parse_exact(text: object, *, decimal_max: Fraction = DECIMAL_ODDS_CEILING) -> Fraction:
    """Inverse of ``format_exact``: ``"7/2"`` -> Fraction(7, 2).

    Only the canonical form is accepted: positive integers without leading zeros, in lowest
    terms, denominator written even when 1. The value is then checked like any decimal odds
    (``check_decimal_odds``; the cap defaults to the hard ceiling, since a stored price was
    already accepted once). Raises OddsError ``invalid_odds``.
    """
    m = _EXACT_RE.fullmatch(text) if isinstance(text, str) and len(text) <= 2 * _TEXT_CHARS_MAX else None
    if m is None:
        raise OddsError("invalid_odds", f"not canonical exact odds num/den: {text!r}")
    value = Fraction(int(m.group(1)), int(m.group(2)))
    if format_exact(value) != text:
        raise OddsError("invalid_odds", f"exact odds not in lowest terms: {text!r}")
    return check_decimal_odds(value, decimal_max=decimal_max)


class StoredOdds(msgspec.Struct, frozen=True):
    """The storage form of a price: ``decimal`` canonical ``"num/den"``, ``style`` and ``text`` as offered."""

    decimal: str
    style: str
    text: str


def to_storage(odds: Odds) -> StoredOdds:
    """The storage form of ``odds`` (``from_storage`` reads it back to an equal ``Odds``)."""
    return StoredOdds(decimal=odds.canonical, style=odds.style, text=odds.text)


def from_storage(stored: StoredOdds, *, decimal_max: Fraction = DECIMAL_ODDS_CEILING) -> Odds:
    """Read a stored price back; the text must still read as the stored exact value.

    Raises OddsError ``invalid_odds`` if any field is malformed or the two disagree.
    """
    value = parse_exact(stored.decimal, decimal_max=decimal_max)
    style = _STYLE_BY_NAME.get(stored.style)
    if style is None:
        raise OddsError("invalid_odds", f"unknown odds style {stored.style!r}")
    odds = parse_odds(stored.text, style=style, decimal_max=decimal_max)
    if odds.decimal != value:
        raise OddsError("invalid_odds", f"stored odds {stored.text!r} do not read as {stored.decimal}")
    return odds
