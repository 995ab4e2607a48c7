"""Pricing rules of DESIGN.md ("Pricing rules"): property tests of the pure functions in
core.pricing / core.periods against an independent re-computation, and hand-checked
quotes through the real core (upgrade and purchase), with every expected number written
out by hand. All money is int cents; no float is used in any assertion."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core import pricing
from core.demo import ADMIN_AAD, TENANT
from core.errors import InvalidInput
from core.models import Discount, Pool, Quote, Seat, Subscription, User
from core.periods import add_intervals, period_bounds, period_containing
from tests.harness import insert_account

PURE = settings(max_examples=200, deadline=None)
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --------------------------------------------------------------------------- independent reference


def ref_round(x: Fraction) -> int:
    """Half-up to a whole unit, written independently of core.pricing: floor(x + 1/2) for
    x >= 0 (credits are the negation of a rounded non-negative amount)."""
    assert x >= 0
    return (2 * x.numerator + x.denominator) // (2 * x.denominator)


def ref_net(exact_gross: Fraction, rate: Fraction) -> int:
    """A line's amount after discount: the gross rounded, less its percentage rounded (the
    figures a card shows, so that a reader re-computes them to the cent)."""
    gross = ref_round(exact_gross)
    return gross - ref_round(gross * rate)


def ref_fraction(start: datetime, end: datetime, t: datetime) -> Fraction:
    return Fraction((end - t) // SECOND, (end - start) // SECOND)


def ref_rate(percent: Decimal) -> Fraction:
    return Fraction(str(percent)) / 100


def is_int(x) -> bool:
    return type(x) is int


# --------------------------------------------------------------------------- strategies

instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31),
                        timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0))
intervals = st.sampled_from(["month", "year"])
seats = st.integers(min_value=1, max_value=10_000)
prices = st.integers(min_value=1, max_value=1_000_000)
percents = st.integers(min_value=0, max_value=10_000).map(lambda c: Decimal(c).scaleb(-2))


@st.composite
def moments(draw):
    """(start, end, t): a period of one month or one year from a random start, and t in
    [start, end) at whole seconds."""
    start = draw(instants)
    interval = draw(intervals)
    end = add_intervals(start, interval, 1)
    offset = draw(st.integers(min_value=0, max_value=(end - start) // SECOND - 1))
    return start, end, start + offset * SECOND


# --------------------------------------------------------------------------- 1. property tests


@PURE
@given(moments())
def test_remaining_fraction_is_exact_and_in_unit_interval(m):
    start, end, t = m
    f = pricing.remaining_fraction(start, end, t)
    assert isinstance(f, Fraction)
    assert f == ref_fraction(start, end, t)
    assert 0 < f <= 1
    assert (f == 1) == (t == start)


@PURE
@given(moments(), seats, prices, prices, percents)
@example((utc(2026, 3, 1), utc(2026, 4, 1), utc(2026, 3, 1)), 3, 800, 2900, Decimal("15.00"))
def test_upgrade_lines_follow_the_rules(m, n, price_a, price_b, percent):
    start, end, t = m
    f = pricing.remaining_fraction(start, end, t)
    d = pricing.discount_rate(percent)
    assert d == ref_rate(percent)
    credit, charge = pricing.upgrade_lines(n, "a", price_a, "b", price_b, "month", f, d)
    rf, rd = ref_fraction(start, end, t), ref_rate(percent)

    assert (credit.kind, charge.kind) == ("credit", "charge")
    assert credit.amount == -ref_net(n * price_a * rf, rd)
    assert charge.amount == ref_net(n * price_b * rf, rd)
    assert credit.gross == -ref_round(n * price_a * rf)
    assert charge.gross == ref_round(n * price_b * rf)
    for line in (credit, charge):
        assert is_int(line.amount) and is_int(line.gross)
        assert line.quantity == n and 0 < line.fraction <= 1

    totals = pricing.totals([credit, charge])
    assert totals.due_now == charge.amount + credit.amount
    assert totals.gross == charge.gross + credit.gross
    assert totals.discount == totals.due_now - totals.gross
    assert all(is_int(x) for x in (totals.due_now, totals.gross, totals.discount))
    if price_b >= price_a:
        assert charge.amount >= -credit.amount
        assert totals.due_now >= 0
        assert totals.discount <= 0
    if percent == 100:
        assert credit.amount == 0 and charge.amount == 0 and totals.due_now == 0
    if percent == 0:
        assert credit.amount == credit.gross and charge.amount == charge.gross and totals.discount == 0


@PURE
@given(moments(), seats, prices, percents)
def test_purchase_line_follows_the_rule(m, n, price, percent):
    start, end, t = m
    f = pricing.remaining_fraction(start, end, t)
    line = pricing.purchase_line(n, "p", price, "year", f, pricing.discount_rate(percent))
    rf, rd = ref_fraction(start, end, t), ref_rate(percent)
    assert line.kind == "purchase"
    assert line.amount == ref_net(n * price * rf, rd)
    assert line.gross == ref_round(n * price * rf)
    assert is_int(line.amount) and is_int(line.gross)
    assert 0 <= line.amount <= line.gross
    if percent == 100:
        assert line.amount == 0
    if percent == 0:
        assert line.amount == line.gross
    # a first purchase starts a new period: f = 1, the full price for the period
    new = pricing.purchase_line(n, "p", price, "year", Fraction(1), rd)
    assert new.gross == n * price
    assert new.amount == ref_net(n * price, rd)


@PURE
@given(seats, prices, percents)
def test_renewal_amount_follows_the_rule(n, price, percent):
    amount = pricing.renewal_amount(n, price, pricing.discount_rate(percent))
    assert is_int(amount)
    assert amount == ref_net(n * price, ref_rate(percent))
    if percent == 100:
        assert amount == 0
    if percent == 0:
        assert amount == n * price


def test_rounding_is_half_up_on_constructed_values():
    r = pricing.round_half_up
    assert [r(Fraction(k, 2)) for k in range(7)] == [0, 1, 1, 2, 2, 3, 3]  # x.5 always up (not to even)
    assert r(Fraction(4999, 2000)) == 2 and r(Fraction(5001, 2000)) == 3
    assert r(Fraction(-5, 2)) == -3  # a credit is the negation of a rounded amount
    assert all(is_int(r(Fraction(k, 7))) for k in range(20))
    half = Fraction(1, 2)
    # 1 seat at 5 cents, half the period left: 2.5 -> 3 (banker's rounding would give 2)
    assert pricing.purchase_line(1, "p", 5, "month", half, Fraction(0)).amount == 3
    # 1 seat at 1 cent, half the period left: 0.5 -> 1
    assert pricing.purchase_line(1, "p", 1, "month", half, Fraction(0)).amount == 1
    # credit of 2.5 -> -3, charge of 3.5 -> 4
    credit, charge = pricing.upgrade_lines(1, "a", 5, "b", 7, "month", half, Fraction(0))
    assert (credit.amount, charge.amount) == (-3, 4)
    # the discount is rounded half-up too: 50 % of 5 cents = 2.5 -> 3 off, 2 left; 10 %: 0.5 -> 1
    # off, 4 left; 30 %: 1.5 -> 2 off, 3 left
    assert pricing.renewal_amount(1, 5, Fraction(1, 2)) == 2
    assert pricing.renewal_amount(1, 5, pricing.discount_rate(Decimal("10.00"))) == 4
    assert pricing.renewal_amount(1, 5, pricing.discount_rate(Decimal("30"))) == 3
    # 3 seats x 800 x 0.7 = 1680, 15 % = 252 off: 1428; 3 x 2900 x 0.7 = 6090, 913.5 -> 914 off: 5176
    credit, charge = pricing.upgrade_lines(3, "eco", 800, "pro", 2900, "month", Fraction(7, 10),
                                           pricing.discount_rate(Decimal("15")))
    assert (credit.amount, charge.amount) == (-1428, 5176)
    # the case DESIGN.md's round(n*p*f*(1-d)) gets wrong: 0.07 % off an upgrade made it cost a cent
    # more than without the discount (the credit's rounding lost against the charge's)
    f = Fraction(44640 * 60 - 43470 * 60, 44640 * 60)  # 1,170 of the 44,640 minutes of a month left
    credit, charge = pricing.upgrade_lines(1, "a", 477, "b", 1428, "month", f, pricing.discount_rate(Decimal("0.07")))
    undiscounted = pricing.upgrade_lines(1, "a", 477, "b", 1428, "month", f, Fraction(0))
    assert pricing.totals([credit, charge]).due_now <= pricing.totals(undiscounted).due_now


def test_pure_functions_refuse_out_of_range_inputs():
    start, end = utc(2026, 4, 1), utc(2026, 5, 1)
    with pytest.raises(ValueError):
        pricing.remaining_fraction(start, end, end)
    with pytest.raises(ValueError):
        pricing.remaining_fraction(start, end, start - SECOND)
    with pytest.raises(ValueError):
        pricing.discount_rate(Decimal("100.01"))
    with pytest.raises(ValueError):
        pricing.discount_rate(Decimal("-0.01"))
    assert pricing.discount_rate(None) == 0
    assert pricing.remaining_fraction(start, end, end - SECOND) == Fraction(1, 30 * 86400)


# --------------------------------------------------------------------------- 2. periods


@PURE
@given(instants, st.integers(min_value=0, max_value=1200))
def test_calendar_months_last_28_to_31_days(anchor, n):
    start, end = period_bounds(anchor, "month", n)
    assert (end - start) % DAY == timedelta(0)
    assert 28 <= (end - start) // DAY <= 31
    assert start == add_intervals(anchor, "month", n)
    assert (start.hour, start.minute, start.second) == (anchor.hour, anchor.minute, anchor.second)


@PURE
@given(instants, st.integers(min_value=0, max_value=100))
def test_calendar_years_last_365_or_366_days(anchor, n):
    start, end = period_bounds(anchor, "year", n)
    assert (end - start) // DAY in (365, 366) and (end - start) % DAY == timedelta(0)


def test_month_end_anchor_is_counted_from_the_anchor_not_chained():
    for year, feb in ((2026, 28), (2028, 29)):
        anchor = utc(year, 1, 31, 9, 30)
        assert add_intervals(anchor, "month", 1) == utc(year, 2, feb, 9, 30)
        assert add_intervals(anchor, "month", 2) == utc(year, 3, 31, 9, 30)  # not Mar 28/29
        assert add_intervals(anchor, "month", 3) == utc(year, 4, 30, 9, 30)
        assert add_intervals(anchor, "month", 4) == utc(year, 5, 31, 9, 30)
        assert period_bounds(anchor, "month", 1) == (utc(year, 2, feb, 9, 30), utc(year, 3, 31, 9, 30))
    assert add_intervals(utc(2025, 12, 31), "month", 2) == utc(2026, 2, 28)
    assert add_intervals(utc(2025, 12, 31), "month", 3) == utc(2026, 3, 31)


def test_feb_29_yearly_anchor():
    anchor = utc(2024, 2, 29)
    assert add_intervals(anchor, "year", 1) == utc(2025, 2, 28)
    assert add_intervals(anchor, "year", 2) == utc(2026, 2, 28)
    assert add_intervals(anchor, "year", 4) == utc(2028, 2, 29)  # from the anchor, not chained
    assert period_bounds(anchor, "year", 0) == (utc(2024, 2, 29), utc(2025, 2, 28))
    with pytest.raises(ValueError):
        add_intervals(anchor, "week", 1)


def test_period_containing_a_boundary_is_the_later_period():
    anchor = utc(2026, 1, 31)
    assert period_containing(anchor, "month", anchor) == (0, utc(2026, 1, 31), utc(2026, 2, 28))
    assert period_containing(anchor, "month", utc(2026, 2, 28) - SECOND) == (0, utc(2026, 1, 31), utc(2026, 2, 28))
    assert period_containing(anchor, "month", utc(2026, 2, 28)) == (1, utc(2026, 2, 28), utc(2026, 3, 31))
    assert period_containing(anchor, "month", utc(2026, 3, 31)) == (2, utc(2026, 3, 31), utc(2026, 4, 30))
    leap = utc(2024, 2, 29, 12)
    assert period_containing(leap, "year", utc(2025, 2, 28, 12)) == (1, utc(2025, 2, 28, 12), utc(2026, 2, 28, 12))
    assert period_containing(leap, "year", utc(2025, 2, 28, 12) - SECOND) == (0, leap, utc(2025, 2, 28, 12))
    with pytest.raises(ValueError):
        period_containing(anchor, "month", anchor - SECOND)


@PURE
@given(instants, intervals, st.integers(min_value=0, max_value=60 * 366 * 86400))
def test_period_containing_brackets_t_and_periods_touch(anchor, interval, offset):
    t = anchor + offset * SECOND
    n, start, end = period_containing(anchor, interval, t)
    assert start <= t < end
    assert (start, end) == period_bounds(anchor, interval, n)
    assert period_bounds(anchor, interval, n + 1)[0] == end
    if n > 0:
        assert period_bounds(anchor, interval, n - 1)[1] == start
    else:
        assert start == anchor


# --------------------------------------------------------------------------- 3. quotes through the core


@dataclass
class Setup:
    account_id: int
    pools: dict[tuple[str, str], int] = field(default_factory=dict)  # (interval, plan) -> pool id
    users: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (interval, plan) -> seat holders


def make_account(lic, *, subs: dict[str, tuple[datetime, int | None]] | None = None, pools=(), discounts=()):
    """An account bound to the ``admin`` fixture's tenant, with its admin user.

    ``subs``: interval -> (anchor, period number or None for the period containing now);
    ``pools``: (interval, plan, quantity, assigned); ``discounts``: (percent, starts, ends).
    """
    now = lic.now()

    def work(s) -> Setup:
        account, _ = insert_account(lic, s, now, tenant=TENANT,
                                    people=[(ADMIN_AAD, "admin@fabrikam.com", "Ada Admin", "admin")])
        for i, (percent, starts, ends) in enumerate(discounts):
            s.add(Discount(account_id=account.id, label=f"Discount {i}", percent_off=Decimal(percent),
                           starts_at=starts, ends_at=ends))
        rows = {}
        for interval, (anchor, number) in (subs or {}).items():
            if number is None:
                number, start, end = period_containing(anchor, interval, now)
            else:
                start, end = period_bounds(anchor, interval, number)
            rows[interval] = Subscription(account_id=account.id, interval=interval, anchor_at=anchor,
                                          period_number=number, period_start=start, period_end=end,
                                          created_at=anchor)
            s.add(rows[interval])
        s.flush()
        out = Setup(account.id)
        k = 0
        for interval, code, quantity, assigned in pools:
            plan = lic.catalog.plan(code)
            pool = Pool(account_id=account.id, subscription_id=rows[interval].id, plan_code=code,
                        quantity=quantity, removal_scheduled=0, created_at=rows[interval].anchor_at)
            s.add(pool)
            s.flush()
            out.pools[(interval, code)] = pool.id
            out.users[(interval, code)] = []
            for _ in range(assigned):
                k += 1
                user = lic.accounts.insert_user(s, account.id, f"aad-{k:04d}", f"user{k:04d}@fabrikam.com",
                                        f"User {k:04d}", "member")
                s.add(Seat(account_id=account.id, pool_id=pool.id, user_id=user.id, family=plan.family,
                           sort_key=user.sort_key, assigned_at=rows[interval].anchor_at))
                out.users[(interval, code)].append(user.id)
        return out

    return lic.db.write(work)


def check_sums(q) -> None:
    """Invariants every quote shows: due now and gross are the sums of the lines, and the
    discount is their difference."""
    amounts = [ln.amount for ln in q.lines]
    grosses = [ln.gross for ln in q.lines]
    assert all(is_int(x) for x in [*amounts, *grosses, q.due_now, q.gross, q.discount, q.renewal_amount])
    assert q.due_now == sum(amounts)
    assert q.gross == sum(grosses)
    assert q.discount == sum(amounts) - sum(grosses)


def upgrade(lic, admin, setup: Setup, interval: str, from_plan: str, n: int, to_plan: str):
    return lic.quotes.quote_upgrade(admin, setup.pools[(interval, from_plan)], setup.users[(interval, from_plan)][:n],
                             to_plan)


def assert_upgrade(q, *, fraction, credit, gross_credit, charge, gross_charge, renewal, renewal_date):
    credit_line, charge_line = q.lines
    assert (credit_line.kind, charge_line.kind) == ("credit", "charge")
    assert credit_line.fraction == charge_line.fraction == fraction
    assert (credit_line.amount, credit_line.gross) == (credit, gross_credit)
    assert (charge_line.amount, charge_line.gross) == (charge, gross_charge)
    assert q.due_now == charge + credit
    assert q.gross == gross_charge + gross_credit
    assert q.discount == (charge + credit) - (gross_charge + gross_credit)
    assert q.renewal_amount == renewal and charge_line.renewal_amount == renewal
    assert q.renewal_date == renewal_date
    assert charge_line.period_end == renewal_date
    check_sums(q)


@pytest.mark.parametrize("stale", [False, True], ids=["current-row", "rolled-over-at-boundary"])
def test_upgrade_at_the_very_start_of_the_period(lic, clock, admin, stale):
    # March 2026 (31 days) from a Mar 1 anchor, or the Feb period of a Feb 1 anchor whose end
    # is exactly now: t at a boundary belongs to the later period, so f = 1 either way.
    clock.now = utc(2026, 3, 1)
    subs = {"month": (utc(2026, 2, 1), 0)} if stale else {"month": (utc(2026, 3, 1), None)}
    setup = make_account(lic, subs=subs, pools=[("month", "eco", 5, 3)],
                         discounts=[("15", utc(2026, 1, 1), None)])
    q = upgrade(lic, admin, setup, "month", "eco", 3, "pro")
    # 3 seats Eco -> Pro, f = 1, 15 % off:
    # credit -round(3*800*0.85) = -2040 (gross -2400); charge round(3*2900*0.85) = 7395 (gross 8700)
    # due 5355; discount 5355 - 6300 = -945; renewal round(3*2900*0.85) = 7395 on Apr 1
    assert_upgrade(q, fraction="1/1", credit=-2040, gross_credit=-2400, charge=7395, gross_charge=8700,
                   renewal=7395, renewal_date=utc(2026, 4, 1))
    assert (q.due_now, q.discount) == (5355, -945)
    assert q.lines[0].period_start == utc(2026, 3, 1)


def test_upgrade_in_the_last_second_of_a_leap_february(lic, clock, admin):
    # Feb 2028 has 29 days = 2 505 600 s; t = Mar 1 - 1 s: f = 1/2505600.
    clock.now = utc(2028, 3, 1) - SECOND
    setup = make_account(lic, subs={"month": (utc(2027, 12, 1), None)}, pools=[("month", "eco", 3, 3)],
                         discounts=[("15", utc(2027, 1, 1), None)])
    q = upgrade(lic, admin, setup, "month", "eco", 3, "pro")
    # credit -round(3*800/2505600*0.85) = -round(0.0008) = 0; charge round(3*2900/2505600*0.85) = 0
    # renewal round(3*2900*0.85) = 7395 on Mar 1
    assert_upgrade(q, fraction="1/2505600", credit=0, gross_credit=0, charge=0, gross_charge=0,
                   renewal=7395, renewal_date=utc(2028, 3, 1))
    assert q.expires_at == utc(2028, 3, 1)  # a quote never outlives its period


def test_purchase_in_the_last_second_of_a_february(lic, clock, admin):
    # Feb 2026: 28 days = 2 419 200 s; t = Mar 1 - 1 s; 500 Pro seats: 500*2900/2419200 = 0.5994
    clock.now = utc(2026, 3, 1) - SECOND
    setup = make_account(lic, subs={"month": (utc(2026, 1, 1), None)}, pools=[("month", "pro", 1, 0)],
                         discounts=[("15", utc(2026, 1, 1), utc(2026, 2, 15)), ("20", utc(2026, 2, 15), None)])
    assert setup.account_id
    q = lic.quotes.quote_purchase(admin, [{"plan": "pro", "interval": "month", "quantity": 500}])
    # gross round(0.5994) = 1; 20 % of 1 cent: round(0.2) = 0 off, so 1; renewal 1450000 - 290000 = 1160000
    (line,) = q.lines
    assert (line.kind, line.fraction, line.gross, line.amount) == ("purchase", "1/2419200", 1, 1)
    assert (q.due_now, q.gross, q.discount) == (1, 1, 0)
    assert q.renewal_amount == line.renewal_amount == 1_160_000
    assert q.renewal_date == utc(2026, 3, 1) and line.new_period is False
    check_sums(q)


@pytest.mark.parametrize(
    ("year", "fraction", "amounts", "renewal_date"),
    [
        # leap: 22 of 29 days left. credit gross -round(52800/29 = 1820.69) = -1821, 15 % of it
        # round(273.15) = 273 off: -1548; charge gross 191400/29 = 6600, 990 off: 5610.
        # due 4062, discount -990 + 273 = -717
        (2028, "22/29", (-1548, -1821, 5610, 6600), utc(2028, 3, 1)),
        # non-leap: 21 of 28 days left = 3/4. credit gross -1800, 270 off: -1530;
        # charge gross 6525, round(978.75) = 979 off: 5546. due 4016, discount -979 + 270 = -709
        (2026, "3/4", (-1530, -1800, 5546, 6525), utc(2026, 3, 1)),
    ],
    ids=["leap-29-days", "non-leap-28-days"],
)
def test_upgrade_in_february(lic, clock, admin, year, fraction, amounts, renewal_date):
    clock.now = utc(year, 2, 8)
    setup = make_account(lic, subs={"month": (utc(year - 1, 11, 1), None)}, pools=[("month", "eco", 4, 3)],
                         discounts=[("15.00", utc(year - 1, 1, 1), None)])
    q = upgrade(lic, admin, setup, "month", "eco", 3, "pro")
    credit, gross_credit, charge, gross_charge = amounts
    assert_upgrade(q, fraction=fraction, credit=credit, gross_credit=gross_credit, charge=charge,
                   gross_charge=gross_charge, renewal=7395, renewal_date=renewal_date)
    assert (q.due_now, q.discount) == ((4062, -717) if year == 2028 else (4016, -709))
    assert q.lines[0].period_start == utc(year, 2, 1)


def test_upgrade_in_a_30_day_month_rounds_half_up(lic, clock, admin):
    # April 2026, t = Apr 10: 21 of 30 days left (f = 7/10), 15 % off.
    clock.now = utc(2026, 4, 10)
    setup = make_account(lic, subs={"month": (utc(2026, 1, 1), None)}, pools=[("month", "eco", 3, 3)],
                         discounts=[("15", utc(2026, 1, 1), None)])
    q = upgrade(lic, admin, setup, "month", "eco", 3, "pro")
    # credit gross -round(3*800*0.7) = -1680, 15 % of it 252 off: -1428
    # charge gross 6090, 15 % of it round(913.5) = 914 off (half-up): 5176
    # due 3748, discount -914 + 252 = -662, renewal 8700 - 1305 = 7395 on May 1
    assert_upgrade(q, fraction="7/10", credit=-1428, gross_credit=-1680, charge=5176, gross_charge=6090,
                   renewal=7395, renewal_date=utc(2026, 5, 1))
    assert (q.due_now, q.discount, q.discount_percent) == (3748, -662, Decimal("15"))


def test_upgrade_in_a_31_day_month_of_a_month_end_anchor(lic, clock, admin):
    # Anchor Dec 31 2025: period 2 is [Feb 28, Mar 31) = 31 days (from the anchor, not chained).
    # t = Mar 10 12:00: 20.5 of 31 days left, f = 41/62; 10 % off; 2 seats Advanced -> Pro.
    clock.now = utc(2026, 3, 10, 12)
    setup = make_account(lic, subs={"month": (utc(2025, 12, 31), None)}, pools=[("month", "advanced", 2, 2)],
                         discounts=[("10", utc(2025, 12, 31), None)])
    q = upgrade(lic, admin, setup, "month", "advanced", 2, "pro")
    # credit gross -round(123000/62 = 1983.87) = -1984, 10 % of it round(198.4) = 198 off: -1786
    # charge gross round(237800/62 = 3835.48) = 3835, round(383.5) = 384 off: 3451
    # due 1665, discount -384 + 198 = -186, renewal 5800 - 580 = 5220 on Mar 31
    assert_upgrade(q, fraction="41/62", credit=-1786, gross_credit=-1984, charge=3451, gross_charge=3835,
                   renewal=5220, renewal_date=utc(2026, 3, 31))
    assert q.lines[0].period_start == utc(2026, 2, 28)


@pytest.mark.parametrize(
    ("discounts", "renewal"),
    [
        # 20 % ends Apr 20, before the renewal on May 1: renewal 1 x 1500 without discount
        ([("20", utc(2026, 1, 1), utc(2026, 4, 20))], 1500),
        # 20 % ending exactly at the renewal is no longer active then
        ([("20", utc(2026, 1, 1), utc(2026, 5, 1))], 1500),
        # 20 % now, then 50 % from the renewal on: renewal round(1500*0.5) = 750
        ([("20", utc(2026, 1, 1), utc(2026, 5, 1)), ("50", utc(2026, 5, 1), None)], 750),
    ],
    ids=["ends-before-renewal", "ends-at-renewal", "next-discount-at-renewal"],
)
def test_upgrade_discount_now_and_at_renewal(lic, clock, admin, discounts, renewal):
    # April 2026 (30 days), t = Apr 16: f = 15/30 = 1/2; 20 % active now; 1 seat Eco -> Advanced.
    clock.now = utc(2026, 4, 16)
    setup = make_account(lic, subs={"month": (utc(2026, 2, 1), None)}, pools=[("month", "eco", 1, 1)],
                         discounts=discounts)
    q = upgrade(lic, admin, setup, "month", "eco", 1, "advanced")
    # credit -round(800*0.5*0.8) = -320 (gross -400); charge round(1500*0.5*0.8) = 600 (gross 750)
    # due 280, discount 280 - 350 = -70
    assert_upgrade(q, fraction="1/2", credit=-320, gross_credit=-400, charge=600, gross_charge=750,
                   renewal=renewal, renewal_date=utc(2026, 5, 1))
    assert q.discount_percent == Decimal("20")


def test_zero_percent_discount_charges_the_gross(lic, clock, admin):
    clock.now = utc(2026, 4, 10)
    setup = make_account(lic, subs={"month": (utc(2026, 1, 1), None)}, pools=[("month", "eco", 3, 3)],
                         discounts=[("0", utc(2026, 1, 1), None)])
    q = upgrade(lic, admin, setup, "month", "eco", 3, "pro")
    # f = 7/10: credit -round(2400*0.7) = -1680, charge round(8700*0.7) = 6090; due 4410; renewal 8700
    assert_upgrade(q, fraction="7/10", credit=-1680, gross_credit=-1680, charge=6090, gross_charge=6090,
                   renewal=8700, renewal_date=utc(2026, 5, 1))
    assert (q.due_now, q.discount, q.discount_percent) == (4410, 0, Decimal("0"))


def test_full_discount_upgrade_is_confirmed_without_payment(lic, clock, admin, db):
    clock.now = utc(2026, 4, 10)
    setup = make_account(lic, subs={"month": (utc(2026, 1, 1), None)}, pools=[("month", "eco", 3, 3)],
                         discounts=[("100.00", utc(2026, 1, 1), None)])
    q = upgrade(lic, admin, setup, "month", "eco", 3, "pro")
    # f = 7/10, 100 % off: every amount 0; gross -1680 / 6090; discount 0 - 4410 = -4410; renewal 0
    assert_upgrade(q, fraction="7/10", credit=0, gross_credit=-1680, charge=0, gross_charge=6090,
                   renewal=0, renewal_date=utc(2026, 5, 1))
    assert (q.due_now, q.discount) == (0, -4410)
    with pytest.raises(InvalidInput):
        lic.links.payment_link(admin, q.id)
    assert lic.quotes.quote(admin, q.id).payment_url is None
    done = lic.quotes.confirm_without_payment(admin, q.id)
    assert done.status == "paid"
    with db.read() as s:
        quantities = dict(s.execute(select(Pool.plan_code, Pool.quantity)
                                    .where(Pool.account_id == setup.account_id)).all())
        holders = s.scalars(select(Seat.user_id).join(Pool, Pool.id == Seat.pool_id)
                            .where(Pool.plan_code == "pro")).all()
    assert quantities == {"eco": 0, "pro": 3}
    assert sorted(holders) == sorted(setup.users[("month", "eco")])


def test_upgrade_in_a_yearly_pool(lic, clock, admin):
    # Yearly anchor Feb 29 2024: period 2 is [Feb 28 2026, Feb 28 2027) = 365 days.
    # t = Mar 10 2026 12:00: 354.5 of 365 days left, f = 709/730; 15 % off; 2 seats API Advanced -> API Pro.
    clock.now = utc(2026, 3, 10, 12)
    setup = make_account(lic, subs={"year": (utc(2024, 2, 29), None)}, pools=[("year", "api_advanced", 3, 2)],
                         discounts=[("15", utc(2024, 1, 1), None)])
    q = upgrade(lic, admin, setup, "year", "api_advanced", 2, "api_pro")
    # credit: 2*49000*709/730 = 95180.82 (gross -95181); *0.85 = 80903.70 -> -80904
    # charge: 2*99000*709/730 = 192304.11 (gross 192304); *0.85 = 163458.49 -> 163458
    # due 82554, discount 82554 - 97123 = -14569, renewal round(198000*0.85) = 168300 on Feb 28 2027
    assert_upgrade(q, fraction="709/730", credit=-80904, gross_credit=-95181, charge=163458,
                   gross_charge=192304, renewal=168300, renewal_date=utc(2027, 2, 28))
    assert (q.due_now, q.discount, q.interval) == (82554, -14569, "year")
    assert q.lines[0].period_start == utc(2026, 2, 28)


def test_upgrade_on_the_demo_account(demo, admin, db):
    # Demo at 2026-03-10 12:00: monthly period [Mar 1 12:00, Apr 1 12:00) = 31 days, 22 left
    # (f = 22/31), Partner discount 15 %. Lee Gu: 1 seat Eco -> Pro.
    with db.read() as s:
        pool_id, user_id = s.execute(
            select(Pool.id, Seat.user_id).join(Seat, Seat.pool_id == Pool.id).join(User, User.id == Seat.user_id)
            .join(Subscription, Subscription.id == Pool.subscription_id)
            .where(Pool.plan_code == "eco", Subscription.interval == "month", User.name == "Lee Gu")).one()
    q = demo.quotes.quote_upgrade(admin, pool_id, [user_id], "pro")
    # credit -round(800*22/31*0.85 = 482.58) = -483, gross -round(567.74) = -568
    # charge round(2900*22/31*0.85 = 1749.35) = 1749, gross round(2058.06) = 2058
    # due 1266, discount 1266 - 1490 = -224, renewal round(2900*0.85) = 2465 on Apr 1 12:00
    assert_upgrade(q, fraction="22/31", credit=-483, gross_credit=-568, charge=1749, gross_charge=2058,
                   renewal=2465, renewal_date=utc(2026, 4, 1, 12))
    assert (q.due_now, q.discount, q.discount_label) == (1266, -224, "Partner discount")


def test_purchase_joining_an_existing_period(lic, clock, admin):
    # April 2026, t = Apr 10: f = 21/30 = 7/10; 15 % off; 4 Advanced seats, monthly.
    clock.now = utc(2026, 4, 10)
    make_account(lic, subs={"month": (utc(2026, 1, 1), None)}, pools=[("month", "eco", 3, 1)],
                 discounts=[("15", utc(2026, 1, 1), None)])
    q = lic.quotes.quote_purchase(admin, [{"plan": "advanced", "interval": "month", "quantity": 4}])
    # due round(4*1500*0.7*0.85) = 3570, gross 4200, discount -630; renewal round(6000*0.85) = 5100 on May 1
    (line,) = q.lines
    assert (line.kind, line.fraction, line.new_period) == ("purchase", "7/10", False)
    assert (line.amount, line.gross, line.renewal_amount) == (3570, 4200, 5100)
    assert (line.period_start, line.period_end) == (utc(2026, 4, 1), utc(2026, 5, 1))
    assert (q.due_now, q.gross, q.discount, q.renewal_amount) == (3570, 4200, -630, 5100)
    assert q.renewal_date == utc(2026, 5, 1)
    check_sums(q)


@pytest.mark.parametrize(("year", "feb_end"), [(2026, 28), (2028, 29)], ids=["non-leap", "leap"])
def test_first_purchase_starts_a_new_period(lic, clock, admin, db, year, feb_end):
    # No subscription yet; t = Jan 31 10:00; 2 Eco monthly, 15 % off: f = 1, period [t, t + 1 month)
    clock.now = utc(year, 1, 31, 10)
    setup = make_account(lic, discounts=[("15", utc(year - 1, 1, 1), None)])
    q = lic.quotes.quote_purchase(admin, [{"plan": "eco", "interval": "month", "quantity": 2}])
    # due round(2*800*0.85) = 1360, gross 1600, discount -240; renewal 1360 on Feb 28/29 10:00
    (line,) = q.lines
    assert (line.fraction, line.new_period) == ("1/1", True)
    assert (line.period_start, line.period_end) == (utc(year, 1, 31, 10), utc(year, 2, feb_end, 10))
    assert (line.amount, line.gross, line.renewal_amount) == (1360, 1600, 1360)
    assert (q.due_now, q.gross, q.discount, q.renewal_amount) == (1360, 1600, -240, 1360)
    assert q.renewal_date == utc(year, 2, feb_end, 10)
    check_sums(q)
    with db.read() as s:
        assert s.scalars(select(Subscription).where(Subscription.account_id == setup.account_id)).first() is None


def test_full_discount_first_purchase_is_confirmed_without_payment(lic, clock, admin, db):
    clock.now = utc(2028, 1, 31, 10)
    setup = make_account(lic, discounts=[("100", utc(2027, 1, 1), utc(2028, 2, 1))])
    q = lic.quotes.quote_purchase(admin, [{"plan": "pro", "interval": "month", "quantity": 2}])
    # due 0 (100 % off), gross 5800, discount -5800; the discount ends Feb 1, before the
    # renewal on Feb 29 10:00: renewal 2*2900 = 5800
    assert (q.due_now, q.gross, q.discount, q.renewal_amount) == (0, 5800, -5800, 5800)
    assert q.renewal_date == utc(2028, 2, 29, 10)
    check_sums(q)
    with pytest.raises(InvalidInput):
        lic.links.payment_link(admin, q.id)
    assert lic.quotes.confirm_without_payment(admin, q.id).status == "paid"
    with db.read() as s:
        sub = s.scalars(select(Subscription).where(Subscription.account_id == setup.account_id)).one()
        pool = s.scalars(select(Pool).where(Pool.subscription_id == sub.id)).one()
    assert (sub.interval, sub.period_start, sub.period_end) == ("month", utc(2028, 1, 31, 10), utc(2028, 2, 29, 10))
    assert (pool.plan_code, pool.quantity) == ("pro", 2)


def test_cart_with_both_intervals(lic, clock, admin):
    # Monthly subscription in April 2026 (t = Apr 10: f = 7/10); no yearly one yet; 15 % off.
    clock.now = utc(2026, 4, 10)
    make_account(lic, subs={"month": (utc(2026, 1, 1), None)}, pools=[("month", "eco", 3, 1)],
                 discounts=[("15", utc(2026, 1, 1), None)])
    q = lic.quotes.quote_purchase(admin, [{"plan": "advanced", "interval": "month", "quantity": 4},
                                   {"plan": "pro", "interval": "year", "quantity": 1}])
    month, year = q.lines
    # monthly joins the period: round(4*1500*0.7*0.85) = 3570, gross 4200, renewal 5100 on May 1
    assert (month.interval, month.fraction, month.new_period) == ("month", "7/10", False)
    assert (month.amount, month.gross, month.renewal_amount) == (3570, 4200, 5100)
    assert month.period_end == utc(2026, 5, 1)
    # yearly starts a new period: f = 1, round(29000*0.85) = 24650, gross 29000, renewal 24650
    # on Apr 10 2027
    assert (year.interval, year.fraction, year.new_period) == ("year", "1/1", True)
    assert (year.amount, year.gross, year.renewal_amount) == (24650, 29000, 24650)
    assert (year.period_start, year.period_end) == (utc(2026, 4, 10), utc(2027, 4, 10))
    # due 3570 + 24650 = 28220, gross 33200, discount -4980; each renewal date with what it bills:
    # 5100 on May 1 (the monthly line), 24650 on Apr 10 2027 (the yearly one); the quote's own renewal
    # (as stored) is the next one: May 1 and only what renews then, never the sum of both dates
    assert (q.due_now, q.gross, q.discount) == (28220, 33200, -4980)
    assert [(r.date, r.amount) for r in q.renewals] == [(utc(2026, 5, 1), 5100), (utc(2027, 4, 10), 24650)]
    assert (q.renewal_date, q.renewal_amount) == (utc(2026, 5, 1), 5100)
    with lic.db.read() as s:
        stored = s.get(Quote, q.id)
        assert (stored.renewal_date.replace(tzinfo=UTC), stored.renewal_amount) == (utc(2026, 5, 1), 5100)
    check_sums(q)


def test_cart_preview_prices_like_the_quote(lic, clock, admin):
    clock.now = utc(2026, 4, 10)
    make_account(lic, subs={"month": (utc(2026, 1, 1), None)}, pools=[("month", "eco", 3, 1)],
                 discounts=[("15", utc(2026, 1, 1), None)])
    cart = [{"plan": "advanced", "interval": "month", "quantity": 4}, {"plan": "pro", "interval": "year",
                                                                       "quantity": 1}]
    preview, quote = lic.quotes.cart_preview(admin, cart), lic.quotes.quote_purchase(admin, cart)
    assert (preview.due_now, preview.gross, preview.discount, preview.renewal_amount) == (28220, 33200, -4980, 5100)
    assert preview.renewals == quote.renewals and len(preview.renewals) == 2
    assert [(ln.amount, ln.gross) for ln in preview.lines] == [(ln.amount, ln.gross) for ln in quote.lines]


def test_cart_preview_after_an_unrolled_period_end_joins_the_current_period(lic, clock, admin):
    # The monthly row still holds [Mar 1, Apr 1) (the roll-over job has not run); t = Apr 10.
    # The quote rolls it and joins [Apr 1, May 1): 4 Advanced, f = 7/10, no discount: 4200, renewal May 1.
    clock.now = utc(2026, 4, 10)
    make_account(lic, subs={"month": (utc(2026, 2, 1), 1)}, pools=[("month", "eco", 3, 1)])
    cart = [{"plan": "advanced", "interval": "month", "quantity": 4}]
    preview = lic.quotes.cart_preview(admin, cart)  # first: the quote below rolls the row over
    quote = lic.quotes.quote_purchase(admin, cart)
    assert (quote.due_now, quote.lines[0].fraction, quote.renewal_date) == (4200, "7/10", utc(2026, 5, 1))
    assert (preview.due_now, preview.lines[0].fraction, preview.renewal_date) == (4200, "7/10", utc(2026, 5, 1))
    # today the preview shows 6000, "1/1", renewal May 10
