""""My license" as any user sees it: what they hold (plan, billing, since, renewal, pending
changes), the upgrade request form and its confirmation, and the notices a requester gets
once an administrator decided."""

from __future__ import annotations

from cards.base import card, choice_set, container, execute, facts, input_text, text, title
from cards.i18n import T, add_strings
from core.views import PlanView, RequestView, SeatView

SHOW = "mylicense"  # data: {}
REQUEST = "mylicense.request"  # data: {}: the form (plan + optional reason)
SEND = "mylicense.send"  # data: {} + inputs plan, reason

MAX_REASON = 500

add_strings({
    "en": {
        "mylicense.title": "Your licenses",
        "mylicense.change": "Change",
        "mylicense.reason": "Reason",
        "mylicense.none": "You do not hold any license yet.",
        "mylicense.ask": "Ask an administrator of your account to assign one to you: {names}.",
        "mylicense.ask_any": "Ask an administrator of your account to assign one to you.",
        "mylicense.billing": "Billing",
        "mylicense.since": "Since",
        "mylicense.renews": "Renews on",
        "mylicense.pending": "Pending change",
        "mylicense.request": "Upgrade request",
        "mylicense.downgrade": "Moves to {plan} at renewal, on {date}",
        "mylicense.requested": "You asked for {plan} on {date}; waiting for an administrator",
        "mylicense.approved": "{plan} approved by {name}; it applies as soon as the payment is made",
        "mylicense.top": "This is the highest plan of its family.",
        "mylicense.nothing": "There is no upgrade to ask for: you hold the highest plans, or already asked.",
        "mylicense.btn.request": "Request an upgrade",
        "mylicense.btn.send": "Send the request",
        "mylicense.btn.mine": "My license",
        "mylicense.form.title": "Request an upgrade",
        "mylicense.form.body": "Your administrators will be asked; one of them approves (and pays) or declines.",
        "mylicense.form.plan": "The plan you would like",
        "mylicense.form.choice": "{plan} ({family}, instead of {current})",
        "mylicense.form.reason": "Why? (optional, your administrators will see it)",
        "mylicense.form.placeholder": "For example: I now build the API integrations",
        "mylicense.sent.title": "Request sent",
        "mylicense.sent.body": "Your administrators were asked to move you from {old} to {plan}. You will be "
                               "told here as soon as one of them decides.",
        "mylicense.already": "You already asked for {plan} on {date}; an administrator will answer soon. "
                             "Nothing else was sent.",
        "mylicense.already_any": "You already asked for this upgrade; an administrator will answer soon. "
                                 "Nothing else was sent.",
        "mylicense.err.not_upgrade": "That plan is not above the one you hold now (your license may have "
                                     "changed): choose again.",
        "mylicense.err.unknown_plan": "That plan does not exist: choose one from the list.",
        "mylicense.not_user": "You are not a user of your organisation's License Desk account yet. Ask one of "
                              "its administrators to add you: {names}.",
        "mylicense.approved.title": "Your upgrade request was approved",
        "mylicense.approved.body": "{name} approved your request for {plan}. An administrator completes the "
                                   "payment; you will be told here as soon as {plan} is active.",
        "mylicense.declined.title": "Your upgrade request was declined",
        "mylicense.declined.body": "{name} declined your request for {plan}.",
        "mylicense.declined.reason": "Reason: {reason}",
        "mylicense.declined.none": "No reason was given; ask {name} if you would like to know more.",
    },
    "fr": {
        "mylicense.title": "Vos licences",
        "mylicense.change": "Changement",
        "mylicense.reason": "Motif",
        "mylicense.none": "Vous n'avez encore aucune licence.",
        "mylicense.ask": "Demandez à un administrateur de votre compte de vous en attribuer une : {names}.",
        "mylicense.ask_any": "Demandez à un administrateur de votre compte de vous en attribuer une.",
        "mylicense.billing": "Facturation",
        "mylicense.since": "Depuis le",
        "mylicense.renews": "Renouvellement le",
        "mylicense.pending": "Changement prévu",
        "mylicense.request": "Demande de mise à niveau",
        "mylicense.downgrade": "Passe à {plan} au renouvellement, le {date}",
        "mylicense.requested": "Vous avez demandé {plan} le {date} ; en attente d'un administrateur",
        "mylicense.approved": "{plan} approuvée par {name} ; elle s'applique dès que le paiement est fait",
        "mylicense.top": "C'est l'offre la plus haute de sa famille.",
        "mylicense.nothing": "Aucune mise à niveau à demander : vous avez les offres les plus hautes, ou vous "
                             "avez déjà demandé.",
        "mylicense.btn.request": "Demander une mise à niveau",
        "mylicense.btn.send": "Envoyer la demande",
        "mylicense.btn.mine": "Ma licence",
        "mylicense.form.title": "Demander une mise à niveau",
        "mylicense.form.body": "Vos administrateurs seront sollicités ; l'un d'eux approuve (et paie) ou refuse.",
        "mylicense.form.plan": "L'offre souhaitée",
        "mylicense.form.choice": "{plan} ({family}, au lieu de {current})",
        "mylicense.form.reason": "Pourquoi ? (facultatif, vos administrateurs le verront)",
        "mylicense.form.placeholder": "Par exemple : je développe maintenant les intégrations API",
        "mylicense.sent.title": "Demande envoyée",
        "mylicense.sent.body": "Vos administrateurs ont été sollicités pour vous faire passer de {old} à {plan}. "
                               "Vous serez prévenu ici dès que l'un d'eux aura décidé.",
        "mylicense.already": "Vous avez déjà demandé {plan} le {date} ; un administrateur va vous répondre. "
                             "Rien d'autre n'a été envoyé.",
        "mylicense.already_any": "Vous avez déjà demandé cette mise à niveau ; un administrateur va vous "
                                 "répondre. Rien d'autre n'a été envoyé.",
        "mylicense.err.not_upgrade": "Cette offre n'est pas au-dessus de celle que vous avez maintenant (votre "
                                     "licence a peut-être changé) : choisissez de nouveau.",
        "mylicense.err.unknown_plan": "Cette offre n'existe pas : choisissez-en une dans la liste.",
        "mylicense.not_user": "Vous n'êtes pas encore utilisateur du compte License Desk de votre organisation. "
                              "Demandez à l'un de ses administrateurs de vous ajouter : {names}.",
        "mylicense.approved.title": "Votre demande de mise à niveau a été approuvée",
        "mylicense.approved.body": "{name} a approuvé votre demande pour {plan}. Un administrateur effectue le "
                                   "paiement ; vous serez prévenu ici dès que {plan} sera active.",
        "mylicense.declined.title": "Votre demande de mise à niveau a été refusée",
        "mylicense.declined.body": "{name} a refusé votre demande pour {plan}.",
        "mylicense.declined.reason": "Motif : {reason}",
        "mylicense.declined.none": "Aucun motif n'a été donné ; demandez à {name} si vous souhaitez en savoir "
                                   "plus.",
    },
})


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
        if r.status == "pending":
            rows.append((t("mylicense.request"), t("mylicense.requested", plan=r.to_plan_name,
                                                   date=t.date(r.created_at))))
        elif r.status == "approved":
            rows.append((t("mylicense.request"), t("mylicense.approved", plan=r.to_plan_name,
                                                   name=r.decided_by_name or "")))
    return rows


