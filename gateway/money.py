"""Money: integer minor units with an ISO 4217 currency. No floats anywhere here.

Every amount inside the gateway is an ``int`` of minor units (cents for EUR, yen for JPY,
fils for KWD) travelling with its currency code. Wire formats differ (decimal strings,
integers x100000, subunits); the helpers below convert at the edge and refuse any amount
that is not exact in the currency's minor unit (docs/DESIGN.md section 3).

Rounding happens only in the named helpers at the bottom, each stating its direction.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# ISO 4217 minor-unit exponents (the "E" column of the ISO 4217 list), for the currencies an
# operator is likely to hold, plus the common crypto tickers some providers send
# (exponent chosen as the providers' own documents do: 8 for BTC, as satoshi).
CURRENCY_EXPONENTS: dict[str, int] = {
    "AED": 2, "ARS": 2, "AUD": 2, "AZN": 2, "BAM": 2, "BGN": 2, "BHD": 3, "BRL": 2,
    "BYN": 2, "CAD": 2, "CHF": 2, "CLP": 0, "CNY": 2, "COP": 2, "CZK": 2, "DKK": 2,
    "EGP": 2, "EUR": 2, "GBP": 2, "GEL": 2, "GHS": 2, "HKD": 2, "HUF": 2, "IDR": 2,
    "ILS": 2, "INR": 2, "IQD": 3, "ISK": 0, "JOD": 3, "JPY": 0, "KES": 2, "KRW": 0,
    "KWD": 3, "KZT": 2, "LYD": 3, "MAD": 2, "MDL": 2, "MXN": 2, "MYR": 2, "NGN": 2,
    "NOK": 2, "NZD": 2, "OMR": 3, "PEN": 2, "PHP": 2, "PKR": 2, "PLN": 2, "PYG": 0,
    "QAR": 2, "RON": 2, "RSD": 2, "RUB": 2, "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2,
    "TND": 3, "TRY": 2, "TWD": 2, "UAH": 2, "UGX": 0, "USD": 2, "UYU": 2, "UZS": 2,
    "VND": 0, "XAF": 0, "XOF": 0, "ZAR": 2, "ZMW": 2,
    "BTC": 8, "ETH": 8, "USDT": 6, "LTC": 8,
}

# Largest absolute amount any single operation may carry, as a hard ceiling independent of
# configuration: 2**53 keeps every amount exactly representable in JSON consumers that
# parse numbers as IEEE doubles (JavaScript), which some providers' backends are.
AMOUNT_MINOR_CEILING = 2**53 - 1

_DECIMAL_RE = re.compile(r"-?([0-9]+)(?:\.([0-9]+))?")


class AmountError(ValueError):
    """An amount that cannot be represented exactly, is out of range or has a bad shape.

    ``code`` is the stable machine code the edge returns: ``invalid_amount`` or
    ``unknown_currency``.
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def exponent(currency: str) -> int:
    """Minor-unit exponent of ``currency`` (EUR -> 2). Raises AmountError(unknown_currency)."""
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise AmountError("unknown_currency", f"unknown currency {currency!r}") from None


def is_currency(currency: object) -> bool:
    return isinstance(currency, str) and currency in CURRENCY_EXPONENTS


def check_amount_minor(
    amount_minor: object, *, amount_minor_max: int, allow_zero: bool = False
) -> int:
    """Validate an integer minor-unit amount from the wire; returns it.

    Refuses (AmountError ``invalid_amount``): non-integers (bool and float included),
    negatives, zero unless ``allow_zero``, and values above ``amount_minor_max``.
    """
    if type(amount_minor) is not int:
        raise AmountError("invalid_amount", "amount must be an integer number of minor units")
    if amount_minor < 0:
        raise AmountError("invalid_amount", "amount must not be negative")
    if amount_minor == 0 and not allow_zero:
        raise AmountError("invalid_amount", "amount must be greater than zero")
    if amount_minor > min(amount_minor_max, AMOUNT_MINOR_CEILING):
        raise AmountError("invalid_amount", f"amount exceeds the maximum of {amount_minor_max}")
    return amount_minor


