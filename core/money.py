"""Amounts for people: minor units -> locale-formatted currency (Babel)."""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_currency, get_currency_precision


def to_major(amount: int, currency: str) -> Decimal:
    return Decimal(amount).scaleb(-get_currency_precision(currency))


def money(amount: int, currency: str, locale: str = "en_US") -> str:
    return format_currency(to_major(amount, currency), currency, locale=locale)
