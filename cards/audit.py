"""The audit card: the account's recent events, newest first, paged by 20, with a link to
download the whole log as CSV. Every text that comes from the database (names, targets,
refusal messages) is shown in TextRuns, which Teams does not read as Markdown, and clipped
so that the card stays under the size budget whatever the messages."""

from __future__ import annotations

import re
from datetime import UTC

from babel.dates import format_datetime

from cards.base import CARD_BUDGET, action_set, card, container, execute, open_url, size, text, title
from cards.data import PageRef
from cards.i18n import N_, Locale, T
from cards.verbs import Verb
from core.views import AuditRow, Page, PoolView

LINK_MINUTES = 10
_BUDGET = CARD_BUDGET - 1024  # room for the activity envelope around the card
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
# (message, actor, target) character limits, tried in turn until the card fits the budget
_LIMITS = ((240, 60, 60), (120, 40, 40), (60, 30, 30), (0, 20, 20))

# The audit actions (core.kinds.AuditAction; tests/test_kinds.py checks each has words) -> the
# catalog key of their words: what happened (outcome "ok") ...
_DONE = {
    "demo.loaded": N_("audit.done.demo.loaded"),
    "quote.upgrade": N_("audit.done.quote.upgrade"),
    "quote.purchase": N_("audit.done.quote.purchase"),
    "payment.link_created": N_("audit.done.payment.link_created"),
    "quote.cancelled": N_("audit.done.quote.cancelled"),
    "quote.expired": N_("audit.done.quote.expired"),
    "quote.confirmed": N_("audit.done.quote.confirmed"),
    "quote.settled": N_("audit.done.quote.settled"),
    "payment.failed": N_("audit.done.payment.failed"),
    "payment.expired": N_("audit.done.payment.expired"),
    "payment.refund_needed": N_("audit.done.payment.refund_needed"),
    "payment.unknown_quote": N_("audit.done.payment.unknown_quote"),
    "seat.assigned": N_("audit.done.seat.assigned"),
    "seat.unassigned": N_("audit.done.seat.unassigned"),
    "seat.downgraded": N_("audit.done.seat.downgraded"),
    "seats.removal_scheduled": N_("audit.done.seats.removal_scheduled"),
    "seats.removal_cancelled": N_("audit.done.seats.removal_cancelled"),
    "seats.removed": N_("audit.done.seats.removed"),
    "downgrade.scheduled": N_("audit.done.downgrade.scheduled"),
    "downgrade.cancelled": N_("audit.done.downgrade.cancelled"),
    "period.rolled_over": N_("audit.done.period.rolled_over"),
    "user.added": N_("audit.done.user.added"),
    "request.created": N_("audit.done.request.created"),
    "request.approved": N_("audit.done.request.approved"),
    "request.declined": N_("audit.done.request.declined"),
    "request.reopened": N_("audit.done.request.reopened"),
    "audit.exported": N_("audit.done.audit.exported"),
}
# ... and what was attempted (outcome "refused")
_TRIED = {
    "whoami": N_("audit.tried.whoami"),
    "admin": N_("audit.tried.admin"),
    "pools.list": N_("audit.tried.pools.list"),
    "pool.view": N_("audit.tried.pool.view"),
    "pool.users": N_("audit.tried.pool.users"),
    "directory.search": N_("audit.tried.directory.search"),
    "directory.rows": N_("audit.tried.directory.rows"),
    "directory.user": N_("audit.tried.directory.user"),
    "directory.lookup": N_("audit.tried.directory.lookup"),
    "pool.rows": N_("audit.tried.pool.rows"),
    "seats.remove_preview": N_("audit.tried.seats.remove_preview"),
    "requests.mine": N_("audit.tried.requests.mine"),
    "rate.limited": N_("audit.tried.rate.limited"),
    "upgrade.options": N_("audit.tried.upgrade.options"),
    "downgrade.options": N_("audit.tried.downgrade.options"),
    "quote.upgrade": N_("audit.tried.quote.upgrade"),
    "quote.purchase": N_("audit.tried.quote.purchase"),
    "cart.preview": N_("audit.tried.cart.preview"),
    "quote.view": N_("audit.tried.quote.view"),
    "quote.cancel": N_("audit.tried.quote.cancel"),
    "quote.confirm": N_("audit.tried.quote.confirm"),
    "payment.link": N_("audit.tried.payment.link"),
    "seat.assign": N_("audit.tried.seat.assign"),
    "seat.unassign": N_("audit.tried.seat.unassign"),
    "seats.remove": N_("audit.tried.seats.remove"),
    "seats.remove_cancel": N_("audit.tried.seats.remove_cancel"),
    "downgrade.schedule": N_("audit.tried.downgrade.schedule"),
    "downgrade.cancel": N_("audit.tried.downgrade.cancel"),
    "my_license": N_("audit.tried.my_license"),
    "user.add": N_("audit.tried.user.add"),
    "request.create": N_("audit.tried.request.create"),
    "request.view": N_("audit.tried.request.view"),
    "requests.list": N_("audit.tried.requests.list"),
    "request.approve": N_("audit.tried.request.approve"),
    "request.decline": N_("audit.tried.request.decline"),
    "audit.list": N_("audit.tried.audit.list"),
    "audit.export": N_("audit.tried.audit.export"),
    "buy.start": N_("audit.tried.buy.start"),
    "buy.cart": N_("audit.tried.buy.cart"),
    "buy.add": N_("audit.tried.buy.add"),
    "buy.checkout": N_("audit.tried.buy.checkout"),
    "assign.start": N_("audit.tried.assign.start"),
    "assign.search": N_("audit.tried.assign.search"),
    "card.unknown_verb": N_("audit.tried.card.unknown_verb"),
    "card.malformed": N_("audit.tried.card.malformed"),
    "tenant.refused": N_("audit.tried.tenant.refused"),
}



