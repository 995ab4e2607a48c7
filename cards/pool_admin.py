"""A pool's administration cards: removing free seats at renewal, unassigning users,
scheduling (and cancelling) a downgrade at renewal, and the notices the users receive."""

from __future__ import annotations

from datetime import datetime

from cards.base import card, choice_set, execute, facts, text, title
from cards.data import PoolRef, PoolSelection, RemovalConfirm, RemovalForm
from cards.i18n import NP_, Locale, T
from cards.verbs import Verb
from core.views import PlanView, PoolView, UserRow

MAX_NAMES = 10


def _pool_name(t: T, pool: PoolView) -> str:
    return t("pool_admin.pool", plan=pool.plan_name, interval=t.interval(pool.interval))


def _names(t: T, users: list[UserRow], total: int) -> str:
    names = ", ".join(u.name for u in users[:MAX_NAMES])
    if total > min(len(users), MAX_NAMES):
        names += " " + t.plural("pool_admin.more", "n", n=total - min(len(users), MAX_NAMES))
    return names


def _renewal(t: T, pool: PoolView, key: str = NP_("pool_admin.renewal_now", "n"), **kw) -> tuple[str, str]:
    """The renewal fact; ``key``: one of the renewal strings (each counted by n)."""
    return t.plural(key, "n", n=pool.renewal_quantity, **kw), t.money(pool.renewal_amount, pool.currency)


def _number_input(id_: str, label: str, value: int, maximum: int) -> dict:
    return {"type": "Input.Number", "id": id_, "label": label, "min": 1, "max": maximum, "value": value}


def _users_button(t: T, pool: PoolView) -> dict:
    return execute(t("pool_admin.btn.users"), Verb.POOL_USERS, PoolRef(pool.id), inputs="none")


def _pools_button(t: T) -> dict:
    return execute(t("btn.licenses"), Verb.POOLS, inputs="none")


# ---------------------------------------------------------------------------- removing seats


def removal_form(locale: Locale, pool: PoolView, *, quantity: int = 1, preview: PoolView | None = None,
                 note: str | None = None) -> dict:
    """How many free seats to remove at renewal, with the renewal amount now and after."""
    t = T(locale)
    heading = t("pool_admin.remove.title", pool=_pool_name(t, pool))
    body = [title(heading)]
    if note:
        body.append(text(t.say(note), color="Attention"))
    pairs = [(t("pool_admin.bought"), str(pool.quantity)), (t("pool_admin.assigned"), str(pool.assigned)),
             (t("pool_admin.free"), str(max(pool.assignable, 0)))]
    if pool.removal_scheduled:
        pairs.append((t("pool_admin.leaving"), str(pool.removal_scheduled)))
    pairs += [(t("pool_admin.renewal_date"), t.date(pool.renewal_date)), _renewal(t, pool)]
    if preview is not None:
        pairs.append(_renewal(t, preview, NP_("pool_admin.renewal_after", "n"),
                              k=preview.removal_scheduled - pool.removal_scheduled))
    body.append(facts(pairs))
    actions = []
    if pool.assignable <= 0:
        body.append(text(t("pool_admin.remove.none_free"), color="Warning"))
    else:
        body.append(text(t("pool_admin.remove.explain", date=t.date(pool.renewal_date)), subtle=True,
                         size_="Small"))
        body.append(_number_input("qty", t("pool_admin.remove.qty", max=pool.assignable),
                                  min(max(quantity, 1), pool.assignable), pool.assignable))
        data = RemovalConfirm(pool.id, pool.removal_scheduled)
        actions += [execute(t("pool_admin.btn.remove"), Verb.SEATS_REMOVE_CONFIRM, data, style="destructive"),
                    execute(t("pool_admin.btn.preview"), Verb.SEATS_REMOVE, RemovalForm(pool.id, preview=True))]
    if pool.removal_scheduled:
        actions.append(execute(t("pool_admin.btn.cancel_removal"), Verb.SEATS_REMOVE_CANCEL, PoolRef(pool.id),
                               inputs="none"))
    actions += [_users_button(t, pool), execute(t("btn.cancel"), Verb.DISMISS, inputs="none")]
    return card(body, actions, fallback_text=heading)


