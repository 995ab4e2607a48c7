""""My license" as any user sees it: what they hold (plan, billing, since, renewal, pending
changes), the upgrade request form and its confirmation, and the notices a requester gets
once an administrator decided."""

from __future__ import annotations

from cards.base import card, choice_set, container, execute, facts, input_text, text, title
from cards.i18n import Locale, T
from cards.verbs import Verb
from core.kinds import RequestStatus
from core.views import PlanView, RequestView, SeatView

MAX_REASON = 500


def names_of(names: list[str]) -> str:
    return ", ".join(names)


def _pending_rows(t: T, seat: SeatView, requests: list[RequestView]) -> list[tuple[str, str]]:
    rows = []
    if seat.downgrade_to:
        rows.append((t("mylicense.pending"), t("mylicense.downgrade", plan=seat.downgrade_to_name or seat.downgrade_to,
                                                 date=t.date(seat.renewal_date))))
    for r in requests:
        if r.family != seat.family:
            continue
        if r.status == RequestStatus.PENDING:
            rows.append((t("mylicense.request"), t("mylicense.requested", plan=r.to_plan_name,
                                                   date=t.date(r.created_at))))
        elif r.status == RequestStatus.APPROVED:
            rows.append((t("mylicense.request"), t("mylicense.approved", plan=r.to_plan_name,
                                                   name=r.decided_by_name or "")))
    return rows


def requestable(seats: list[SeatView], requests: list[RequestView]) -> list[tuple[SeatView, PlanView]]:
    """The plans one may ask for: above a held plan, in a family with no pending request."""
    asked = {r.family for r in requests if r.status == RequestStatus.PENDING}
    return [(s, p) for s in seats if s.family not in asked for p in s.higher_plans]


def my_license_card(locale: Locale, seats: list[SeatView], requests: list[RequestView],
                    families: dict[str, str], *, admins: list[str] | None = None, note: str | None = None) -> dict:
    t = T(locale)
    heading = t("mylicense.title")
    body = [title(heading)]
    if note:
        body.append(text(t.say(note), color="Warning"))
    if not seats:
        body.append(text(t("mylicense.none"), weight="Bolder"))
        body.append(text(t("mylicense.ask", names=names_of(admins)) if admins else t("mylicense.ask_any")))
        return card(body, [execute(t("btn.refresh"), Verb.MYLICENSE)], fallback_text=heading)
    for seat in seats:
        rows = [(t("mylicense.billing"), t.interval(seat.interval)),
                (t("mylicense.since"), t.date(seat.since)),
                (t("mylicense.renews"), t.date(seat.renewal_date))]
        rows += _pending_rows(t, seat, requests)
        items = [text(seat.plan_name, weight="Bolder", size_="Medium"),
                 text(families.get(seat.family, seat.family), subtle=True, spacing="None"),
                 facts(rows)]
        if not seat.higher_plans:
            items.append(text(t("mylicense.top"), subtle=True, size_="Small"))
        box = container(items, spacing="Medium")
        box["separator"] = True
        body.append(box)
    actions = []
    if requestable(seats, requests):
        actions.append(execute(t("mylicense.btn.request"), Verb.MYLICENSE_REQUEST, style="positive"))
    else:
        body.append(text(t("mylicense.nothing"), subtle=True, size_="Small"))
    actions.append(execute(t("btn.refresh"), Verb.MYLICENSE))
    return card(body, actions, fallback_text=heading)


def request_form_card(locale: Locale, options: list[tuple[SeatView, PlanView]], families: dict[str, str], *,
                      plan: str | None = None, reason: str | None = None, note: str | None = None) -> dict:
    t = T(locale)
    heading = t("mylicense.form.title")
    body = [title(heading)]
    if note:
        body.append(text(t.say(note), color="Warning"))
    body.append(text(t("mylicense.form.body")))
    choices = [(t("mylicense.form.choice", plan=p.name, family=families.get(p.family, p.family),
                  current=s.plan_name), p.code) for s, p in options]
    codes = [c for _, c in choices]
    body.append(choice_set("plan", choices, label=t("mylicense.form.plan"),
                           value=plan if plan in codes else codes[0], required=True))
    body.append(input_text("reason", label=t("mylicense.form.reason"), placeholder=t("mylicense.form.placeholder"),
                           value=reason, max_length=MAX_REASON, multiline=True))
    actions = [execute(t("mylicense.btn.send"), Verb.MYLICENSE_SEND, style="positive"),
               execute(t("btn.back"), Verb.MYLICENSE, inputs="none")]
    return card(body, actions, fallback_text=heading)


def request_sent_card(locale: Locale, r: RequestView) -> dict:
    t = T(locale)
    heading = t("mylicense.sent.title")
    body = [title(heading),
            text(t("mylicense.sent.body", old=r.from_plan_name or "?", plan=r.to_plan_name), color="Good")]
    if r.reason:
        body.append(facts([(t("mylicense.reason"), r.reason)]))
    return card(body, [execute(t("mylicense.btn.mine"), Verb.MYLICENSE)], fallback_text=heading)


def not_user_card(locale: Locale, message: str, admins: list[str]) -> dict:
    """Someone of the account's tenant who is not one of its users: whom to ask."""
    t = T(locale)
    heading = t("error.not_registered.title")
    body = [title(heading), text(t("mylicense.not_user", names=names_of(admins)) if admins else t.say(message),
                                 color="Attention")]
    return card(body, fallback_text=heading)


def approved_notice(locale: Locale, r: RequestView, by: str) -> dict:
    t = T(locale)
    heading = t("mylicense.approved.title")
    body = [title(heading), text(t("mylicense.approved.body", name=by, plan=r.to_plan_name)),
            facts([(t("mylicense.change"), f"{r.from_plan_name or '?'} → {r.to_plan_name}")])]
    return card(body, [execute(t("mylicense.btn.mine"), Verb.MYLICENSE)], fallback_text=heading)


def declined_notice(locale: Locale, r: RequestView, by: str, reason: str | None) -> dict:
    t = T(locale)
    heading = t("mylicense.declined.title")
    body = [title(heading), text(t("mylicense.declined.body", name=by, plan=r.to_plan_name)),
            text(t("mylicense.declined.reason", reason=reason) if reason else t("mylicense.declined.none", name=by))]
    return card(body, [execute(t("mylicense.btn.mine"), Verb.MYLICENSE)], fallback_text=heading)