# a target without its name at hand: "user #12"
_TARGETS = {"user": N_("audit.target.user"), "pool": N_("audit.target.pool"), "request": N_("audit.target.request"),
            "subscription": N_("audit.target.subscription"), "account": N_("audit.target.account")}


def clip(value: str | None, limit: int) -> str:
    """One line of at most ``limit`` characters (control characters dropped, "…" when cut)."""
    value = " ".join(_CONTROL.sub(" ", value or "").split())
    if limit <= 0:
        return ""
    return value if len(value) <= limit else value[: max(1, limit - 1)].rstrip() + "…"


def action_label(t: T, action: str, outcome: str = "ok") -> str:
    """An action name in words: what was attempted for a refusal, what happened otherwise;
    a ``card.<verb>`` refusal or an action without words is said generically, never as a code."""
    action = action or ""
    order = (_TRIED, _DONE) if outcome == "refused" else (_DONE, _TRIED)
    for labels in order:
        if action in labels:
            return t(labels[action])
    if action.startswith("card."):
        return t("audit.card_action")
    return t("audit.other_action")  # (never a raw code: an action this version has no words for)


def target_label(t: T, target: str | None, users: dict[int, str], pools: dict[int, PoolView]) -> str:
    """``user:12`` -> the user's name, ``pool:3`` -> "Eco (monthly)", ``quote:<id>`` -> "quote 1a2b3c4d"...;
    anything else as it is."""
    kind, _, ref = (target or "").partition(":")
    if not ref:
        return target or ""
    num = int(ref) if re.fullmatch(r"[0-9]{1,18}", ref) else None
    if kind == "user" and num in users:
        return users[num]
    if kind == "pool" and num in pools:
        p = pools[num]
        return f"{p.plan_name} ({t.interval(p.interval)})"
    if kind == "quote":
        return t("audit.target.quote", id=ref[:8])
    if kind in _TARGETS and num is not None:
        return t(_TARGETS[kind], id=num)
    return target or ""


def _when(t: T, row: AuditRow) -> str:
    at = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return format_datetime(at, format="medium", tzinfo=t.zone or UTC, locale=t.babel)  # (the zone: in the summary)


def _run(value: str, **kw) -> dict:
    return {"type": "TextRun", "text": value, **kw}


def _row(t: T, row: AuditRow, users: dict[int, str], pools: dict[int, PoolView],
         limits: tuple[int, int, int]) -> dict:
    msg_limit, actor_limit, target_limit = limits
    refused = row.outcome == "refused"
    actor = t("audit.system") if (row.actor or "system") == "system" else clip(row.actor, actor_limit)
    what = [_run(_when(t, row), isSubtle=True, size="Small"), _run("  "), _run(actor, weight="Bolder"),
            _run("  "), _run(clip(action_label(t, row.action, row.outcome), 80))]
    target = clip(target_label(t, row.target, users, pools), target_limit)
    if target:
        what.append(_run(f" · {target}", isSubtle=True))
    items: list[dict] = [{"type": "RichTextBlock", "inlines": what}]
    if refused:
        why = [_run(t("audit.refused"), weight="Bolder", color="Attention")]
        message = clip(t.say(row.message or ""), msg_limit)
        if message:
            why.append(_run(f": {message}", color="Attention"))
        items.append({"type": "RichTextBlock", "inlines": why, "spacing": "None"})
    out = container(items, style="attention" if refused else None, spacing="Small")
    out["separator"] = True
    return out


def audit_card(locale: Locale, account_name: str, page: Page, *, export_url: str | None = None,
               users: dict[int, str] | None = None, pools: dict[int, PoolView] | None = None,
               note: str | None = None) -> dict:
    """A page of audit events (``page.items``: AuditRow, newest first); "Newer"/"Older" page
    with verb ``audit`` and data ``{page}``; "Export CSV" opens ``export_url``."""
    t = T(locale)
    users, pools = users or {}, pools or {}
    built: dict = {}
    for limits in _LIMITS:
        body = [title(t("audit.title", account=clip(account_name, 80))),
                text(t.plural("audit.summary", "total", total=page.total, page=page.page + 1, pages=page.pages,
                       zone=t.zone.key if t.zone else "UTC"),
                     subtle=True, size_="Small", spacing="None")]
        if note:
            body.append(text(clip(t.say(note), 300), color="Warning"))
        if not page.items:
            body.append(text(t("audit.empty")))
        body.extend(_row(t, r, users, pools, limits) for r in page.items)
        nav = []
        if page.has_prev:
            nav.append(execute(t("audit.newer"), Verb.AUDIT, PageRef(page.page - 1), inputs="none"))
        if page.has_next:
            nav.append(execute(t("audit.older"), Verb.AUDIT, PageRef(page.page + 1), inputs="none"))
        if nav:
            body.append(action_set(nav, spacing="Medium"))
        body.append(text(t("audit.export_hint", minutes=LINK_MINUTES) if export_url else t("audit.no_export"),
                         subtle=True, size_="Small", spacing="Medium"))
        actions = [open_url(t("audit.export"), export_url, style="positive")] if export_url else []
        actions += [execute(t("btn.refresh"), Verb.AUDIT, PageRef(page.page), inputs="none"),
                    execute(t("btn.licenses"), Verb.POOLS, inputs="none")]
        built = card(body, actions, fallback_text=t("audit.title", account=clip(account_name, 80)))
        if size(built) <= _BUDGET:
            break
    return built
