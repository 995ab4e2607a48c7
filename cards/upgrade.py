"""The upgrade journey's cards: pools, a pool's users, the tier step, the quote, the paid
summary and the notice a user receives."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

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
    input_text,
    open_url,
    refresh_for,
    text,
    title,
)
from cards.data import BuyStart, PoolRef, PoolSelection, QuoteRef, RemovalForm, TierChoice, UsersPage
from cards.i18n import N_, Locale, T
from cards.verbs import Dataset, Verb
from core.kinds import PaymentStatus, QuoteKind, QuoteStatus
from core.views import Page, PageKey, PlanView, PoolView, QuoteView, UserRow

MAX_NAMES = 10
# a quote's status, as its card says it (catalog keys)
STATUSES = {"open": N_("status.open"), "paid": N_("status.paid"), "expired": N_("status.expired"),
            "cancelled": N_("status.cancelled"), "refund_needed": N_("status.refund_needed")}
# why the previous payment link of a quote lapsed
_LAPSED = {"failed": N_("quote.lapsed.failed"), "expired": N_("quote.lapsed.expired")}


def pools_card(locale: Locale, account_name: str, pools: list[PoolView], *, note: str | None = None) -> dict:
    t = T(locale)
    body = [title(t("pools.title", account=account_name))]
    if note:
        body.append(text(t.say(note), color="Warning"))
    if not pools:
        body.append(text(t("pools.empty")))
    else:
        head = [t("pools.plan"), t("pools.bought"), t("pools.assigned"), t("pools.free"), t("pools.renewal")]
        widths = ["stretch", "auto", "auto", "auto", "auto"]
        body.append(columns([column([text(h, weight="Bolder", size_="Small", wrap=False)], w)
                             for h, w in zip(head, widths, strict=True)]))
        for p in pools:
            plan = [text(p.plan_name, weight="Bolder", wrap=False),
                    text(f"{t.interval(p.interval)} · {t.money(p.unit_price, p.currency)}", subtle=True,
                         size_="Small", spacing="None")]
            if p.removal_scheduled:
                plan.append(text(t.plural("pools.removal", "n", n=p.removal_scheduled), size_="Small", color="Warning",
                                 spacing="None"))
            assigned = action_set([execute(str(p.assigned), Verb.POOL_USERS, PoolRef(p.id),
                                           tooltip=f"{p.plan_name}: {t('pools.assigned')}")])
            body.append(columns([
                column(plan),
                column([text(str(p.quantity), horizontal="Right")], "auto"),
                column([assigned], "auto"),
                column([text(str(p.free), horizontal="Right")], "auto"),
                column([text(t.date(p.renewal_date), wrap=False)], "auto"),
            ], separator=True))
        body.append(text(t("pools.hint"), subtle=True, size_="Small"))
    actions = [execute(t("btn.buy"), Verb.BUY_START, inputs="none"),
               execute(t("btn.assign"), Verb.ASSIGN_START, inputs="none"),
               execute(t("btn.requests"), Verb.REQUESTS, inputs="none"),
               execute(t("btn.audit"), Verb.AUDIT, inputs="none")]
    return card(body, actions, fallback_text=t("pools.title", account=account_name))


def _user_choice(t: T, u: UserRow) -> tuple[str, str]:
    label = f"{u.name} — {u.email}"
    if u.held_until:
        label += f" ({t('users.held', time=t.datetime(u.held_until))})"
    elif u.downgrade_to:
        label += f" ({t('users.downgrade', plan=u.downgrade_to_name or u.downgrade_to)})"
    return label[:200], str(u.id)


def pool_users_card(locale: Locale, pool: PoolView, page: Page, selected: list[int], *,
                    note: str | None = None) -> dict:
    """A page of (at most 20) users with checkboxes; the selection made on other pages
    travels in the actions' data, so the card never grows with the pool."""
    t = T(locale)
    page_ids = [u.id for u in page.items]
    on_page = set(page_ids)
    other = [i for i in selected if i not in on_page]
    checked = [str(i) for i in page_ids if i in set(selected)]
    # keyset paging (no offset to count): this page again from its first row, Previous before it,
    # Next after the last row
    first, last = page.first_key, page.last_key
    base = UsersPage(pool.id, page.page, page.query, tuple(other), tuple(page_ids),
                     PageKey("at", first) if first else None)
    interval = t.interval(pool.interval)
    heading = (t.plural("users.title_search", "total", plan=pool.plan_name, interval=interval, total=page.total,
                        query=page.query) if page.query else
               t.plural("users.title", "total", plan=pool.plan_name, interval=interval, total=page.total))
    body = [title(heading)]
    if note:
        body.append(text(t.say(note), color="Warning"))
    body.append(columns([
        column([input_text("q", placeholder=t("users.search"), value=page.query, max_length=100)]),
        column([action_set([execute(t("btn.search"), Verb.POOL_SEARCH, base)])], "auto"),
    ]))
    body.append(columns([
        column([choice_set("pick", [], placeholder=t("users.pick"), style="filtered",
                           dataset=f"{Dataset.POOL_USERS}:{pool.id}")]),
        column([action_set([execute(t("btn.add_pick"), Verb.POOL_PICK, base)])], "auto"),
    ]))
    if page.items:
        body.append(choice_set("users", [_user_choice(t, u) for u in page.items], label=t("users.select"),
                               value=",".join(checked), multi=True, style="expanded"))
    else:
        body.append(text(t("users.none"), subtle=True))
    status = t("users.page", page=page.page + 1, pages=page.pages)
    n_selected = len(other) + len(checked)
    body.append(text(f"{status} · {t.plural('users.selected', 'n', n=n_selected)}", subtle=True, size_="Small"))
    nav = []
    if page.has_prev:
        nav.append(execute(t("btn.prev"), Verb.POOL_USERS,
                           replace(base, page=page.page - 1, keyset=PageKey("before", first) if first else None)))
    if page.has_next:
        nav.append(execute(t("btn.next"), Verb.POOL_USERS,
                           replace(base, page=page.page + 1, keyset=PageKey("after", last) if last else None)))
    if page.query:
        nav.append(execute(t("btn.clear"), Verb.POOL_USERS, replace(base, page=0, cq="", keyset=None)))
    if n_selected:
        nav.append(execute(t("btn.clear_sel"), Verb.POOL_CLEAR, base))
    if nav:
        body.append(action_set(nav))
    if page.items:
        body.append(text(t("users.selection_actions"), size_="Small", weight="Bolder", spacing="Medium"))
        body.append(action_set([execute(t("btn.downgrade"), Verb.DOWNGRADE_CHOOSE, base),
                                execute(t("btn.unassign"), Verb.POOL_UNASSIGN, base)]))
    body.append(text(t("users.pool_actions"), size_="Small", weight="Bolder", spacing="Medium"))
    body.append(action_set([
        execute(t("btn.assign"), Verb.ASSIGN_START, PoolRef(pool.id), inputs="none"),
        execute(t("btn.remove_seats"), Verb.SEATS_REMOVE, RemovalForm(pool.id), inputs="none"),
        execute(t("btn.buy_more"), Verb.BUY_START, BuyStart(pool.plan_code, pool.interval),
                inputs="none"),
    ]))
    actions = [
        execute(t("btn.continue"), Verb.UPGRADE_TIERS, base, style="positive"),
        execute(t("btn.back"), Verb.POOLS, inputs="none"),
        execute(t("btn.cancel"), Verb.DISMISS, inputs="none"),
    ]
    return card(body, actions, fallback_text=heading)