def removal_done(locale: Locale, pool: PoolView, removed: int, *, note: str | None = None) -> dict:
    t = T(locale)
    heading = t("pool_admin.removed.title")
    body = [title(heading)]
    if note:
        body.append(text(t.say(note), color="Warning"))
    body.append(text(t.plural("pool_admin.removed.body", "n", n=removed, pool=_pool_name(t, pool),
                       date=t.date(pool.renewal_date)), color="Good"))
    body.append(facts([(t("pool_admin.leaving"), str(pool.removal_scheduled)),
                       (t("pool_admin.renewal_date"), t.date(pool.renewal_date)),
                       _renewal(t, pool, NP_("pool_admin.renewal_new", "n"))]))
    actions = []
    if pool.removal_scheduled:
        actions.append(execute(t("pool_admin.btn.cancel_removal"), Verb.SEATS_REMOVE_CANCEL, PoolRef(pool.id)))
    if pool.assignable > 0:
        actions.append(execute(t("pool_admin.btn.remove_more"), Verb.SEATS_REMOVE, RemovalForm(pool.id)))
    actions.append(_pools_button(t))
    return card(body, actions, fallback_text=heading)


def removal_cancelled(locale: Locale, pool: PoolView) -> dict:
    t = T(locale)
    heading = t("pool_admin.removal_cancelled.title")
    body = [title(heading), text(t("pool_admin.removal_cancelled.body", pool=_pool_name(t, pool)), color="Good"),
            facts([(t("pool_admin.renewal_date"), t.date(pool.renewal_date)),
                   _renewal(t, pool, NP_("pool_admin.renewal_new", "n"))])]
    actions = []
    if pool.assignable > 0:
        actions.append(execute(t("btn.remove_seats"), Verb.SEATS_REMOVE, RemovalForm(pool.id)))
    actions.append(_pools_button(t))
    return card(body, actions, fallback_text=heading)


# ---------------------------------------------------------------------------- unassigning


def unassign_confirm(locale: Locale, pool: PoolView, users: list[UserRow], selected: list[int]) -> dict:
    t = T(locale)
    n = len(selected)
    heading = t.plural("pool_admin.unassign.title", "n", n=n, pool=_pool_name(t, pool))
    body = [title(heading), text(_names(t, users, n), subtle=True),
            text(t("pool_admin.unassign.explain"), color="Warning")]
    data = PoolSelection(pool.id, tuple(selected))
    actions = [execute(t.plural("pool_admin.btn.unassign", "n", n=n), Verb.UNASSIGN_CONFIRM, data, style="destructive"),
               execute(t("btn.back"), Verb.POOL_USERS, data, inputs="none"),
               execute(t("btn.cancel"), Verb.DISMISS, inputs="none")]
    return card(body, actions, fallback_text=heading)


def unassign_done(locale: Locale, pool: PoolView, n: int) -> dict:
    t = T(locale)
    heading = t.plural("pool_admin.unassigned.title", "n", n=n)
    free = t.plural("pool_admin.unassigned.free", "free", free=max(pool.assignable, 0), pool=_pool_name(t, pool))
    body = [title(heading), text(f'{t.plural("pool_admin.unassigned.told", "n", n=n)} {free}', color="Good")]
    actions = []
    if pool.assignable > 0:
        actions.append(execute(t("btn.remove_seats"), Verb.SEATS_REMOVE, RemovalForm(pool.id)))
    actions += [_users_button(t, pool), _pools_button(t)]
    return card(body, actions, fallback_text=heading)


# ---------------------------------------------------------------------------- downgrades


