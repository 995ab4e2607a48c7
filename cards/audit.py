"""The audit card: the account's recent events, newest first, paged by 20, with a link to
download the whole log as CSV. Every text that comes from the database (names, targets,
refusal messages) is shown in TextRuns, which Teams does not read as Markdown, and clipped
so that the card stays under the size budget whatever the messages."""

from __future__ import annotations

import re
from datetime import UTC

from babel.dates import format_datetime

from cards import verbs
from cards.base import CARD_BUDGET, action_set, card, container, execute, open_url, size, text, title
from cards.i18n import STRINGS, Plural, T, add_strings
from core.views import AuditRow, Page, PoolView

LINK_MINUTES = 10
_BUDGET = CARD_BUDGET - 1024  # room for the activity envelope around the card
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
# (message, actor, target) character limits, tried in turn until the card fits the budget
_LIMITS = ((240, 60, 60), (120, 40, 40), (60, 30, 30), (0, 20, 20))

# The core's action names, as a person reads them: what happened (outcome "ok") ...
_DONE = {
    "demo.loaded": ("Demo data loaded", "Données de démonstration chargées"),
    "quote.upgrade": ("Upgrade quote prepared", "Devis de mise à niveau préparé"),
    "quote.purchase": ("Purchase quote prepared", "Devis d'achat préparé"),
    "payment.link_created": ("Payment link created", "Lien de paiement créé"),
    "quote.cancelled": ("Quote cancelled", "Devis annulé"),
    "quote.expired": ("Quote expired", "Devis expiré"),
    "quote.confirmed": ("Quote confirmed", "Devis confirmé"),
    "quote.settled": ("Quote paid and applied", "Devis payé et appliqué"),
    "payment.failed": ("Payment failed", "Échec du paiement"),
    "payment.expired": ("Payment link expired", "Lien de paiement expiré"),
    "payment.refund_needed": ("Payment to be refunded", "Paiement à rembourser"),
    "payment.unknown_quote": ("Payment for an unknown quote", "Paiement pour un devis inconnu"),
    "seat.assigned": ("License assigned", "Licence attribuée"),
    "seat.unassigned": ("Licenses unassigned", "Licences retirées"),
    "seat.downgraded": ("License downgraded", "Licence rétrogradée"),
    "seats.removal_scheduled": ("Seat removal scheduled", "Suppression de licences prévue"),
    "seats.removal_cancelled": ("Seat removal cancelled", "Suppression de licences annulée"),
    "seats.removed": ("Seats removed at renewal", "Licences supprimées au renouvellement"),
    "downgrade.scheduled": ("Downgrade scheduled", "Rétrogradation prévue"),
    "downgrade.cancelled": ("Downgrade cancelled", "Rétrogradation annulée"),
    "period.rolled_over": ("New billing period", "Nouvelle période de facturation"),
    "user.added": ("User added", "Utilisateur ajouté"),
    "request.created": ("Upgrade requested", "Mise à niveau demandée"),
    "request.approved": ("Upgrade request approved", "Demande de mise à niveau approuvée"),
    "request.declined": ("Upgrade request declined", "Demande de mise à niveau refusée"),
    "audit.exported": ("Audit log downloaded", "Journal d'audit téléchargé"),
}
# ... and what was attempted (outcome "refused")
_TRIED = {
    "whoami": ("Open License Desk", "Ouvrir License Desk"),
    "admin": ("Administrator action", "Action d'administrateur"),
    "pools.list": ("View the license pools", "Voir les lots de licences"),
    "pool.view": ("View a pool", "Voir un lot"),
    "pool.users": ("View a pool's users", "Voir les utilisateurs d'un lot"),
    "directory.search": ("Search the directory", "Rechercher dans l'annuaire"),
    "directory.rows": ("Look up users", "Consulter des utilisateurs"),
    "directory.user": ("View a user", "Voir un utilisateur"),
    "directory.lookup": ("Look up directory people", "Rechercher des personnes de l'annuaire"),
    "pool.rows": ("View a pool's users", "Voir les utilisateurs d'un lot"),
    "seats.remove_preview": ("Prepare a seat removal", "Préparer une suppression de licences"),
    "requests.mine": ("View own upgrade requests", "Voir ses demandes de mise à niveau"),
    "rate.limited": ("Too many requests", "Trop de demandes"),
    "upgrade.options": ("See the upgrade tiers", "Voir les offres supérieures"),
    "downgrade.options": ("See the lower tiers", "Voir les offres inférieures"),
    "quote.upgrade": ("Prepare an upgrade quote", "Préparer un devis de mise à niveau"),
    "quote.purchase": ("Prepare a purchase quote", "Préparer un devis d'achat"),
    "cart.preview": ("Preview a purchase", "Prévisualiser un achat"),
    "quote.view": ("View a quote", "Voir un devis"),
    "quote.cancel": ("Cancel a quote", "Annuler un devis"),
    "quote.confirm": ("Confirm a quote", "Confirmer un devis"),
    "payment.link": ("Create a payment link", "Créer un lien de paiement"),
    "seat.assign": ("Assign a license", "Attribuer une licence"),
    "seat.unassign": ("Unassign licenses", "Retirer des licences"),
    "seats.remove": ("Remove seats", "Supprimer des licences"),
    "seats.remove_cancel": ("Cancel a seat removal", "Annuler une suppression de licences"),
    "downgrade.schedule": ("Schedule a downgrade", "Prévoir une rétrogradation"),
    "downgrade.cancel": ("Cancel a downgrade", "Annuler une rétrogradation"),
    "my_license": ("View own license", "Voir sa licence"),
    "user.add": ("Add a user", "Ajouter un utilisateur"),
    "request.create": ("Request an upgrade", "Demander une mise à niveau"),
    "request.view": ("View an upgrade request", "Voir une demande de mise à niveau"),
    "requests.list": ("View the upgrade requests", "Voir les demandes de mise à niveau"),
    "request.approve": ("Approve an upgrade request", "Approuver une demande de mise à niveau"),
    "request.decline": ("Decline an upgrade request", "Refuser une demande de mise à niveau"),
    "audit.list": ("View the audit log", "Voir le journal d'audit"),
    "audit.export": ("Download the audit log", "Télécharger le journal d'audit"),
    "card.unknown_verb": ("Unknown button", "Bouton inconnu"),
    "card.malformed": ("Malformed card action", "Action de carte mal formée"),
    "tenant.refused": ("Organisation not allowed", "Organisation non autorisée"),
}


