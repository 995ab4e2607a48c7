"""The buying journey's cards: the catalog with the cart (one card: the plans and their prices,
the form that adds a line, the priced cart), and the notices a buyer receives once a
purchase is paid or when a payment must be refunded."""

from __future__ import annotations

from cards.base import (
    action_set,
    amount_row,
    card,
    choice_set,
    column,
    columns,
    container,
    execute,
    facts,
    text,
    title,
)
from cards.data import MAX_CART_LINES, Cart, CartLine, PoolSelection
from cards.i18n import Locale, T
from cards.verbs import Verb
from core.errors import Message
from core.kinds import QuoteKind
from core.views import PlanView, QuoteLineView, QuoteView

MAX_LINES = MAX_CART_LINES


def _lines(cart: list[dict]) -> tuple[CartLine, ...]:
    return tuple(CartLine(ln["plan"], ln["interval"], ln["quantity"]) for ln in cart)


def _catalog(t: T, plans: list[PlanView], families: dict[str, str]) -> list[dict]:
    body = [text(t("purchase.catalog"), weight="Bolder", spacing="Medium")]
    head = [t("purchase.col.plan"), t("purchase.col.month"), t("purchase.col.year")]
    body.append(columns([column([text(h, weight="Bolder", size_="Small", wrap=False,
                                      horizontal=None if i == 0 else "Right")], "stretch" if i == 0 else "auto")
                         for i, h in enumerate(head)]))
    family = None
    for p in plans:
        if p.family != family:
            family = p.family
            body.append(text(t("purchase.family", family=families.get(family, family)), size_="Small",
                             subtle=True, spacing="Small"))
        body.append(columns([
            column([text(p.name, wrap=False)]),
            column([text(t("purchase.per_month", price=t.money(p.month, p.currency)), horizontal="Right",
                         wrap=False)], "auto"),
            column([text(t("purchase.per_year", price=t.money(p.year, p.currency)), horizontal="Right",
                         wrap=False)], "auto"),
        ], spacing="Small"))
    return body


def _number_input(id_: str, label: str, value: int, maximum: int) -> dict:
    return {"type": "Input.Number", "id": id_, "label": label, "min": 1, "max": maximum, "value": value}


def _line_detail(t: T, ln: QuoteLineView, currency: str) -> str:
    amount = t.money(ln.renewal_amount, currency)
    if ln.new_period:
        return t("purchase.new_period", interval=t.interval(ln.interval), amount=amount,
                 unit=t.unit(ln.interval), date=t.date(ln.period_end))
    return t("purchase.prorated", date=t.date(ln.period_end), amount=amount, unit=t.unit(ln.interval))


def cart_lines(preview: QuoteView | None) -> list[dict]:
    """The cart as card data: one {plan, interval, quantity} per priced line."""
    if preview is None:
        return []
    return [{"plan": ln.plan_code, "interval": ln.interval, "quantity": ln.quantity} for ln in preview.lines]


