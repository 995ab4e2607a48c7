"""Billing periods: calendar months or years counted from an anchor.

Period ``n`` is ``[anchor + n*I, anchor + (n+1)*I)``; each bound is computed from the
anchor (not chained), so a Jan 31 anchor gives Feb 28/29, then Mar 31, Apr 30 ...
"""

from __future__ import annotations

from datetime import datetime

from dateutil.relativedelta import relativedelta


def add_intervals(anchor: datetime, interval: str, n: int) -> datetime:
    if interval == "month":
        return anchor + relativedelta(months=n)
    if interval == "year":
        return anchor + relativedelta(years=n)
    raise ValueError(f"unknown interval {interval!r}")


def period_bounds(anchor: datetime, interval: str, number: int) -> tuple[datetime, datetime]:
    return add_intervals(anchor, interval, number), add_intervals(anchor, interval, number + 1)


def period_containing(anchor: datetime, interval: str, t: datetime) -> tuple[int, datetime, datetime]:
    """The period number and bounds of the period that contains ``t`` (t >= anchor)."""
    if t < anchor:
        raise ValueError("t is before the anchor")
    months = (t.year - anchor.year) * 12 + (t.month - anchor.month)
    n = months if interval == "month" else months // 12
    n = max(n - 1, 0)
    while True:
        start, end = period_bounds(anchor, interval, n)
        if start <= t < end:
            return n, start, end
        n += 1