def downgrade_card(locale: Locale, pool: PoolView, users: list[UserRow], selected: list[int],
                   options: list[PlanView], *, pool_total: int, max_users: int, note: str | None = None) -> dict:
    """Choose who (the selected users, or the whole pool when it is small enough) and the lower
    plan they move to at renewal; offers to cancel the downgrades already scheduled."""
    t = T(locale)
    heading = t("pool_admin.downgrade.title", pool=_pool_name(t, pool))
    data = PoolSelection(pool.id, tuple(selected))
    body = [title(heading)]
    if note:
        body.append(text(t.say(note), color="Attention"))
    back = execute(t("btn.back"), Verb.POOL_USERS, data, inputs="none")
    cancel = execute(t("btn.cancel"), Verb.DISMISS, inputs="none")
    actions = []
    scheduled = [u for u in users if u.downgrade_to]
    if scheduled:
        body.append(text(t.plural("pool_admin.downgrade.already", "n", n=len(scheduled)), color="Warning"))
        actions.append(execute(t("pool_admin.btn.cancel_downgrade"), Verb.DOWNGRADE_CANCEL, data, inputs="none"))
    if not options:
        body.append(text(t("pool_admin.downgrade.lowest", plan=pool.plan_name)))
        return card(body, actions + [back, cancel], fallback_text=heading)
    body.append(text(t("pool_admin.downgrade.explain", plan=pool.plan_name, date=t.date(pool.renewal_date)),
                     subtle=True))
    who = []
    if selected:
        who.append((t.plural("pool_admin.downgrade.who_sel", "n", n=len(selected),
                             names=_names(t, users, len(selected))), "sel"))
    if 0 < pool_total <= max_users:
        who.append((t.plural("pool_admin.downgrade.who_pool", "n", n=pool_total), "pool"))
    elif pool_total > max_users:
        body.append(text(t("pool_admin.downgrade.too_big", n=pool_total, max=max_users), subtle=True,
                         size_="Small"))
    if who:
        body.append(choice_set("who", who, label=t("pool_admin.downgrade.who"), value=who[0][1], style="expanded",
                               required=True))
    choices = [(t("tiers.price", plan=p.name, price=t.money(p.price(pool.interval), p.currency),
                  unit=t(f"unit.{pool.interval}")), p.code) for p in options]
    body.append(choice_set("plan", choices, label=t("pool_admin.downgrade.plan", date=t.date(pool.renewal_date)),
                           value=choices[-1][1], required=True))
    if who:
        actions.insert(0, execute(t("pool_admin.btn.schedule"), Verb.DOWNGRADE_SCHEDULE, data, style="positive"))
    return card(body, actions + [back, cancel], fallback_text=heading)


def downgrade_done(locale: Locale, pool: PoolView, to_plan_name: str, selected: list[int]) -> dict:
    t = T(locale)
    heading = t("pool_admin.scheduled.title")
    body = [title(heading),
            text(t.plural("pool_admin.scheduled.body", "n", n=len(selected), plan=pool.plan_name, to=to_plan_name,
                   date=t.date(pool.renewal_date)), color="Good"),
            facts([(t("pool_admin.renewal_date"), t.date(pool.renewal_date)),
                   _renewal(t, pool, NP_("pool_admin.renewal_new", "n"))])]
    data = PoolSelection(pool.id, tuple(selected))
    actions = [execute(t("pool_admin.btn.cancel_this"), Verb.DOWNGRADE_CANCEL, data), _users_button(t, pool),
               _pools_button(t)]
    return card(body, actions, fallback_text=heading)


def downgrade_cancelled(locale: Locale, pool: PoolView, n: int) -> dict:
    t = T(locale)
    heading = t("pool_admin.downgrade_cancelled.title")
    body = [title(heading),
            text(t.plural("pool_admin.downgrade_cancelled.body", "n", n=n, plan=pool.plan_name,
                          date=t.date(pool.renewal_date)), color="Good"),
            facts([_renewal(t, pool, NP_("pool_admin.renewal_new", "n"))])]
    return card(body, [_users_button(t, pool), _pools_button(t)], fallback_text=heading)


# ---------------------------------------------------------------------------- notices


def _notice(heading: str, body: str) -> dict:
    return card([title(heading), text(body)], fallback_text=heading)


def unassigned_notice(locale: Locale, plan: str, by: str) -> dict:
    t = T(locale)
    return _notice(t("pool_admin.notice.unassigned.title"), t("pool_admin.notice.unassigned.body", plan=plan, by=by))


def downgrade_scheduled_notice(locale: Locale, old: str, new: str, effective: datetime) -> dict:
    t = T(locale)
    return _notice(t("pool_admin.notice.downgrade_scheduled.title"),
                   t("pool_admin.notice.downgrade_scheduled.body", old=old, new=new, date=t.date(effective)))


def downgrade_cancelled_notice(locale: Locale, plan: str) -> dict:
    t = T(locale)
    return _notice(t("pool_admin.notice.downgrade_cancelled.title"),
                   t("pool_admin.notice.downgrade_cancelled.body", plan=plan))


def downgrade_applied_notice(locale: Locale, old: str, new: str, effective: datetime) -> dict:
    t = T(locale)
    return _notice(t("pool_admin.notice.downgrade_applied.title"),
                   t("pool_admin.notice.downgrade_applied.body", old=old, new=new, date=t.date(effective)))