def buy_card(locale: Locale, plans: list[PlanView], families: dict[str, str], currency: str,
             preview: QuoteView | None, *, key: str, plan: str | None = None, interval: str | None = None,
             quantity: int = 1, note: str | None = None) -> dict:
    """The catalog, the add form (pre-selected ``plan``/``interval``) and the priced cart
    (``preview``: the core's pricing of the cart, no quote created). ``key`` names the quote
    that Checkout creates, so that a second click returns the same one."""
    t = T(locale)
    heading = t("purchase.title")
    cart = cart_lines(preview)
    body = [title(heading)]
    if note:
        body.append(text(t.say(note), color="Attention"))
    if not plans:
        body.append(text(t("purchase.no_plans", currency=currency)))
        return card(body, [execute(t("btn.licenses"), Verb.POOLS, inputs="none")], fallback_text=heading)
    body += _catalog(t, plans, families)

    body.append(text(t("purchase.add_title"), weight="Bolder", spacing="Medium"))
    codes = [p.code for p in plans]
    plan_choices = [(t("purchase.plan_choice", plan=p.name, family=families.get(p.family, p.family)), p.code)
                    for p in plans]
    interval_choices = [(t("purchase.interval.month"), "month"), (t("purchase.interval.year"), "year")]
    if len(cart) >= MAX_LINES:
        body.append(text(t("purchase.max_lines", n=len(cart)), color="Warning"))
    else:
        body.append(columns([
            column([choice_set("plan", plan_choices, label=t("purchase.plan"),
                               value=plan if plan in codes else codes[0])], vertical=None),
            column([choice_set("interval", interval_choices, label=t("purchase.interval"),
                               value=interval if interval in ("month", "year") else "month")], vertical=None),
        ]))
        body.append(_number_input("qty", t("purchase.qty"), quantity, 10_000))
        body.append(action_set([execute(t("purchase.btn.add"), Verb.BUY_ADD, Cart(_lines(cart)), style="positive")]))

    body.append(text(t("purchase.cart"), weight="Bolder", spacing="Medium"))
    actions = []
    if preview is None or not preview.lines:
        body.append(text(t("purchase.cart_empty"), subtle=True))
    else:
        cur = preview.currency
        rows = []
        for i, ln in enumerate(preview.lines):
            rest = cart[:i] + cart[i + 1:]
            label, amount = [text(t.quote_line(ln), weight="Bolder")], [text(t.money(ln.gross, cur), wrap=False,
                                                                             horizontal="Right")]
            if ln.amount != ln.gross:  # the line's own discount, under its gross amount (applied per line)
                label.append(text(t.discount_label(preview), subtle=True, size_="Small", spacing="None"))
                amount.append(text(t.signed(ln.amount - ln.gross, cur), subtle=True, size_="Small", spacing="None",
                                   wrap=False, horizontal="Right"))
            label.append(text(_line_detail(t, ln, cur), subtle=True, size_="Small", spacing="None"))
            rows.append(columns([
                column(label, vertical=None), column(amount, "auto", vertical=None),
                column([action_set([execute(t("purchase.btn.remove"), Verb.BUY_CART, Cart(_lines(rest)),
                                            inputs="none")])], "auto"),
            ], separator=i > 0))
        body.append(container(rows))
        totals = []
        if preview.carried:
            totals.append(amount_row(t("quote.carried"), t.money(-preview.carried, cur)))
        totals.append(amount_row(t("quote.due"), t.money(preview.due_now, cur), bold=True))
        totals += [amount_row(t("quote.renewal", date=t.date(r.date)), t.money(r.amount, cur), subtle=True)
                   for r in t.renewals(preview)]
        body.append(container(totals, style="emphasis", spacing="Medium"))
        body.append(text(t("purchase.hint"), subtle=True, size_="Small"))
        actions.append(execute(t("purchase.btn.checkout"), Verb.BUY_CHECKOUT, Cart(_lines(cart), key),
                               style="positive", inputs="none"))
    actions += [execute(t("btn.licenses"), Verb.POOLS, inputs="none"),
                execute(t("btn.cancel"), Verb.DISMISS, inputs="none")]
    return card(body, actions, fallback_text=heading)


def purchase_paid_notice(locale: Locale, q: QuoteView) -> dict:
    t = T(locale)
    heading = t("purchase.paid.title")
    body = [title(heading), text(t("purchase.paid.body_carried", amount=t.money(q.carried, q.currency)) if q.carried
                                 else t("purchase.paid.body", amount=t.money(q.due_now, q.currency)), color="Good"),
            facts([(t.quote_line(ln), t("quote.renewal", date=t.date(ln.period_end))
                    + f": {t.money(ln.renewal_amount, q.currency)}") for ln in q.lines]),
            text(t("purchase.paid.hint"), subtle=True, size_="Small")]
    return card(body, [execute(t("btn.licenses"), Verb.POOLS)], fallback_text=heading)


def refund_notice(locale: Locale, q: QuoteView | None, reason: str) -> dict:
    """The admin is told a payment must be refunded, why, and can prepare a new quote at once
    (upgrade: the tiers step for the same pool and users; purchase: the cart with the same lines)."""
    t = T(locale)
    heading = t("purchase.refund.title")
    body = [title(heading)]
    if reason and "{" not in reason and "}" not in reason:
        reason = t.say(Message(reason))  # the core's reasons are Message templates without parameters
    if q is not None:
        body.append(text(t("purchase.refund.body", date=t.date(q.created_at)), color="Attention"))
        pairs = [(t("purchase.refund.reason"), reason)] if reason else []
        pairs.append((t("purchase.refund.amount"), t.money(q.due_now, q.currency)))
        body.append(facts(pairs))
    elif reason:
        body.append(facts([(t("purchase.refund.reason"), reason)]))
    body.append(text(t("purchase.refund.hint"), subtle=True, size_="Small"))
    actions = []
    if q is not None and q.kind == QuoteKind.UPGRADE and q.pool_id and q.users:
        actions.append(execute(t("btn.new_quote"), Verb.UPGRADE_TIERS,
                               PoolSelection(q.pool_id, tuple(u.id for u in q.users)), style="positive"))
    elif q is not None and q.kind == QuoteKind.PURCHASE and q.lines:
        actions.append(execute(t("btn.new_quote"), Verb.BUY_CART, Cart(_lines(cart_lines(q))), style="positive"))
    return card(body, [*actions, execute(t("btn.licenses"), Verb.POOLS)], fallback_text=heading)