def _names(t: T, users: list[UserRow], total: int) -> str:
    names = ", ".join(u.name for u in users[:MAX_NAMES])
    if total > MAX_NAMES:
        names += " " + t.plural("quote.more", "n", n=total - MAX_NAMES)
    return names


def tiers_card(locale: Locale, pool: PoolView, users: list[UserRow], total: int, options: list[PlanView],
               selected: list[int], *, key: str | None = None, note: str | None = None) -> dict:
    """The tiers to upgrade to. ``key``: the id of the quote Upgrade creates (chosen once per card
    shown, so that a second click of the same card gets the same quote)."""
    t = T(locale)
    heading = t.plural("tiers.title", "n", n=total, plan=pool.plan_name)
    data = PoolSelection(pool.id, tuple(selected))
    body = [title(heading)]
    if note:
        body.append(text(t.say(note), color="Warning"))
    body.append(text(_names(t, users, total), subtle=True))
    back = execute(t("btn.back"), Verb.POOL_USERS, data, inputs="none")
    cancel = execute(t("btn.cancel"), Verb.DISMISS, inputs="none")
    if not options:
        body.append(text(t("tiers.none", plan=pool.plan_name)))
        return card(body, [back, cancel], fallback_text=heading)
    choices = [(t("tiers.price", plan=p.name, price=t.money(p.price(pool.interval), p.currency),
                  unit=t.unit(pool.interval)), p.code) for p in options]
    body.append(choice_set("plan", choices, label=t("tiers.choose"), value=options[0].code, required=True))
    upgrade_data = TierChoice(pool.id, tuple(selected), key or None)
    actions = [execute(t("btn.upgrade"), Verb.UPGRADE_QUOTE, upgrade_data, style="positive"), back, cancel]
    return card(body, actions, fallback_text=heading)