def _key(kind: str, action: str) -> str:
    return f"audit.{kind}.{action}"


add_strings({
    "en": {
        "audit.title": "Recent changes at {account}",
        "audit.summary": Plural("{total} event, newest first · page {page} of {pages} · times in {zone}",
                                 "{total} events, newest first · page {page} of {pages} · times in {zone}", "total"),
        "audit.empty": "Nothing has been recorded yet.",
        "audit.refused": "Refused",
        "audit.system": "License Desk",
        "audit.card_action": "A card button",
        "audit.other_action": "Another action",
        "audit.target.user": "user #{id}",
        "audit.target.pool": "pool #{id}",
        "audit.target.quote": "quote {id}",
        "audit.target.request": "request #{id}",
        "audit.target.subscription": "subscription #{id}",
        "audit.target.account": "account #{id}",
        "audit.newer": "Newer",
        "audit.older": "Older",
        "audit.export": "Export CSV",
        "audit.export_hint": "Export CSV downloads the whole log. The link works for {minutes} minutes and for "
                             "administrators only; after that, refresh this card for a new one.",
        "audit.no_export": "The CSV export is not available on this server.",
        **{_key("done", a): en for a, (en, _) in _DONE.items()},
        **{_key("tried", a): en for a, (en, _) in _TRIED.items()},
    },
    "fr": {
        "audit.title": "Changements récents chez {account}",
        "audit.summary": Plural("{total} événement, du plus récent au plus ancien · page {page} sur {pages} · "
                                 "heures {zone}",
                                 "{total} événements, du plus récent au plus ancien · page {page} sur {pages} · "
                                 "heures {zone}", "total"),
        "audit.empty": "Rien n'a encore été enregistré.",
        "audit.refused": "Refusé",
        "audit.system": "License Desk",
        "audit.card_action": "Un bouton de carte",
        "audit.other_action": "Une autre action",
        "audit.target.user": "utilisateur n° {id}",
        "audit.target.pool": "lot n° {id}",
        "audit.target.quote": "devis {id}",
        "audit.target.request": "demande n° {id}",
        "audit.target.subscription": "abonnement n° {id}",
        "audit.target.account": "compte n° {id}",
        "audit.newer": "Plus récents",
        "audit.older": "Plus anciens",
        "audit.export": "Exporter en CSV",
        "audit.export_hint": "Exporter en CSV télécharge tout le journal. Le lien fonctionne pendant {minutes} "
                             "minutes et pour les administrateurs seulement ; ensuite, actualisez cette carte pour "
                             "en obtenir un nouveau.",
        "audit.no_export": "L'export CSV n'est pas disponible sur ce serveur.",
        **{_key("done", a): fr for a, (_, fr) in _DONE.items()},
        **{_key("tried", a): fr for a, (_, fr) in _TRIED.items()},
    },
})


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
    order = ("tried", "done") if outcome == "refused" else ("done", "tried")
    for kind in order:
        key = _key(kind, action)
        if key in STRINGS["en"]:
            return t(key)
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
    if kind in ("user", "pool", "request", "subscription", "account") and num is not None:
        return t(f"audit.target.{kind}", id=num)
    return target


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


