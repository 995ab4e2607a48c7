"""The figures on a quote add up as shown, to the cent: on the upgrade quote card, the purchase
quote and cart cards and the sandbox pay page, in English and French, for many generated quotes.

DESIGN.md applies the discount to each line (``round(n*p*f*(1-d))`` per line), so the sum of the
discounts is not the percentage of the sum of the gross amounts: the cards show each line's
discount under it, and a reader who adds the amounts shown gets the amount due."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from html.parser import HTMLParser

from babel.numbers import get_currency_precision, get_decimal_symbol
from hypothesis import given, settings
from hypothesis import strategies as st

from cards import purchase, upgrade
from cards.i18n import T, babel_locale
from core import pricing
from core.views import QuoteLineView, QuoteView, RenewalView
from payments.sandbox.checkout import PayPage
from payments.sandbox.pages import render_pay_page
from tests.harness import amount_rows, walk

START = datetime(2026, 3, 1, tzinfo=UTC)


def parse_money(value: str, locale: str, currency: str) -> int:
    """The minor units of an amount as a card shows it ("-$1.51", "+1 234,56 $US")."""
    sign = -1 if value.strip()[:1] in ("-", "\u2212") or "-" in value or "\u2212" in value else 1
    decimal = get_decimal_symbol(babel_locale(locale))
    digits = "".join(c for c in value if c.isdigit() or c == decimal).replace(decimal, ".")
    assert digits, value
    return sign * int(Decimal(digits).scaleb(get_currency_precision(currency)))


@st.composite
def quotes(draw) -> QuoteView:
    currency = draw(st.sampled_from(["USD", "EUR"]))
    percent = draw(st.sampled_from([None, Decimal("15"), Decimal("12.5"), Decimal("33.33"), Decimal("100")]))
    d = pricing.discount_rate(percent)
    f = Fraction(draw(st.integers(1, 10_000)), 10_000)
    price = st.integers(1, 200_000)
    end_month, end_year = START + timedelta(days=31), START + timedelta(days=365)
    if draw(st.booleans()):
        kind, n = "upgrade", draw(st.integers(1, 10_000))
        priced = pricing.upgrade_lines(n, "eco", draw(price), "pro", draw(price), "month", f, d)
        ends = [end_month, end_month]
        renewals = [0, pricing.renewal_amount(n, priced[1].unit_price, d)]
    else:
        kind = "purchase"
        specs = draw(st.lists(st.tuples(st.integers(1, 10_000), price, st.sampled_from(["month", "year"])),
                              min_size=1, max_size=20))
        priced = [pricing.purchase_line(n, "pro", p, i, f, d) for n, p, i in specs]
        ends = [end_month if i == "month" else end_year for _, _, i in specs]
        renewals = [pricing.renewal_amount(n, p, d) for n, p, _ in specs]
    lines = [QuoteLineView(ln.kind, ln.plan_code, "Pro" if ln.plan_code == "pro" else "Eco", ln.interval,
                           ln.quantity, ln.unit_price, str(ln.fraction), ln.gross, ln.amount, START, end, renewal,
                           False) for ln, end, renewal in zip(priced, ends, renewals, strict=True)]
    totals = pricing.totals(priced)
    carried = totals.due_now if 0 < totals.due_now < 50 and draw(st.booleans()) else 0
    by_date: dict[datetime, int] = {}
    for ln in lines:
        by_date[ln.period_end] = by_date.get(ln.period_end, 0) + ln.renewal_amount
    first = min(by_date)
    return QuoteView(
        id="q" * 32, kind=kind, status="open", account_id=1, currency=currency, created_by=1,
        created_by_name="Alex", created_at=START, priced_at=START, expires_at=START + timedelta(minutes=30),
        pool_id=1, from_plan="eco", from_plan_name="Eco", to_plan="pro", to_plan_name="Pro",
        interval="month" if kind == "upgrade" else None, users=[], lines=lines, gross=totals.gross,
        discount=totals.discount, discount_label=draw(st.sampled_from([None, "Partner discount"])),
        discount_percent=percent, due_now=totals.due_now - carried, renewal_amount=by_date[first],
        renewal_date=first, payment_url="https://pay.example/x", carried=carried,
        renewals=tuple(RenewalView(k, v) for k, v in sorted(by_date.items())))


def _check(shown: list[tuple[str, int]], due_label: str, q: QuoteView) -> None:
    """The amounts above the due row add up to it; it is the quote's amount due."""
    labels = [label for label, _ in shown]
    assert labels.count(due_label) == 1, labels
    at = labels.index(due_label)
    assert sum(a for _, a in shown[:at]) == shown[at][1] == q.due_now, shown
    assert shown[at + 1:] == [(label, r.amount) for (label, _), r in zip(shown[at + 1:], q.renewals, strict=True)]


class _Rows(HTMLParser):
    """The pay page's table rows: (label text, amount text)."""

    def __init__(self):
        super().__init__()
        self.rows, self._cells, self._in = [], [], False

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self._cells = []
        elif tag == "td":
            self._in = True
            self._cells.append("")

    def handle_endtag(self, tag):
        if tag == "td":
            self._in = False
        elif tag == "tr" and len(self._cells) == 2:
            self.rows.append(tuple(" ".join(c.split()) for c in self._cells))

    def handle_data(self, data):
        if self._in:
            self._cells[-1] += data


@settings(max_examples=150, deadline=None)
@given(q=quotes(), locale=st.sampled_from(["en-US", "fr-FR"]))
def test_the_quote_card_adds_up(q, locale):
    t = T(locale)
    rows = [(label, parse_money(a, locale, q.currency)) for label, a in amount_rows(upgrade.quote_card(locale, q))]
    _check(rows, t("quote.due"), q)
    line_rows = [a for (label, a) in rows if label in {t.quote_line(ln) for ln in q.lines}]
    assert line_rows == [ln.gross for ln in q.lines]


@settings(max_examples=150, deadline=None)
@given(q=quotes(), locale=st.sampled_from(["en-US", "fr-FR"]))
def test_the_pay_page_adds_up(q, locale):
    t = T(locale)
    parser = _Rows()
    parser.feed(render_pay_page(PayPage("payable", q, "Contoso"), "tok", locale))
    rows = [(label, parse_money(a, locale, q.currency)) for label, a in parser.rows]
    _check([(re.sub(r"\s+", " ", label), a) for label, a in rows], t("quote.due"), q)


@settings(max_examples=100, deadline=None)
@given(q=quotes(), locale=st.sampled_from(["en-US", "fr-FR"]))
def test_the_cart_adds_up(q, locale):
    if q.kind != "purchase":
        return
    t = T(locale)
    card = purchase.buy_card(locale, [_plan(q.currency)], {}, q.currency, q, key="k")
    shown = []
    for el in walk(card):  # the cart's lines: label | amounts (gross, then its discount) | Remove
        cols = el.get("columns") or []
        if el.get("type") == "ColumnSet" and len(cols) == 3 and cols[2]["items"][0]["type"] == "ActionSet":
            shown += [("line", parse_money(i["text"], locale, q.currency)) for i in cols[1]["items"]]
    shown += [(label, parse_money(a, locale, q.currency)) for label, a in amount_rows(card)]
    _check(shown, t("quote.due"), q)
    assert [a for label, a in shown if label == "line"] == [
        x for ln in q.lines for x in ([ln.gross, ln.amount - ln.gross] if ln.amount != ln.gross else [ln.gross])]


def _plan(currency: str):
    from core.views import PlanView

    return PlanView("pro", "Pro", "standard", "Standard", 3, currency, 2900, 29000)