def amount_rows(t: T, q: QuoteView) -> list[dict]:
    """A quote's amounts (:meth:`T.quote_amounts`: each line with its discount under it, then Due
    now), then each renewal date with what it bills."""
    rows = []
    for role, label, amount in t.quote_amounts(q):
        shown = t.signed(amount, q.currency) if role == "discount" else t.money(amount, q.currency)
        rows.append(amount_row(label, shown, bold=role == "due", subtle=role == "discount"))
    rows += [amount_row(t("quote.renewal", date=t.date(r.date)), t.money(r.amount, q.currency), subtle=True)
             for r in t.renewals(q)]
    return rows


def quote_card(locale: Locale, q: QuoteView, *, note: str | None = None, admins: Iterable[str] = ()) -> dict:
    """The quote while open; once paid the paid summary; once expired or cancelled, its state.
    Refreshed automatically for ``admins`` only (the chat ids of who may act on it)."""
    if q.status == QuoteStatus.PAID:
        return paid_card(locale, q, note=note, admins=admins)
    t = T(locale)
    cur = q.currency
    heading = t("quote.title") if q.kind == QuoteKind.UPGRADE else t("quote.purchase_title")
    body = [title(heading)]
    if note:
        body.append(text(t.say(note), color="Warning"))
    if q.status != QuoteStatus.OPEN:
        body.append(text(f"{t('label.status')}: {t(STATUSES[q.status])}", weight="Bolder", color="Attention"))
    if q.status in (QuoteStatus.CANCELLED, QuoteStatus.EXPIRED):  # the truth about the link while it closes
        closing = q.payment_status == PaymentStatus.CLOSING
        body.append(text(t("quote.closing") if closing else t("quote.nothing_charged"),
                         color="Warning" if closing else None))
    info = []
    if q.kind == QuoteKind.UPGRADE:
        assert q.interval, "an upgrade quote is of one interval"
        info += [(t("quote.users"), _names(t, q.users, len(q.users))),
                 (t("quote.change"), f"{q.from_plan_name} → {q.to_plan_name} ({t.interval(q.interval)})")]
    if q.kind == QuoteKind.UPGRADE and q.lines:
        info.append((t("quote.period"), f"{t.date(q.priced_at)} → {t.date(q.lines[0].period_end)}"))
    elif q.lines:  # a cart may mix intervals: each line has its own period
        for ln in q.lines:
            info.append((f"{ln.plan_name} ({t.interval(ln.interval)})",
                         t("quote.line_period", start=t.date(q.priced_at), end=t.date(ln.period_end))))
    info.append((t("label.prepared_by"), q.created_by_name))
    body.append(facts(info))
    body.append(container(amount_rows(t, q), style="emphasis", spacing="Medium"))
    refresh_data = QuoteRef(q.id)
    actions = []
    if q.status == QuoteStatus.OPEN:
        upgrade_quote = q.kind == QuoteKind.UPGRADE
        body.append(text(t("quote.expires" if upgrade_quote else "quote.purchase_expires",
                           time=t.datetime(q.expires_at)), subtle=True, size_="Small"))
        if q.payment_lapsed in _LAPSED:
            body.append(text(t(_LAPSED[q.payment_lapsed]), color="Warning"))
        if q.due_now > 0 and q.payment_url:
            body.append(text(t("quote.pay_hint" if upgrade_quote else "quote.purchase_pay_hint"), subtle=True,
                             size_="Small"))
            actions.append(open_url(t("btn.pay", amount=t.money(q.due_now, cur)), q.payment_url, style="positive"))
        elif q.due_now > 0 and q.payment_lapsed:  # (updated in place: the new link is made on this click)
            actions.append(execute(t("btn.new_link"), Verb.QUOTE_REFRESH, refresh_data, style="positive"))
        elif q.due_now <= 0:
            body.append(text(t("quote.carried_hint", amount=t.money(q.carried, cur)) if q.carried
                             else t("quote.nothing_due"), subtle=True, size_="Small"))
            actions.append(execute(t("btn.confirm"), Verb.QUOTE_CONFIRM, refresh_data, style="positive"))
        actions.append(execute(t("btn.refresh"), Verb.QUOTE_REFRESH, refresh_data))
        actions.append(execute(t("btn.back"), Verb.QUOTE_BACK, refresh_data))
        actions.append(execute(t("btn.cancel"), Verb.QUOTE_CANCEL, refresh_data, style="destructive"))
    else:
        if q.kind == QuoteKind.UPGRADE and q.pool_id and q.status in (QuoteStatus.EXPIRED, QuoteStatus.CANCELLED):
            actions.append(execute(t("btn.new_quote"), Verb.UPGRADE_TIERS,
                                   PoolSelection(q.pool_id, tuple(u.id for u in q.users))))
        actions.append(execute(t("btn.licenses"), Verb.POOLS))
    refresh = refresh_for(execute(t("btn.refresh"), Verb.QUOTE_REFRESH, refresh_data), admins)
    return card(body, actions, refresh=refresh, fallback_text=heading)