def requestable(seats: list[SeatView], requests: list[RequestView]) -> list[tuple[SeatView, PlanView]]:
    """The plans one may ask for: above a held plan, in a family with no pending request."""
    asked = {r.family for r in requests if r.status == "pending"}
    return [(s, p) for s in seats if s.family not in asked for p in s.higher_plans]


def my_license_card(locale: str | None, seats: list[SeatView], requests: list[RequestView],
                    families: dict[str, str], *, admins: list[str] | None = None, note: str | None = None) -> dict:
    t = T(locale)
    heading = t("mylicense.title")
    body = [title(heading)]
    if note:
        body.append(text(t.say(note), color="Warning"))
    if not seats:
        body.append(text(t("mylicense.none"), weight="Bolder"))
        body.append(text(t("mylicense.ask", names=names_of(admins)) if admins else t("mylicense.ask_any")))
        return card(body, [execute(t("btn.refresh"), SHOW)], fallback_text=heading)
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
        actions.append(execute(t("mylicense.btn.request"), REQUEST, style="positive"))
    else:
        body.append(text(t("mylicense.nothing"), subtle=True, size_="Small"))
    actions.append(execute(t("btn.refresh"), SHOW))
    return card(body, actions, fallback_text=heading)


def request_form_card(locale: str | None, options: list[tuple[SeatView, PlanView]], families: dict[str, str], *,
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
    actions = [execute(t("mylicense.btn.send"), SEND, style="positive"),
               execute(t("btn.back"), SHOW, inputs="none")]
    return card(body, actions, fallback_text=heading)


def request_sent_card(locale: str | None, r: RequestView) -> dict:
    t = T(locale)
    heading = t("mylicense.sent.title")
    body = [title(heading),
            text(t("mylicense.sent.body", old=r.from_plan_name or "?", plan=r.to_plan_name), color="Good")]
    if r.reason:
        body.append(facts([(t("mylicense.reason"), r.reason)]))
    return card(body, [execute(t("mylicense.btn.mine"), SHOW)], fallback_text=heading)


def not_user_card(locale: str | None, message: str, admins: list[str]) -> dict:
    """Someone of the account's tenant who is not one of its users: whom to ask."""
    t = T(locale)
    heading = t("error.not_registered.title")
    body = [title(heading), text(t("mylicense.not_user", names=names_of(admins)) if admins else t.say(message),
                                 color="Attention")]
    return card(body, fallback_text=heading)


def approved_notice(locale: str | None, r: RequestView, by: str) -> dict:
    t = T(locale)
    heading = t("mylicense.approved.title")
    body = [title(heading), text(t("mylicense.approved.body", name=by, plan=r.to_plan_name)),
            facts([(t("mylicense.change"), f"{r.from_plan_name or '?'} → {r.to_plan_name}")])]
    return card(body, [execute(t("mylicense.btn.mine"), SHOW)], fallback_text=heading)


def declined_notice(locale: str | None, r: RequestView, by: str, reason: str | None) -> dict:
    t = T(locale)
    heading = t("mylicense.declined.title")
    body = [title(heading), text(t("mylicense.declined.body", name=by, plan=r.to_plan_name)),
            text(t("mylicense.declined.reason", reason=reason) if reason else t("mylicense.declined.none", name=by))]
    return card(body, [execute(t("mylicense.btn.mine"), SHOW)], fallback_text=heading)
