"""The pricing rules of DESIGN.md, as pure functions over exact fractions.

Amounts are integers in minor units. ``round`` is half-up to a whole minor unit.
For a change at ``t`` inside ``[start, end)``: ``f = (end - t) / (end - start)`` and
``d = percent_off / 100`` of the discount active at ``t``.

Every line is priced the same way, so that a reader can check it to the cent:

    gross    = round(n * price * f)      # what the line costs before any discount
    discount = round(gross * d)          # the discount, of the gross shown
    amount   = gross - discount          # what is charged (credits: all three negated)

- upgrade of n seats A -> B: a credit line for A (negative) and a charge line for B, same ``f``
- purchase of n seats of P joining a period: one line (f = 1 for a new period)
- renewal: the same with ``f = 1`` and ``d_next``, the discount still active at ``end``.

DESIGN.md writes a line as ``round(n*price*f*(1-d))``; that differs from the above by at most
one minor unit, and only where two roundings meet, but it can make a "discount" on an upgrade
cost a cent (the credit's rounding lost against the charge's) and it cannot be re-computed from
the figures a card shows. Here the discount is always a discount and always its percentage of
the gross beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

_US = timedelta(microseconds=1)


def round_half_up(x: Fraction) -> int:
    """Half-up (away from zero for negative values) to a whole minor unit."""
    if x < 0:
        return -round_half_up(-x)
    return int((x + Fraction(1, 2)) // 1)


def remaining_fraction(start: datetime, end: datetime, t: datetime) -> Fraction:
    if not start <= t < end:
        raise ValueError("t must lie inside [start, end)")
    return Fraction((end - t) // _US, (end - start) // _US)


def discount_rate(percent_off: Decimal | int | None) -> Fraction:
    if percent_off is None:
        return Fraction(0)
    d = Fraction(Decimal(percent_off)) / 100
    if not 0 <= d <= 1:
        raise ValueError("a discount is between 0 and 100 percent")
    return d


@dataclass(frozen=True)
class Line:
    kind: str  # "credit" | "charge" | "purchase"
    plan_code: str
    interval: str
    quantity: int
    unit_price: int
    fraction: Fraction
    gross: int
    amount: int  # after discount; what is charged (negative for a credit)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "plan_code": self.plan_code,
            "interval": self.interval,
            "quantity": self.quantity,
            "unit_price": self.unit_price,
            "fraction": f"{self.fraction.numerator}/{self.fraction.denominator}",
            "gross": self.gross,
            "amount": self.amount,
        }


def _line(kind: str, sign: int, plan_code: str, interval: str, n: int, price: int, f: Fraction,
          d: Fraction) -> Line:
    gross = round_half_up(n * price * f)
    return Line(kind, plan_code, interval, n, price, f, sign * gross, sign * (gross - line_discount(gross, d)))


def line_discount(gross: int, d: Fraction) -> int:
    """The discount on a line of ``gross`` (>= 0): its percentage of the gross, to the minor unit."""
    return round_half_up(gross * d)


def upgrade_lines(n: int, plan_a: str, price_a: int, plan_b: str, price_b: int, interval: str,
                  f: Fraction, d: Fraction) -> list[Line]:
    return [
        _line("credit", -1, plan_a, interval, n, price_a, f, d),
        _line("charge", 1, plan_b, interval, n, price_b, f, d),
    ]


def purchase_line(n: int, plan: str, price: int, interval: str, f: Fraction, d: Fraction) -> Line:
    return _line("purchase", 1, plan, interval, n, price, f, d)


def renewal_amount(n: int, price: int, d_next: Fraction) -> int:
    return n * price - line_discount(n * price, d_next)


@dataclass(frozen=True)
class Totals:
    gross: int
    discount: int  # <= 0 whenever the lines' gross is >= 0 (each line's discount has the sign of its gross)
    due_now: int


def totals(lines: list[Line]) -> Totals:
    gross = sum(line.gross for line in lines)
    due = sum(line.amount for line in lines)
    return Totals(gross=gross, discount=due - gross, due_now=due)