def audit_card(locale: str | None, account_name: str, page: Page, *, export_url: str | None = None,
               users: dict[int, str] | None = None, pools: dict[int, PoolView] | None = None,
               note: str | None = None) -> dict:
    """A page of audit events (``page.items``: AuditRow, newest first); "Newer"/"Older" page
    with verb ``audit`` and data ``{page}``; "Export CSV" opens ``export_url``."""
    t = T(locale)
    users, pools = users or {}, pools or {}
    built: dict = {}
    for limits in _LIMITS:
        body = [title(t("audit.title", account=clip(account_name, 80))),
                text(t("audit.summary", total=page.total, page=page.page + 1, pages=page.pages,
                       zone=t.zone.key if t.zone else "UTC"),
                     subtle=True, size_="Small", spacing="None")]
        if note:
            body.append(text(clip(t.say(note), 300), color="Warning"))
        if not page.items:
            body.append(text(t("audit.empty")))
        body.extend(_row(t, r, users, pools, limits) for r in page.items)
        nav = []
        if page.has_prev:
            nav.append(execute(t("audit.newer"), verbs.AUDIT, {"page": page.page - 1}, inputs="none"))
        if page.has_next:
            nav.append(execute(t("audit.older"), verbs.AUDIT, {"page": page.page + 1}, inputs="none"))
        if nav:
            body.append(action_set(nav, spacing="Medium"))
        body.append(text(t("audit.export_hint", minutes=LINK_MINUTES) if export_url else t("audit.no_export"),
                         subtle=True, size_="Small", spacing="Medium"))
        actions = [open_url(t("audit.export"), export_url, style="positive")] if export_url else []
        actions += [execute(t("btn.refresh"), verbs.AUDIT, {"page": page.page}, inputs="none"),
                    execute(t("btn.licenses"), verbs.POOLS, inputs="none")]
        built = card(body, actions, fallback_text=t("audit.title", account=clip(account_name, 80)))
        if size(built) <= _BUDGET:
            break
    return built
