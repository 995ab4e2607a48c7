"""Card strings in English and French, and locale-aware formatting (Babel)."""

from __future__ import annotations

from datetime import datetime

from babel.dates import format_date, format_datetime

from core.money import money as _money

SUPPORTED = ("en", "fr")

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "app": "License Desk",
        "welcome.title": "Welcome to License Desk",
        "welcome.body": "I help your organisation manage its software licenses right here in Teams.",
        "welcome.admin": "As an administrator you can list your license pools, upgrade users to a higher tier, "
                         "buy, assign and remove licenses, and approve upgrade requests.",
        "welcome.member": "You will receive news about your licenses here, and you can ask for an upgrade.",
        "help.title": "What I can do",
        "help.unknown": "Sorry, I don't know “{text}”. Here is what I can do:",
        "cmd.licenses": "list your license pools and upgrade users",
        "cmd.buy": "buy licenses",
        "cmd.assign": "assign a license to a user",
        "cmd.requests": "see pending upgrade requests",
        "cmd.audit": "see recent changes",
        "cmd.mylicense": "see your license and ask for an upgrade",
        "cmd.help": "show this help",
        "btn.licenses": "License pools",
        "btn.back": "Back",
        "btn.cancel": "Cancel",
        "btn.search": "Search",
        "btn.clear": "Clear search",
        "btn.prev": "Previous",
        "btn.next": "Next",
        "btn.continue": "Choose tier",
        "btn.add_pick": "Add to selection",
        "btn.clear_sel": "Clear selection",
        "btn.upgrade": "Upgrade",
        "btn.pay": "Pay {amount}",
        "btn.confirm": "Confirm",
        "btn.refresh": "Refresh",
        "btn.new_quote": "Prepare a new quote",
        "pools.title": "License pools of {account}",
        "pools.empty": "Your account has no licenses yet.",
        "pools.plan": "Plan",
        "pools.bought": "Bought",
        "pools.assigned": "Assigned",
        "pools.free": "Free",
        "pools.renewal": "Renews",
        "pools.hint": "Select an assigned count to see its users and upgrade them.",
        "pools.removal": "{n} seat(s) leave at renewal",
        "interval.month": "monthly",
        "interval.year": "yearly",
        "users.title": "{plan} ({interval}): {total} user(s)",
        "users.title_search": "{plan} ({interval}): {total} user(s) matching “{query}”",
        "users.search": "Search by name or e-mail",
        "users.pick": "Or find anyone in this pool",
        "users.page": "Page {page} of {pages}",
        "users.none": "Nobody matches.",
        "users.selected": "{n} user(s) selected",
        "users.select": "Tick the users to upgrade",
        "users.held": "held by a quote until {time}",
        "users.downgrade": "downgrade to {plan} scheduled",
        "tiers.title": "Upgrade {n} user(s) from {plan}",
        "tiers.choose": "New tier",
        "tiers.none": "{plan} is already the highest tier of its family: there is nothing to upgrade to.",
        "tiers.price": "{plan}: {price} per seat per {unit}",
        "unit.month": "month",
        "unit.year": "year",
        "quote.title": "Upgrade quote",
        "quote.purchase_title": "Purchase quote",
        "quote.users": "Users",
        "quote.more": "and {n} more",
        "quote.change": "Change",
        "quote.period": "Proration period",
        "quote.credit": "Credit for unused time on {n} × {plan}",
        "quote.charge": "Charge for remaining time on {n} × {plan}",
        "quote.purchase_line": "{n} × {plan} ({interval})",
        "quote.subtotal": "Subtotal",
        "quote.discount": "{label} ({percent} %)",
        "quote.due": "Due now",
        "quote.renewal": "Then at the next billing cycle, {date}",
        "quote.expires": "This quote is valid until {time}. The seats are held for you until then.",
        "quote.nothing_due": "Nothing is due now: confirm to apply it.",
        "quote.pay_hint": "Pay through the secure link; the users are upgraded as soon as the payment is received.",
        "status.open": "Waiting for payment",
        "status.paid": "Paid",
        "status.expired": "Expired",
        "status.cancelled": "Cancelled",
        "status.refund_needed": "Payment to be refunded",
        "paid.title": "Upgrade paid",
        "paid.body": "{n} user(s) now hold {plan}, effective now. Each of them has been told in Teams.",
        "paid.purchase_body": "The licenses are added to your pools.",
        "cancelled.title": "Quote cancelled",
        "cancelled.body": "Nothing was charged and the seats are free again.",
        "expired.body": "This quote expired; nothing was charged.",
        "notice.upgraded.title": "Your license was upgraded",
        "notice.upgraded.body": "You now have {plan} (was {old}), effective now. No action is needed.",
        "error.title": "That didn't work",
        "error.apology": "Sorry, something went wrong on our side. Nothing was changed. Please try again in a "
                         "moment.",
        "error.not_registered.title": "You are not set up yet",
        "error.not_admin.title": "Administrators only",
        "stale.users": "The pool changed since this card was shown: here it is as it is now.",
        "stale.quote": "This quote is no longer open: here is its current state.",
        "label.status": "Status",
        "label.prepared_by": "Prepared by",
        "dismiss.title": "Cancelled",
        "dismiss.body": "Nothing was changed.",
        "users.empty_selection": "Select at least one user first.",
        "btn.downgrade": "Downgrade at renewal",
        "btn.unassign": "Unassign",
        "btn.assign": "Assign a license",
        "btn.remove_seats": "Remove free seats",
        "btn.buy_more": "Buy more",
        "btn.buy": "Buy licenses",
        "btn.requests": "Upgrade requests",
        "btn.audit": "Recent changes",
        "users.selection_actions": "With the selected users:",
        "users.pool_actions": "This pool:",
        "tiers.missing": "Choose the new tier first.",
        "quote.line_period": "{start} → {end}",
        "quote.purchase_expires": "This quote is valid until {time}.",
        "quote.purchase_pay_hint": "Pay through the secure link; the licenses are added as soon as the payment is "
                                   "received.",
        "error.ask.one": "Ask {a} to add you.",
        "error.ask.two": "Ask {a} or {b} to add you.",
        "error.ask.three": "Ask {a}, {b} or {c} to add you.",
        "error.ask.more": "Ask {a}, {b}, {c} or another administrator to add you.",
        "error.ask.none": "Ask one of its administrators to add you.",
        "error.not_user": "You are not a user of your organisation's License Desk account yet.",
        "error.no_account": "Your organisation has no License Desk account yet. Ask your IT administrator to set "
                            "one up.",
        "error.admin_only": "Only an administrator of your License Desk account can do this.",
        "error.admin_ask.one": "Ask {a}.",
        "error.admin_ask.two": "Ask {a} or {b}.",
        "error.admin_ask.three": "Ask {a}, {b} or {c}.",
        "error.admin_ask.more": "Ask {a}, {b}, {c} or another administrator.",
        "error.admin_ask.none": "Ask one of them.",
    },
    "fr": {
        "app": "License Desk",
        "welcome.title": "Bienvenue dans License Desk",
        "welcome.body": "J'aide votre organisation à gérer ses licences logicielles directement dans Teams.",
        "welcome.admin": "En tant qu'administrateur, vous pouvez voir vos lots de licences, faire passer des "
                         "utilisateurs à une offre supérieure, acheter, attribuer et retirer des licences, et "
                         "approuver les demandes de mise à niveau.",
        "welcome.member": "Vous recevrez ici les nouvelles de vos licences et vous pourrez demander une mise à "
                          "niveau.",
        "help.title": "Ce que je sais faire",
        "help.unknown": "Désolé, je ne connais pas « {text} ». Voici ce que je sais faire :",
        "cmd.licenses": "voir vos lots de licences et mettre à niveau des utilisateurs",
        "cmd.buy": "acheter des licences",
        "cmd.assign": "attribuer une licence à un utilisateur",
        "cmd.requests": "voir les demandes de mise à niveau en attente",
        "cmd.audit": "voir les changements récents",
        "cmd.mylicense": "voir votre licence et demander une mise à niveau",
        "cmd.help": "afficher cette aide",
        "btn.licenses": "Lots de licences",
        "btn.back": "Retour",
        "btn.cancel": "Annuler",
        "btn.search": "Rechercher",
        "btn.clear": "Effacer la recherche",
        "btn.prev": "Précédent",
        "btn.next": "Suivant",
        "btn.continue": "Choisir l'offre",
        "btn.add_pick": "Ajouter à la sélection",
        "btn.clear_sel": "Vider la sélection",
        "btn.upgrade": "Mettre à niveau",
        "btn.pay": "Payer {amount}",
        "btn.confirm": "Confirmer",
        "btn.refresh": "Actualiser",
        "btn.new_quote": "Préparer un nouveau devis",
        "pools.title": "Lots de licences de {account}",
        "pools.empty": "Votre compte n'a pas encore de licence.",
        "pools.plan": "Offre",
        "pools.bought": "Achetées",
        "pools.assigned": "Attribuées",
        "pools.free": "Libres",
        "pools.renewal": "Renouvellement",
        "pools.hint": "Choisissez un nombre d'attributions pour voir les utilisateurs et les mettre à niveau.",
        "pools.removal": "{n} licence(s) retirée(s) au renouvellement",
        "interval.month": "mensuel",
        "interval.year": "annuel",
        "users.title": "{plan} ({interval}) : {total} utilisateur(s)",
        "users.title_search": "{plan} ({interval}) : {total} utilisateur(s) pour « {query} »",
        "users.search": "Rechercher par nom ou e-mail",
        "users.pick": "Ou trouver quelqu'un dans ce lot",
        "users.page": "Page {page} sur {pages}",
        "users.none": "Personne ne correspond.",
        "users.selected": "{n} utilisateur(s) sélectionné(s)",
        "users.select": "Cochez les utilisateurs à mettre à niveau",
        "users.held": "réservé par un devis jusqu'à {time}",
        "users.downgrade": "passage à {plan} prévu",
        "tiers.title": "Mettre à niveau {n} utilisateur(s) depuis {plan}",
        "tiers.choose": "Nouvelle offre",
        "tiers.none": "{plan} est déjà l'offre la plus haute de sa famille : aucune mise à niveau possible.",
        "tiers.price": "{plan} : {price} par licence et par {unit}",
        "unit.month": "mois",
        "unit.year": "an",
        "quote.title": "Devis de mise à niveau",
        "quote.purchase_title": "Devis d'achat",
        "quote.users": "Utilisateurs",
        "quote.more": "et {n} autre(s)",
        "quote.change": "Changement",
        "quote.period": "Période au prorata",
        "quote.credit": "Avoir pour le temps restant sur {n} × {plan}",
        "quote.charge": "Montant pour le temps restant sur {n} × {plan}",
        "quote.purchase_line": "{n} × {plan} ({interval})",
        "quote.subtotal": "Sous-total",
        "quote.discount": "{label} ({percent} %)",
        "quote.due": "À payer maintenant",
        "quote.renewal": "Puis au prochain cycle de facturation, le {date}",
        "quote.expires": "Ce devis est valable jusqu'à {time}. Les licences vous sont réservées d'ici là.",
        "quote.nothing_due": "Rien n'est dû maintenant : confirmez pour l'appliquer.",
        "quote.pay_hint": "Payez par le lien sécurisé ; les utilisateurs sont mis à niveau dès réception du "
                          "paiement.",
        "status.open": "En attente de paiement",
        "status.paid": "Payé",
        "status.expired": "Expiré",
        "status.cancelled": "Annulé",
        "status.refund_needed": "Paiement à rembourser",
        "paid.title": "Mise à niveau payée",
        "paid.body": "{n} utilisateur(s) ont maintenant {plan}, dès maintenant. Chacun a été prévenu dans Teams.",
        "paid.purchase_body": "Les licences sont ajoutées à vos lots.",
        "cancelled.title": "Devis annulé",
        "cancelled.body": "Rien n'a été facturé et les licences sont de nouveau libres.",
        "expired.body": "Ce devis a expiré ; rien n'a été facturé.",
        "notice.upgraded.title": "Votre licence a été mise à niveau",
        "notice.upgraded.body": "Vous avez maintenant {plan} (auparavant {old}), dès maintenant. Vous n'avez rien "
                                "à faire.",
        "error.title": "Cela n'a pas marché",
        "error.apology": "Désolé, un problème est survenu de notre côté. Rien n'a été modifié. Réessayez dans "
                         "un instant.",
        "error.not_registered.title": "Vous n'êtes pas encore inscrit",
        "error.not_admin.title": "Réservé aux administrateurs",
        "stale.users": "Le lot a changé depuis l'affichage de cette carte : le voici tel qu'il est maintenant.",
        "stale.quote": "Ce devis n'est plus ouvert : voici son état actuel.",
        "label.status": "État",
        "label.prepared_by": "Préparé par",
        "dismiss.title": "Annulé",
        "dismiss.body": "Rien n'a été modifié.",
        "users.empty_selection": "Sélectionnez d'abord au moins un utilisateur.",
        "btn.downgrade": "Rétrograder au renouvellement",
        "btn.unassign": "Retirer la licence",
        "btn.assign": "Attribuer une licence",
        "btn.remove_seats": "Supprimer des licences libres",
        "btn.buy_more": "Acheter plus",
        "btn.buy": "Acheter des licences",
        "btn.requests": "Demandes de mise à niveau",
        "btn.audit": "Changements récents",
        "users.selection_actions": "Avec les utilisateurs sélectionnés :",
        "users.pool_actions": "Ce lot :",
        "tiers.missing": "Choisissez d'abord la nouvelle offre.",
        "quote.line_period": "{start} → {end}",
        "quote.purchase_expires": "Ce devis est valable jusqu'à {time}.",
        "quote.purchase_pay_hint": "Payez par le lien sécurisé ; les licences sont ajoutées dès réception du "
                                   "paiement.",
        "error.ask.one": "Demandez à {a} de vous ajouter.",
        "error.ask.two": "Demandez à {a} ou à {b} de vous ajouter.",
        "error.ask.three": "Demandez à {a}, {b} ou {c} de vous ajouter.",
        "error.ask.more": "Demandez à {a}, {b}, {c} ou à un autre administrateur de vous ajouter.",
        "error.ask.none": "Demandez à l'un de ses administrateurs de vous ajouter.",
        "error.not_user": "Vous n'êtes pas encore utilisateur du compte License Desk de votre organisation.",
        "error.no_account": "Votre organisation n'a pas encore de compte License Desk. Demandez à votre "
                            "administrateur informatique d'en créer un.",
        "error.admin_only": "Seul un administrateur de votre compte License Desk peut faire cela.",
        "error.admin_ask.one": "Adressez-vous à {a}.",
        "error.admin_ask.two": "Adressez-vous à {a} ou à {b}.",
        "error.admin_ask.three": "Adressez-vous à {a}, {b} ou {c}.",
        "error.admin_ask.more": "Adressez-vous à {a}, {b}, {c} ou à un autre administrateur.",
        "error.admin_ask.none": "Adressez-vous à l'un d'eux.",
    },
}


