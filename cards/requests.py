"""Upgrade requests as the administrators see them: the request card (pending, with Approve /
Decline and a refresh so that every admin sees the live status; decided, saying who decided),
the decline form, and the list of pending requests."""

from __future__ import annotations

from collections.abc import Iterable

from cards.base import action_set, card, container, execute, facts, input_text, refresh_for, text, title
from cards.data import PageRef, QuoteRef, RequestRef
from cards.i18n import N_, Locale, T
from cards.verbs import Verb
from core.kinds import RequestStatus
from core.views import Page, RequestView

MAX_REASON = 500
LIST_REASON = 140  # a reason is cut to this length in the list (the request card shows it whole)


def _change(r: RequestView) -> str:
    return f"{r.from_plan_name or '?'} → {r.to_plan_name}"


def reopened_notice(locale: Locale, r: RequestView, why: str) -> dict:
    """The requester is told that the quote for their approved request closed unpaid (``why``:
    cancelled or expired) and that the request waits for the administrators again."""
    t = T(locale)
    heading = t("requests.reopened.title")
    key = N_("requests.reopened.cancelled") if why == "cancelled" else N_("requests.reopened.expired")
    return card([title(heading), text(t(key, plan=r.to_plan_name))], fallback_text=heading)


def already_note(locale: Locale, r: RequestView) -> str:
    """The one line shown with a request that someone else (or a double click) decided first."""
    t = T(locale)
    key = N_("requests.already.approved") if r.status == RequestStatus.APPROVED else N_("requests.already.declined")
    when = t.datetime(r.decided_at) if r.decided_at else ""
    return t(key, name=r.decided_by_name or t("requests.unknown"), time=when)


def request_card(locale: Locale, r: RequestView, *, note: str | None = None,
                 admins: Iterable[str] = ()) -> dict:
    """A request as an administrator sees it: Approve / Decline while pending (refreshed for
    ``admins``, the chat ids of the administrators who may act, so each sees the live status),
    who decided and how once decided."""
    t = T(locale)
    heading = t("requests.title", name=r.requester_name)
    body = [title(heading)]
    if note:
        body.append(text(t.say(note), color="Warning"))
    info = [(t("requests.requester"), f"{r.requester_name} ({r.requester_email})"),
            (t("requests.change"), _change(r)),
            (t("requests.asked"), t.date(r.created_at))]
    if r.reason:
        info.append((t("requests.reason"), r.reason))
    body.append(facts(info))
    data = RequestRef(r.id)
    if r.status == RequestStatus.PENDING:
        body.append(text(t("requests.pending"), weight="Bolder"))
        body.append(text(t("requests.hint"), subtle=True, size_="Small"))
        actions = [execute(t("requests.btn.approve"), Verb.REQUEST_APPROVE, data, style="positive"),
                   execute(t("requests.btn.decline"), Verb.REQUEST_DECLINE, data, style="destructive")]
        refresh = refresh_for(execute(t("btn.refresh"), Verb.REQUEST_REFRESH, data), admins)
        return card(body, actions, refresh=refresh, fallback_text=heading)
    who = r.decided_by_name or t("requests.unknown")
    when = t.datetime(r.decided_at) if r.decided_at else ""
    actions = []
    if r.status == RequestStatus.APPROVED:
        body.append(text(t("requests.approved", name=who, time=when), weight="Bolder", color="Good"))
        if r.quote_id:
            actions.append(execute(t("requests.btn.open_quote"), Verb.QUOTE_REFRESH, QuoteRef(r.quote_id)))
    else:
        body.append(text(t("requests.declined", name=who, time=when), weight="Bolder", color="Attention"))
        if r.decline_reason:
            body.append(text(t("requests.declined_reason", reason=r.decline_reason)))
    actions.append(execute(t("requests.btn.all"), Verb.REQUESTS))
    return card(body, actions, fallback_text=heading)


def _back_data(r: RequestView, back: str | None, page: int) -> RequestRef:
    return RequestRef(r.id, "list", page) if back == "list" else RequestRef(r.id)


def decline_card(locale: Locale, r: RequestView, *, back: str | None = None, page: int = 0,
                 reason: str | None = None, note: str | None = None) -> dict:
    t = T(locale)
    heading = t("requests.decline.title", name=r.requester_name)
    body = [title(heading)]
    if note:
        body.append(text(t.say(note), color="Warning"))
    body.append(facts([(t("requests.change"), _change(r))]
                      + ([(t("requests.reason"), r.reason)] if r.reason else [])))
    body.append(input_text("reason", label=t("requests.decline.reason", name=r.requester_name),
                           placeholder=t("requests.decline.placeholder"), value=reason, max_length=MAX_REASON,
                           multiline=True))
    data = _back_data(r, back, page)
    back_action = (execute(t("btn.back"), Verb.REQUESTS, PageRef(page), inputs="none") if back == "list"
                   else execute(t("btn.back"), Verb.REQUEST_REFRESH, RequestRef(r.id), inputs="none"))
    actions = [execute(t("requests.btn.decline"), Verb.REQUEST_DECLINE_CONFIRM, data, style="destructive"), back_action]
    return card(body, actions, fallback_text=heading)


def _short(value: str, limit: int = LIST_REASON) -> str:
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def requests_list_card(locale: Locale, page: Page, *, note: str | None = None) -> dict:
    """A page (at most 20) of the account's pending requests, each with Approve / Decline."""
    t = T(locale)
    heading = t("requests.list.title", n=page.total)
    body = [title(heading)]
    if note:
        body.append(text(t.say(note), color="Warning"))
    if not page.items:
        body.append(text(t("requests.list.empty")))
    for r in page.items:
        line = t("requests.list.asked", date=t.date(r.created_at))
        if r.reason:
            line += f" · “{_short(r.reason)}”"
        item = container([
            text(f"{r.requester_name}: {_change(r)}", weight="Bolder"),
            text(line, subtle=True, size_="Small", spacing="None"),
            action_set([execute(t("requests.btn.approve"), Verb.REQUEST_APPROVE, RequestRef(r.id), style="positive"),
                        execute(t("requests.btn.decline"), Verb.REQUEST_DECLINE, RequestRef(r.id, "list", page.page))]),
        ])
        item["separator"] = True
        body.append(item)
    if page.total > page.page_size:
        body.append(text(t("users.page", page=page.page + 1, pages=page.pages), subtle=True, size_="Small"))
    nav = []
    if page.has_prev:
        nav.append(execute(t("btn.prev"), Verb.REQUESTS, PageRef(page.page - 1)))
    if page.has_next:
        nav.append(execute(t("btn.next"), Verb.REQUESTS, PageRef(page.page + 1)))
    if nav:
        body.append(action_set(nav))
    actions = [execute(t("btn.refresh"), Verb.REQUESTS, PageRef(page.page)), execute(t("btn.licenses"), Verb.POOLS)]
    return card(body, actions, fallback_text=heading)