def paid_card(locale: Locale, q: QuoteView, *, note: str | None = None, admins: Iterable[str] = ()) -> dict:
    t = T(locale)
    heading = t("paid.title") if q.kind == QuoteKind.UPGRADE else t("status.paid")
    body = [title(heading)]
    if note:
        body.append(text(t.say(note), color="Warning"))
    renewals = [(t("quote.renewal", date=t.date(r.date)), t.money(r.amount, q.currency)) for r in t.renewals(q)]
    if q.kind == QuoteKind.UPGRADE:
        body.append(text(t.plural("paid.body", "n", n=len(q.users), plan=q.to_plan_name), color="Good"))
        if q.notices_delivered + q.notices_unreachable < q.notices_total:
            told = t.plural("paid.telling", "total", done=q.notices_delivered, total=q.notices_total)
        elif q.notices_unreachable:
            told = t.plural("paid.not_told", "n", n=q.notices_unreachable, total=q.notices_total)
        else:
            told = t.plural("paid.told", "n", n=len(q.users))
        body.append(text(told))
        assert q.interval, "an upgrade quote is of one interval"
        what = [(t("quote.users"), _names(t, q.users, len(q.users))),
                (t("quote.change"), f"{q.from_plan_name} → {q.to_plan_name} ({t.interval(q.interval)})")]
    else:
        body.append(text(t("paid.purchase_body"), color="Good"))
        what = [(t.quote_line(ln), t.money(ln.amount, q.currency)) for ln in q.lines]
    body.append(facts(what + _receipt(t, q) + renewals))
    # while notices are on their way, Teams refreshes the card when an admin views it, so that it comes to say "told"
    pending = q.notices_delivered + q.notices_unreachable < q.notices_total
    refresh = refresh_for(execute(t("btn.refresh"), Verb.QUOTE_REFRESH, QuoteRef(q.id)), admins) if pending else None
    return card(body, [execute(t("btn.licenses"), Verb.POOLS)], refresh=refresh, fallback_text=heading)


def _receipt(t: T, q: QuoteView) -> list[tuple[str, str]]:
    """What was paid, when, by whom and its reference (or the amount carried to the next invoice)."""
    out = []
    if q.due_now or not q.carried:
        out.append((t("paid.amount"), t.money(q.paid_amount if q.paid_amount is not None else q.due_now,
                                              q.currency)))
    out += _carried_fact(t, q)
    if q.paid_at:
        out.append((t("paid.at"), t.datetime(q.paid_at)))
    if q.due_now:
        out.append((t("paid.by"), q.paid_by or t("paid.via_link", name=q.created_by_name)))
    if q.payment_reference:
        out.append((t("paid.reference"), q.payment_reference))
    return out


def _carried_fact(t: T, q: QuoteView) -> list[tuple[str, str]]:
    """The amount carried to the next invoice, as a fact, when there is one."""
    return [(t("quote.carried"), t.money(q.carried, q.currency))] if q.carried else []


def upgraded_notice(locale: Locale, new_plan: str, old_plan: str) -> dict:
    t = T(locale)
    heading = t("notice.upgraded.title")
    return card([title(heading), text(t("notice.upgraded.body", plan=new_plan, old=old_plan))],
                fallback_text=heading)