def add_strings(strings: dict[str, dict[str, str]]) -> None:
    """Register a card module's strings: ``{"en": {...}, "fr": {...}}``; every key needs both."""
    en, fr = strings["en"], strings["fr"]
    if set(en) != set(fr):
        raise ValueError(f"strings without a translation: {sorted(set(en) ^ set(fr))}")
    clash = set(en) & set(STRINGS["en"])
    if clash:
        raise ValueError(f"strings defined twice: {sorted(clash)}")
    STRINGS["en"].update(en)
    STRINGS["fr"].update(fr)


def language(locale: str | None) -> str:
    lang = (locale or "en").replace("_", "-").split("-")[0].lower()
    return lang if lang in SUPPORTED else "en"


def babel_locale(locale: str | None) -> str:
    """'fr-CA' -> 'fr_CA'; anything unsupported falls back to en_US."""
    lang = language(locale)
    parts = (locale or "").replace("_", "-").split("-")
    region = parts[1].upper() if len(parts) > 1 and parts[0].lower() == lang and parts[1].isalpha() else None
    candidate = f"{lang}_{region}" if region else ("fr_FR" if lang == "fr" else "en_US")
    try:
        from babel import Locale

        Locale.parse(candidate)
        return candidate
    except Exception:
        return "fr_FR" if lang == "fr" else "en_US"


class T:
    """Translator bound to one locale: ``t("key", n=3)``; also formats money and dates."""

    def __init__(self, locale: str | None):
        self.locale = locale or "en-US"
        self.lang = language(locale)
        self.babel = babel_locale(locale)

    def __call__(self, key: str, **kw) -> str:
        text = STRINGS[self.lang].get(key) or STRINGS["en"][key]
        return text.format(**kw) if kw else text

    def money(self, amount: int, currency: str) -> str:
        return _money(amount, currency, self.babel)

    def date(self, value: datetime) -> str:
        return format_date(value, format="medium", locale=self.babel)

    def datetime(self, value: datetime) -> str:
        return format_datetime(value, format="medium", tzinfo=value.tzinfo, locale=self.babel) + " UTC"

    def interval(self, interval: str) -> str:
        return self(f"interval.{interval}")
