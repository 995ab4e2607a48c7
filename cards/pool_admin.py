"""A pool's administration cards: removing free seats at renewal, unassigning users,
scheduling (and cancelling) a downgrade at renewal, and the notices the users receive."""

from __future__ import annotations

from datetime import datetime

from cards import verbs
from cards.base import card, choice_set, execute, facts, text, title
from cards.i18n import Plural, T, add_strings
from core.views import PlanView, PoolView, UserRow

SEATS_REMOVE_CONFIRM = "seats.remove.confirm"  # data: {pool, scheduled} + input qty
SEATS_REMOVE_CANCEL = "seats.remove.cancel"  # data: {pool}
UNASSIGN_CONFIRM = "pool.unassign.confirm"  # data: {pool, sel}
DOWNGRADE_SCHEDULE = "downgrade.schedule"  # data: {pool, sel} + inputs who, plan
DOWNGRADE_CANCEL = "downgrade.cancel"  # data: {pool, sel}

MAX_NAMES = 10

add_strings({
    "en": {
        "pool_admin.pool": "{plan} ({interval})",
        "pool_admin.bought": "Bought",
        "pool_admin.assigned": "Assigned",
        "pool_admin.free": "Free to remove",
        "pool_admin.leaving": "Already leaving at renewal",
        "pool_admin.renewal_date": "Next renewal",
        "pool_admin.renewal_now": Plural("Renewal now: {n} seat", "Renewal now: {n} seats"),
        "pool_admin.renewal_after": Plural("After removing {k}: {n} seat", "After removing {k}: {n} seats"),
        "pool_admin.renewal_new": Plural("Renewal from then: {n} seat", "Renewal from then: {n} seats"),
        "pool_admin.remove.title": "Remove seats from {pool}",
        "pool_admin.remove.explain": "Free seats can be removed; they leave at the end of the billing period, on "
                                     "{date}. Nothing is refunded, and they stay usable until then.",
        "pool_admin.remove.none_free": "No seat of this pool is free: unassign users first, then remove their seats.",
        "pool_admin.remove.qty": "Seats to remove (1 to {max})",
        "pool_admin.btn.preview": "Update amounts",
        "pool_admin.btn.remove": "Remove at renewal",
        "pool_admin.btn.cancel_removal": "Cancel the removal",
        "pool_admin.btn.remove_more": "Remove more seats",
        "pool_admin.btn.users": "Users of this pool",
        "pool_admin.removed.title": "Seats removed at renewal",
        "pool_admin.removed.body": Plural("{n} seat of {pool} leaves on {date}. Nothing is refunded.",
                                          "{n} seats of {pool} leave on {date}. Nothing is refunded."),
        "pool_admin.removal_cancelled.title": "Removal cancelled",
        "pool_admin.removal_cancelled.body": "No seat of {pool} leaves at renewal any more.",
        "pool_admin.unassign.title": Plural("Unassign {n} user from {pool}", "Unassign {n} users from {pool}"),
        "pool_admin.unassign.explain": "They lose this license now and are told in Teams. Their seats become free "
                                       "and are still billed until you remove them.",
        "pool_admin.btn.unassign": Plural("Unassign {n} user", "Unassign {n} users"),
        "pool_admin.unassigned.title": Plural("{n} user unassigned", "{n} users unassigned"),
        "pool_admin.unassigned.told": Plural("They have been told in Teams.", "Each of them has been told in Teams."),
        "pool_admin.unassigned.free": Plural("{free} seat of {pool} is free now.",
                                             "{free} seats of {pool} are free now.",
                                             "free"),
        "pool_admin.downgrade.title": "Downgrade at renewal from {pool}",
        "pool_admin.downgrade.explain": "The users keep {plan} until {date}, then move to the plan you choose. "
                                        "They are told now. Nothing is refunded.",
        "pool_admin.downgrade.who": "Who",
        "pool_admin.downgrade.who_sel": Plural("The selected user: {names}", "The {n} selected users: {names}"),
        "pool_admin.downgrade.who_pool": Plural("Everyone in this pool ({n} user)",
                                                "Everyone in this pool ({n} users)"),
        "pool_admin.downgrade.too_big": "This pool has {n} users: at most {max} can be downgraded at once, so "
                                        "select them in the pool's users card, in several rounds.",
        "pool_admin.downgrade.plan": "New plan from {date}",
        "pool_admin.downgrade.lowest": "{plan} is the lowest tier of its family: there is nothing to downgrade to.",
        "pool_admin.downgrade.already": Plural("{n} of the selected users already has a downgrade scheduled.",
                                               "{n} of the selected users already have a downgrade scheduled."),
        "pool_admin.downgrade.missing": "Choose the new plan first.",
        "pool_admin.btn.schedule": "Schedule",
        "pool_admin.btn.cancel_downgrade": "Cancel their downgrade",
        "pool_admin.scheduled.title": "Downgrade scheduled",
        "pool_admin.scheduled.body": Plural("{n} user moves from {plan} to {to} on {date}. They keep {plan} until "
                                            "then and have been told.",
                                            "{n} users move from {plan} to {to} on {date}. They keep {plan} until "
                                            "then and have been told."),
        "pool_admin.btn.cancel_this": "Cancel this downgrade",
        "pool_admin.downgrade_cancelled.title": "Downgrade cancelled",
        "pool_admin.downgrade_cancelled.body": Plural("{n} user keeps {plan} after {date}; they have been told.",
                                                       "{n} users keep {plan} after {date}; they have been told."),
        "pool_admin.more": Plural("and {n} more", "and {n} more"),
        "pool_admin.notice.unassigned.title": "Your license was removed",
        "pool_admin.notice.unassigned.body": "{by} removed your {plan} license. Ask an administrator if you still "
                                             "need it.",
        "pool_admin.notice.downgrade_scheduled.title": "Your license changes at renewal",
        "pool_admin.notice.downgrade_scheduled.body": "You keep {old} until {date}, then you will have {new}.",
        "pool_admin.notice.downgrade_cancelled.title": "Your license change was cancelled",
        "pool_admin.notice.downgrade_cancelled.body": "You keep {plan}: the change planned at renewal will not happen.",
        "pool_admin.notice.downgrade_applied.title": "Your license changed",
        "pool_admin.notice.downgrade_applied.body": "You now have {new} (was {old}), since {date}.",
    },
    "fr": {
        "pool_admin.pool": "{plan} ({interval})",
        "pool_admin.bought": "Achetées",
        "pool_admin.assigned": "Attribuées",
        "pool_admin.free": "Libres à supprimer",
        "pool_admin.leaving": "Déjà retirées au renouvellement",
        "pool_admin.renewal_date": "Prochain renouvellement",
        "pool_admin.renewal_now": Plural("Renouvellement actuel : {n} licence", "Renouvellement actuel : {n} licences"),
        "pool_admin.renewal_after": Plural("Après en avoir retiré {k} : {n} licence",
                                           "Après en avoir retiré {k} : {n} licences"),
        "pool_admin.renewal_new": Plural("Renouvellement ensuite : {n} licence",
                                         "Renouvellement ensuite : {n} licences"),
        "pool_admin.remove.title": "Supprimer des licences de {pool}",
        "pool_admin.remove.explain": "Les licences libres peuvent être supprimées ; elles partent à la fin de la "
                                     "période de facturation, le {date}. Rien n'est remboursé et elles restent "
                                     "utilisables d'ici là.",
        "pool_admin.remove.none_free": "Aucune licence de ce lot n'est libre : retirez d'abord des utilisateurs, "
                                       "puis supprimez leurs licences.",
        "pool_admin.remove.qty": "Licences à supprimer (1 à {max})",
        "pool_admin.btn.preview": "Recalculer les montants",
        "pool_admin.btn.remove": "Supprimer au renouvellement",
        "pool_admin.btn.cancel_removal": "Annuler la suppression",
        "pool_admin.btn.remove_more": "Supprimer d'autres licences",
        "pool_admin.btn.users": "Utilisateurs de ce lot",
        "pool_admin.removed.title": "Licences supprimées au renouvellement",
        "pool_admin.removed.body": Plural("{n} licence de {pool} part le {date}. Rien n'est remboursé.",
                                          "{n} licences de {pool} partent le {date}. Rien n'est remboursé."),
        "pool_admin.removal_cancelled.title": "Suppression annulée",
        "pool_admin.removal_cancelled.body": "Plus aucune licence de {pool} ne part au renouvellement.",
        "pool_admin.unassign.title": Plural("Retirer la licence de {n} utilisateur de {pool}",
                                           "Retirer la licence de {n} utilisateurs de {pool}"),
        "pool_admin.unassign.explain": "Ils perdent cette licence dès maintenant et sont prévenus dans Teams. Leurs "
                                       "licences deviennent libres et restent facturées tant que vous ne les "
                                       "supprimez pas.",
        "pool_admin.btn.unassign": Plural("Retirer à {n} utilisateur", "Retirer à {n} utilisateurs"),
        "pool_admin.unassigned.title": Plural("Licence retirée à {n} utilisateur",
                                              "Licence retirée à {n} utilisateurs"),
        "pool_admin.unassigned.told": Plural("Cette personne a été prévenue dans Teams.",
                                             "Chacun a été prévenu dans Teams."),
        "pool_admin.unassigned.free": Plural("{free} licence de {pool} est maintenant libre.",
                                             "{free} licences de {pool} sont maintenant libres.", "free"),
        "pool_admin.downgrade.title": "Rétrograder au renouvellement depuis {pool}",
        "pool_admin.downgrade.explain": "Les utilisateurs gardent {plan} jusqu'au {date}, puis passent à l'offre "
                                        "choisie. Ils sont prévenus dès maintenant. Rien n'est remboursé.",
        "pool_admin.downgrade.who": "Qui",
        "pool_admin.downgrade.who_sel": Plural("L'utilisateur sélectionné : {names}",
                                               "Les {n} utilisateurs sélectionnés : {names}"),
        "pool_admin.downgrade.who_pool": Plural("Tout le lot ({n} utilisateur)", "Tout le lot ({n} utilisateurs)"),
        "pool_admin.downgrade.too_big": "Ce lot compte {n} utilisateurs : au plus {max} peuvent être rétrogradés "
                                        "à la fois ; sélectionnez-les dans la carte des utilisateurs du lot, en "
                                        "plusieurs fois.",
        "pool_admin.downgrade.plan": "Nouvelle offre à partir du {date}",
        "pool_admin.downgrade.lowest": "{plan} est l'offre la plus basse de sa famille : aucune rétrogradation "
                                       "possible.",
        "pool_admin.downgrade.already": Plural("{n} des utilisateurs sélectionnés a déjà une rétrogradation prévue.",
                                               "{n} des utilisateurs sélectionnés ont déjà une rétrogradation prévue."),
        "pool_admin.downgrade.missing": "Choisissez d'abord la nouvelle offre.",
        "pool_admin.btn.schedule": "Planifier",
        "pool_admin.btn.cancel_downgrade": "Annuler leur rétrogradation",
        "pool_admin.scheduled.title": "Rétrogradation planifiée",
        "pool_admin.scheduled.body": Plural("{n} utilisateur passe de {plan} à {to} le {date}. Cette personne "
                                            "garde {plan} d'ici là et a été prévenue.",
                                            "{n} utilisateurs passent de {plan} à {to} le {date}. Ils gardent {plan} "
                                            "d'ici là et ont été prévenus."),
        "pool_admin.btn.cancel_this": "Annuler cette rétrogradation",
        "pool_admin.downgrade_cancelled.title": "Rétrogradation annulée",
        "pool_admin.downgrade_cancelled.body": Plural("{n} utilisateur garde {plan} après le {date} ; cette "
                                                       "personne a été prévenue.",
                                                       "{n} utilisateurs gardent {plan} après le {date} ; ils ont "
                                                       "été prévenus."),
        "pool_admin.more": Plural("et {n} autre", "et {n} autres"),
        "pool_admin.notice.unassigned.title": "Votre licence a été retirée",
        "pool_admin.notice.unassigned.body": "{by} a retiré votre licence {plan}. Demandez à un administrateur si "
                                             "vous en avez encore besoin.",
        "pool_admin.notice.downgrade_scheduled.title": "Votre licence change au renouvellement",
        "pool_admin.notice.downgrade_scheduled.body": "Vous gardez {old} jusqu'au {date}, puis vous aurez {new}.",
        "pool_admin.notice.downgrade_cancelled.title": "Le changement de votre licence est annulé",
        "pool_admin.notice.downgrade_cancelled.body": "Vous gardez {plan} : le changement prévu au renouvellement "
                                                      "n'aura pas lieu.",
        "pool_admin.notice.downgrade_applied.title": "Votre licence a changé",
        "pool_admin.notice.downgrade_applied.body": "Vous avez maintenant {new} (auparavant {old}), depuis le {date}.",
    },
})