def minor_from_decimal_str(value: str, currency: str) -> int:
    """Exact conversion of a decimal string in major units ("3.56" EUR -> 356).

    Refuses (AmountError ``invalid_amount``) more fractional digits than the currency has
    (unless they are zeros: "3.560" is exact), exponents, signs other than a leading "-",
    and anything that is not a plain decimal. Sign is preserved; range checks are separate.
    """
    exp = exponent(currency)
    m = _DECIMAL_RE.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise AmountError("invalid_amount", f"not a plain decimal amount: {value!r}")
    whole, frac = m.group(1), m.group(2) or ""
    frac_significant = frac.rstrip("0")
    if len(frac_significant) > exp:
        raise AmountError(
            "invalid_amount", f"{value} is not exact in {currency} ({exp} decimal places)"
        )
    if len(whole) > 19:
        raise AmountError("invalid_amount", "amount too large")
    minor = int(whole) * 10**exp + (int(frac_significant.ljust(exp, "0")) if exp else 0)
    return -minor if value.startswith("-") else minor


def minor_from_decimal(value: Decimal, currency: str) -> int:
    """Exact conversion of a Decimal in major units; same refusals as minor_from_decimal_str."""
    try:
        if not value.is_finite():
            raise AmountError("invalid_amount", "amount must be finite")
        text = format(value, "f")
    except (InvalidOperation, AttributeError):
        raise AmountError("invalid_amount", "amount must be a decimal number") from None
    return minor_from_decimal_str(text, currency)


def minor_to_decimal_str(amount_minor: int, currency: str) -> str:
    """Render minor units as a decimal string in major units (356 EUR -> "3.56")."""
    exp = exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    q, r = divmod(abs(amount_minor), 10**exp)
    return f"{sign}{q}.{r:0{exp}d}" if exp else f"{sign}{q}"


def minor_to_decimal(amount_minor: int, currency: str) -> Decimal:
    """Minor units as an exact Decimal in major units (for JSON number encoders)."""
    return Decimal(minor_to_decimal_str(amount_minor, currency))


def minor_from_scaled(value: int, scale: int, currency: str) -> int:
    """Exact conversion from an integer that is major units x ``scale``.

    Hub88 sends amounts x100000 (EUR 3.56 -> 356000; providers.md, Hub88 "Amounts").
    ``value * 10**exponent`` must divide by ``scale`` exactly, else AmountError
    (``invalid_amount``): EUR 356001 x100000 is 3.56001, not a whole cent.
    """
    if type(value) is not int:
        raise AmountError("invalid_amount", "amount must be an integer")
    exp = exponent(currency)
    q, r = divmod(value * 10**exp, scale)
    if r:
        raise AmountError("invalid_amount", f"amount {value}/{scale} is not exact in {currency}")
    return q


def minor_to_scaled(amount_minor: int, scale: int, currency: str) -> int:
    """Minor units as integer major units x ``scale``; exact when scale >= 10**exponent.

    For a currency whose exponent exceeds the scale's digits (BTC at 8 with Hub88's 10**5)
    this rounds toward zero via ``round_down_to_scale``: a balance shown to a provider must
    never exceed what the player has.
    """
    exp = exponent(currency)
    return round_down_to_scale(amount_minor * scale, 10**exp)


# ---- rounding helpers: the only places where a division may lose a remainder ----------


def round_down_to_scale(numerator: int, denominator: int) -> int:
    """Balance display rounding: toward zero. Used only to show balances in coarser units."""
    assert denominator > 0
    q = abs(numerator) // denominator
    return q if numerator >= 0 else -q


def round_payout_down(numerator: int, denominator: int) -> int:
    """Payout rounding (docs/DESIGN.md section 3): down to the minor unit, for non-negative payouts.

    The operator keeps the sub-minor remainder; a payout is never rounded up.
    """
    assert denominator > 0 and numerator >= 0
    return numerator // denominator
