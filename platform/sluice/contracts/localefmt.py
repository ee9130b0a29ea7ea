"""An offer's facts written the way a recipient's locale writes them.

Fact slots (``{price}``, ``{end_date}``...) are filled with these strings after
generation, so every fact in generated copy is the offer's own, written one way per
locale. The formats are few and deliberate: each is one the claims gate reads back
(:mod:`sluice.gates.claims`), so the gate still checks every filled number.

- amounts: the currency's symbol where one is unambiguous (``$`` for USD only in the
  US, ``US$`` elsewhere), else its ISO code; decimal comma and the thousands mark of the
  language; no decimals for currencies without minor units (JPY);
- percentages: ``20%``, or ``20 %`` where the language sets it apart;
- dates: ``September 30, 2026`` (US, Canada), ``30 September 2026`` (other English),
  ``30.09.2026`` (German), ``30-09-2026`` (Dutch), ``30/09/2026`` (French, Spanish,
  Italian, Portuguese), ISO ``2026-09-30`` (Swedish, Japanese and anything unknown).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

DEFAULT_LOCALE = "en-US"


@dataclass(frozen=True)
class LocaleFormat:
    decimal: str
    group: str
    symbol_after: bool
    """``119,99 €`` rather than ``€119.99``."""
    percent_space: bool
    date_style: str
    """``mdy`` (September 30, 2026), ``dmy`` (30 September 2026), ``dot``, ``dash``,
    ``slash`` or ``iso``."""


_EN_US = LocaleFormat(".", ",", False, False, "mdy")
_EN = LocaleFormat(".", ",", False, False, "dmy")
LANGUAGES: dict[str, LocaleFormat] = {
    "de": LocaleFormat(",", ".", True, True, "dot"),
    "fr": LocaleFormat(",", " ", True, True, "slash"),
    "es": LocaleFormat(",", ".", True, False, "slash"),
    "it": LocaleFormat(",", ".", True, False, "slash"),
    "pt": LocaleFormat(",", ".", False, False, "slash"),
    "nl": LocaleFormat(",", ".", False, False, "dash"),
    "sv": LocaleFormat(",", " ", True, True, "iso"),
    "ja": LocaleFormat(".", ",", False, False, "iso"),
}
MDY_REGIONS = frozenset({"US", "CA"})
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
ZERO_DECIMALS = frozenset({"JPY", "KRW"})
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
"""English month names, whatever the process's C locale says ``%B`` is."""


def locale_format(locale: str) -> LocaleFormat:
    language, _, region = locale.partition("-")
    if language == "en":
        return _EN_US if region in MDY_REGIONS else _EN
    return LANGUAGES.get(language, LocaleFormat(".", ",", False, False, "iso"))


def _grouped(amount: float, decimals: int, fmt: LocaleFormat) -> str:
    text = f"{amount:,.{decimals}f}"  # 1,299.00
    return text.replace(",", "\x00").replace(".", fmt.decimal).replace("\x00", fmt.group)


def money(amount: float, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """``$119.99``, ``119,99 €``, ``US$ 119,99``, ``1.299,00 SEK``, ``¥12,000``."""
    fmt = locale_format(locale)
    number = _grouped(amount, 0 if currency in ZERO_DECIMALS else 2, fmt)
    symbol = SYMBOLS.get(currency)
    if symbol == "$" and locale.partition("-")[2] != "US":
        symbol = "US$"
    if symbol is None:
        return f"{number} {currency}"
    if fmt.symbol_after:
        return f"{number} {symbol}"
    return f"{symbol} {number}" if fmt.decimal == "," else f"{symbol}{number}"


def percent(value: float, locale: str = DEFAULT_LOCALE) -> str:
    """``20%``, ``12.5%``, ``20 %``, ``12,5 %``."""
    fmt = locale_format(locale)
    number = f"{value:g}".replace(".", fmt.decimal)
    return f"{number} %" if fmt.percent_space else f"{number}%"


def long_date(day: date, locale: str = DEFAULT_LOCALE) -> str:
    """The day as the locale writes it (see the module docstring)."""
    style = locale_format(locale).date_style
    if style == "mdy":
        return f"{MONTHS[day.month - 1]} {day.day}, {day.year}"
    if style == "dmy":
        return f"{day.day} {MONTHS[day.month - 1]} {day.year}"
    if style == "dot":
        return f"{day:%d.%m.%Y}"
    if style == "dash":
        return f"{day:%d-%m-%Y}"
    if style == "slash":
        return f"{day:%d/%m/%Y}"
    return day.isoformat()