def _pool_name(t: T, pool: PoolView) -> str:
    return t("pool_admin.pool", plan=pool.plan_name, interval=t.interval(pool.interval))


def _names(t: T, users: list[UserRow], total: int) -> str:
    names = ", ".join(u.name for u in users[:MAX_NAMES])
    if total > min(len(users), MAX_NAMES):
        names += " " + t("pool_admin.more", n=total - min(len(users), MAX_NAMES))
    return names


def _renewal(t: T, pool: PoolView, key: str = "pool_admin.renewal_now", **kw) -> tuple[str, str]:
    return t(key, n=pool.renewal_quantity, **kw), t.money(pool.renewal_amount, pool.currency)


def _number_input(id_: str, label: str, value: int, maximum: int) -> dict:
    return {"type": "Input.Number", "id": id_, "label": label, "min": 1, "max": maximum, "value": value}


def _users_button(t: T, pool: PoolView) -> dict:
    return execute(t("pool_admin.btn.users"), verbs.POOL_USERS, {"pool": pool.id}, inputs="none")


def _pools_button(t: T) -> dict:
    return execute(t("btn.licenses"), verbs.POOLS, inputs="none")


# ---------------------------------------------------------------------------- removing seats


def removal_form(locale: str | None, pool: PoolView, *, quantity: int = 1, preview: PoolView | None = None,
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
        pairs.append(_renewal(t, preview, "pool_admin.renewal_after",
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
        data = {"pool": pool.id, "scheduled": pool.removal_scheduled}
        actions += [execute(t("pool_admin.btn.remove"), SEATS_REMOVE_CONFIRM, data, style="destructive"),
                    execute(t("pool_admin.btn.preview"), verbs.SEATS_REMOVE, {"pool": pool.id, "preview": True})]
    if pool.removal_scheduled:
        actions.append(execute(t("pool_admin.btn.cancel_removal"), SEATS_REMOVE_CANCEL, {"pool": pool.id},
                               inputs="none"))
    actions += [_users_button(t, pool), execute(t("btn.cancel"), verbs.DISMISS, inputs="none")]
    return card(body, actions, fallback_text=heading)


def removal_done(locale: str | None, pool: PoolView, removed: int, *, note: str | None = None) -> dict:
    t = T(locale)
    heading = t("pool_admin.removed.title")
    body = [title(heading)]
    if note:
        body.append(text(t.say(note), color="Warning"))
    body.append(text(t("pool_admin.removed.body", n=removed, pool=_pool_name(t, pool),
                       date=t.date(pool.renewal_date)), color="Good"))
    body.append(facts([(t("pool_admin.leaving"), str(pool.removal_scheduled)),
                       (t("pool_admin.renewal_date"), t.date(pool.renewal_date)),
                       _renewal(t, pool, "pool_admin.renewal_new")]))
    actions = []
    if pool.removal_scheduled:
        actions.append(execute(t("pool_admin.btn.cancel_removal"), SEATS_REMOVE_CANCEL, {"pool": pool.id}))
    if pool.assignable > 0:
        actions.append(execute(t("pool_admin.btn.remove_more"), verbs.SEATS_REMOVE, {"pool": pool.id}))
    actions.append(_pools_button(t))
    return card(body, actions, fallback_text=heading)


def removal_cancelled(locale: str | None, pool: PoolView) -> dict:
    t = T(locale)
    heading = t("pool_admin.removal_cancelled.title")
    body = [title(heading), text(t("pool_admin.removal_cancelled.body", pool=_pool_name(t, pool)), color="Good"),
            facts([(t("pool_admin.renewal_date"), t.date(pool.renewal_date)),
                   _renewal(t, pool, "pool_admin.renewal_new")])]
    actions = []
    if pool.assignable > 0:
        actions.append(execute(t("btn.remove_seats"), verbs.SEATS_REMOVE, {"pool": pool.id}))
    actions.append(_pools_button(t))
    return card(body, actions, fallback_text=heading)


# ---------------------------------------------------------------------------- unassigning


def unassign_confirm(locale: str | None, pool: PoolView, users: list[UserRow], selected: list[int]) -> dict:
    t = T(locale)
    n = len(selected)
    heading = t("pool_admin.unassign.title", n=n, pool=_pool_name(t, pool))
    body = [title(heading), text(_names(t, users, n), subtle=True),
            text(t("pool_admin.unassign.explain"), color="Warning")]
    data = {"pool": pool.id, "sel": selected}
    actions = [execute(t("pool_admin.btn.unassign", n=n), UNASSIGN_CONFIRM, data, style="destructive"),
               execute(t("btn.back"), verbs.POOL_USERS, data, inputs="none"),
               execute(t("btn.cancel"), verbs.DISMISS, inputs="none")]
    return card(body, actions, fallback_text=heading)


def unassign_done(locale: str | None, pool: PoolView, n: int) -> dict:
    t = T(locale)
    heading = t("pool_admin.unassigned.title", n=n)
    body = [title(heading),
            text(f'{t("pool_admin.unassigned.told", n=n)} '
                 f'{t("pool_admin.unassigned.free", free=max(pool.assignable, 0), pool=_pool_name(t, pool))}',
                 color="Good")]
    actions = []
    if pool.assignable > 0:
        actions.append(execute(t("btn.remove_seats"), verbs.SEATS_REMOVE, {"pool": pool.id}))
    actions += [_users_button(t, pool), _pools_button(t)]
    return card(body, actions, fallback_text=heading)


# ---------------------------------------------------------------------------- downgrades


def downgrade_card(locale: str | None, pool: PoolView, users: list[UserRow], selected: list[int],
                   options: list[PlanView], *, pool_total: int, max_users: int, note: str | None = None) -> dict:
    """Choose who (the selected users, or the whole pool when it is small enough) and the lower
    plan they move to at renewal; offers to cancel the downgrades already scheduled."""
    t = T(locale)
    heading = t("pool_admin.downgrade.title", pool=_pool_name(t, pool))
    data = {"pool": pool.id, "sel": selected}
    body = [title(heading)]
    if note:
        body.append(text(t.say(note), color="Attention"))
    back = execute(t("btn.back"), verbs.POOL_USERS, data, inputs="none")
    cancel = execute(t("btn.cancel"), verbs.DISMISS, inputs="none")
    actions = []
    scheduled = [u for u in users if u.downgrade_to]
    if scheduled:
        body.append(text(t("pool_admin.downgrade.already", n=len(scheduled)), color="Warning"))
        actions.append(execute(t("pool_admin.btn.cancel_downgrade"), DOWNGRADE_CANCEL, data, inputs="none"))
    if not options:
        body.append(text(t("pool_admin.downgrade.lowest", plan=pool.plan_name)))
        return card(body, actions + [back, cancel], fallback_text=heading)
    body.append(text(t("pool_admin.downgrade.explain", plan=pool.plan_name, date=t.date(pool.renewal_date)),
                     subtle=True))
    who = []
    if selected:
        who.append((t("pool_admin.downgrade.who_sel", n=len(selected), names=_names(t, users, len(selected))),
                    "sel"))
    if 0 < pool_total <= max_users:
        who.append((t("pool_admin.downgrade.who_pool", n=pool_total), "pool"))
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
        actions.insert(0, execute(t("pool_admin.btn.schedule"), DOWNGRADE_SCHEDULE, data, style="positive"))
    return card(body, actions + [back, cancel], fallback_text=heading)


def downgrade_done(locale: str | None, pool: PoolView, to_plan_name: str, selected: list[int]) -> dict:
    t = T(locale)
    heading = t("pool_admin.scheduled.title")
    body = [title(heading),
            text(t("pool_admin.scheduled.body", n=len(selected), plan=pool.plan_name, to=to_plan_name,
                   date=t.date(pool.renewal_date)), color="Good"),
            facts([(t("pool_admin.renewal_date"), t.date(pool.renewal_date)),
                   _renewal(t, pool, "pool_admin.renewal_new")])]
    data = {"pool": pool.id, "sel": selected}
    actions = [execute(t("pool_admin.btn.cancel_this"), DOWNGRADE_CANCEL, data), _users_button(t, pool),
               _pools_button(t)]
    return card(body, actions, fallback_text=heading)


def downgrade_cancelled(locale: str | None, pool: PoolView, n: int) -> dict:
    t = T(locale)
    heading = t("pool_admin.downgrade_cancelled.title")
    body = [title(heading),
            text(t("pool_admin.downgrade_cancelled.body", n=n, plan=pool.plan_name, date=t.date(pool.renewal_date)),
                 color="Good"),
            facts([_renewal(t, pool, "pool_admin.renewal_new")])]
    return card(body, [_users_button(t, pool), _pools_button(t)], fallback_text=heading)


# ---------------------------------------------------------------------------- notices


def _notice(heading: str, body: str) -> dict:
    return card([title(heading), text(body)], fallback_text=heading)


def unassigned_notice(locale: str | None, plan: str, by: str) -> dict:
    t = T(locale)
    return _notice(t("pool_admin.notice.unassigned.title"), t("pool_admin.notice.unassigned.body", plan=plan, by=by))


def downgrade_scheduled_notice(locale: str | None, old: str, new: str, effective: datetime) -> dict:
    t = T(locale)
    return _notice(t("pool_admin.notice.downgrade_scheduled.title"),
                   t("pool_admin.notice.downgrade_scheduled.body", old=old, new=new, date=t.date(effective)))


def downgrade_cancelled_notice(locale: str | None, plan: str) -> dict:
    t = T(locale)
    return _notice(t("pool_admin.notice.downgrade_cancelled.title"),
                   t("pool_admin.notice.downgrade_cancelled.body", plan=plan))


def downgrade_applied_notice(locale: str | None, old: str, new: str, effective: datetime) -> dict:
    t = T(locale)
    return _notice(t("pool_admin.notice.downgrade_applied.title"),
                   t("pool_admin.notice.downgrade_applied.body", old=old, new=new, date=t.date(effective)))
