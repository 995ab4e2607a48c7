"""Card strings in English and French, and locale-aware formatting (Babel) in the reader's
time zone."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, available_timezones

from babel.dates import format_date, format_datetime

from core.errors import Message, plural_index
from core.money import money as _money

SUPPORTED = ("en", "fr")


@dataclass(frozen=True)
class Plural:
    """A string about a count, in its two gettext forms (ngettext's msgid and msgid_plural; a
    translation gives its language's own two): the reader's language's plural rule
    (:func:`core.errors.plural_index`) picks one by the value of the placeholder ``count``, so
    that ``t("users.selected", n=1)`` says "1 user selected" and never "1 user(s)"."""

    one: str
    other: str
    count: str = "n"

    def form(self, lang: str, params: dict) -> str:
        return (self.one, self.other)[plural_index(lang, params[self.count])]

    def map(self, fn) -> Plural:
        return Plural(fn(self.one), fn(self.other), self.count)


def forms(value: str | Plural) -> tuple[str, ...]:
    """Every text of a catalog entry: its two forms for a :class:`Plural`."""
    return (value.one, value.other) if isinstance(value, Plural) else (value,)


def _check_plurals(en: dict, fr: dict) -> None:
    """A string about a count is one in both languages, counted by the same placeholder."""
    wrong = sorted(key for key in en if isinstance(en[key], Plural) is not isinstance(fr[key], Plural)
                   or isinstance(en[key], Plural) and en[key].count != fr[key].count)
    if wrong:
        raise ValueError(f"plural strings whose translation is not plural the same way: {wrong}")


STRINGS: dict[str, dict[str, str | Plural]] = {
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
        # the command words the help shows (each one the router understands: dialogs.router checks it)
        "word.licenses": "licenses",
        "word.buy": "buy",
        "word.assign": "assign",
        "word.requests": "requests",
        "word.audit": "audit",
        "word.mylicense": "my license",
        "word.help": "help",
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
        "btn.open_quote": "Open that quote",
        "btn.cancel_quote": "Cancel it",
        "pools.title": "License pools of {account}",
        "pools.empty": "Your account has no licenses yet.",
        "pools.plan": "Plan",
        "pools.bought": "Bought",
        "pools.assigned": "Assigned",
        "pools.free": "Free",
        "pools.renewal": "Renews",
        "pools.hint": "Select an assigned count to see its users and upgrade them.",
        "pools.removal": Plural("{n} seat leaves at renewal", "{n} seats leave at renewal"),
        "interval.month": "monthly",
        "interval.year": "yearly",
        "users.title": Plural("{plan} ({interval}): {total} user", "{plan} ({interval}): {total} users", "total"),
        "users.title_search": Plural("{plan} ({interval}): {total} user matching “{query}”",
                                     "{plan} ({interval}): {total} users matching “{query}”", "total"),
        "users.search": "Search by name or e-mail",
        "users.pick": "Or find anyone in this pool",
        "users.page": "Page {page} of {pages}",
        "users.none": "Nobody matches.",
        "users.selected": Plural("{n} user selected", "{n} users selected"),
        "users.select": "Tick the users to upgrade",
        "users.held": "held by a quote until {time}",
        "users.downgrade": "downgrade to {plan} scheduled",
        "tiers.title": Plural("Upgrade {n} user from {plan}", "Upgrade {n} users from {plan}"),
        "tiers.choose": "New tier",
        "tiers.none": "{plan} is already the highest tier of its family: there is nothing to upgrade to.",
        "tiers.price": "{plan}: {price} per seat per {unit}",
        "unit.month": "month",
        "unit.year": "year",
        "quote.title": "Upgrade quote",
        "quote.purchase_title": "Purchase quote",
        "quote.users": "Users",
        "quote.more": Plural("and {n} more", "and {n} more"),
        "quote.change": "Change",
        "quote.period": "Proration period",
        "quote.credit": "Credit for unused time on {n} × {plan}",
        "quote.charge": "Charge for remaining time on {n} × {plan}",
        "quote.purchase_line": "{n} × {plan} ({interval})",
        "quote.discount": "Discount ({percent}%): {label}",
        "quote.discount_unnamed": "Discount ({percent}%)",
        "quote.due": "Due now",
        "quote.renewal": "Then at the next billing cycle, {date}",
        "quote.expires": "This quote is valid until {time}. The seats are held for you until then.",
        "quote.nothing_due": "Nothing is due now: confirm to apply it.",
        "quote.carried": "Added to your next invoice (below the minimum card payment)",
        "quote.carried_hint": "Nothing is charged now: {amount} is too small for a card payment and is added to "
                              "your next invoice. Confirm to apply it.",
        "quote.pay_hint": "Pay through the secure link; the users are upgraded as soon as the payment is received.",
        "status.open": "Waiting for payment",
        "status.paid": "Paid",
        "status.expired": "Expired",
        "status.cancelled": "Cancelled",
        "status.refund_needed": "Payment to be refunded",
        "paid.title": "Upgrade paid",
        "paid.body": Plural("{n} user now holds {plan}, effective now.", "{n} users now hold {plan}, effective now."),
        "paid.told": Plural("They have been told in Teams.", "Each of them has been told in Teams."),
        "paid.telling": Plural("They will be told in Teams shortly.",
                               "Each of them will be told in Teams ({done} of {total} told so far).", "total"),
        "paid.not_told": Plural("{n} of {total} could not be told in Teams: License Desk cannot reach them there yet.",
                                "{n} of {total} could not be told in Teams: License Desk cannot reach them there yet."),
        "paid.amount": "Amount paid",
        "paid.at": "Paid on",
        "paid.by": "Paid by",
        "paid.via_link": "Through the payment link of the quote prepared by {name}",
        "paid.reference": "Payment reference",
        "paid.purchase_body": "The licenses are added to your pools.",
        "cancelled.title": "Quote cancelled",
        "quote.lapsed.failed": "The previous payment failed; nothing was charged. Pay again with a new link.",
        "quote.lapsed.expired": "The previous payment link expired unpaid. Pay with a new link.",
        "btn.new_link": "Get a new payment link",
        "quote.closing": "The payment link is being closed. If a payment goes through meanwhile, it will be "
                         "refunded, never applied.",
        "quote.nothing_charged": "Nothing was charged.",
        "cancelled.closing": "The seats are free again. The payment link is being closed: if a payment goes "
                             "through meanwhile, it will be refunded, never applied.",
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
        "tiers.already": "This upgrade was already quoted: here is its quote.",
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
        "word.licenses": "licences",
        "word.buy": "acheter",
        "word.assign": "attribuer",
        "word.requests": "demandes",
        "word.audit": "journal",
        "word.mylicense": "ma licence",
        "word.help": "aide",
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
        "btn.open_quote": "Ouvrir ce devis",
        "btn.cancel_quote": "L'annuler",
        "pools.title": "Lots de licences de {account}",
        "pools.empty": "Votre compte n'a pas encore de licence.",
        "pools.plan": "Offre",
        "pools.bought": "Achetées",
        "pools.assigned": "Attribuées",
        "pools.free": "Libres",
        "pools.renewal": "Renouvellement",
        "pools.hint": "Choisissez un nombre d'attributions pour voir les utilisateurs et les mettre à niveau.",
        "pools.removal": Plural("{n} licence retirée au renouvellement", "{n} licences retirées au renouvellement"),
        "interval.month": "mensuel",
        "interval.year": "annuel",
        "users.title": Plural("{plan} ({interval}) : {total} utilisateur", "{plan} ({interval}) : {total} utilisateurs",
                              "total"),
        "users.title_search": Plural("{plan} ({interval}) : {total} utilisateur pour « {query} »",
                                     "{plan} ({interval}) : {total} utilisateurs pour « {query} »", "total"),
        "users.search": "Rechercher par nom ou e-mail",
        "users.pick": "Ou trouver quelqu'un dans ce lot",
        "users.page": "Page {page} sur {pages}",
        "users.none": "Personne ne correspond.",
        "users.selected": Plural("{n} utilisateur sélectionné", "{n} utilisateurs sélectionnés"),
        "users.select": "Cochez les utilisateurs à mettre à niveau",
        "users.held": "réservé par un devis jusqu'au {time}",
        "users.downgrade": "passage à {plan} prévu",
        "tiers.title": Plural("Mettre à niveau {n} utilisateur depuis {plan}",
                              "Mettre à niveau {n} utilisateurs depuis {plan}"),
        "tiers.choose": "Nouvelle offre",
        "tiers.none": "{plan} est déjà l'offre la plus haute de sa famille : aucune mise à niveau possible.",
        "tiers.price": "{plan} : {price} par licence et par {unit}",
        "unit.month": "mois",
        "unit.year": "an",
        "quote.title": "Devis de mise à niveau",
        "quote.purchase_title": "Devis d'achat",
        "quote.users": "Utilisateurs",
        "quote.more": Plural("et {n} autre", "et {n} autres"),
        "quote.change": "Changement",
        "quote.period": "Période au prorata",
        "quote.credit": "Avoir pour le temps non utilisé sur {n} × {plan}",
        "quote.charge": "Montant pour le temps restant sur {n} × {plan}",
        "quote.purchase_line": "{n} × {plan} ({interval})",
        "quote.discount": "Remise ({percent} %) : {label}",
        "quote.discount_unnamed": "Remise ({percent} %)",
        "quote.due": "À payer maintenant",
        "quote.renewal": "Puis au prochain cycle de facturation, le {date}",
        "quote.expires": "Ce devis est valable jusqu'au {time}. Les licences vous sont réservées d'ici là.",
        "quote.nothing_due": "Rien n'est dû maintenant : confirmez pour l'appliquer.",
        "quote.carried": "Ajouté à votre prochaine facture (sous le paiement par carte minimal)",
        "quote.carried_hint": "Rien n'est débité maintenant : {amount} est trop faible pour un paiement par carte "
                              "et s'ajoute à votre prochaine facture. Confirmez pour l'appliquer.",
        "quote.pay_hint": "Payez par le lien sécurisé ; les utilisateurs sont mis à niveau dès réception du "
                          "paiement.",
        "status.open": "En attente de paiement",
        "status.paid": "Payé",
        "status.expired": "Expiré",
        "status.cancelled": "Annulé",
        "status.refund_needed": "Paiement à rembourser",
        "paid.title": "Mise à niveau payée",
        "paid.body": Plural("{n} utilisateur a maintenant {plan}, dès maintenant.",
                            "{n} utilisateurs ont maintenant {plan}, dès maintenant."),
        "paid.told": Plural("Cette personne a été prévenue dans Teams.", "Chacun a été prévenu dans Teams."),
        "paid.telling": Plural("Cette personne sera prévenue dans Teams sous peu.",
                               "Chacun sera prévenu dans Teams ({done} sur {total} pour l'instant).", "total"),
        "paid.not_told": Plural(
            "{n} sur {total} n'a pas pu être prévenu dans Teams : License Desk ne peut pas encore le joindre.",
            "{n} sur {total} n'ont pas pu être prévenus dans Teams : License Desk ne peut pas encore les joindre."),
        "paid.amount": "Montant payé",
        "paid.at": "Payé le",
        "paid.by": "Payé par",
        "paid.via_link": "Par le lien de paiement du devis préparé par {name}",
        "paid.reference": "Référence du paiement",
        "paid.purchase_body": "Les licences sont ajoutées à vos lots.",
        "cancelled.title": "Devis annulé",
        "quote.lapsed.failed": "Le paiement précédent a échoué ; rien n'a été facturé. Payez de nouveau avec un "
                               "nouveau lien.",
        "quote.lapsed.expired": "Le lien de paiement précédent a expiré sans paiement. Payez avec un nouveau lien.",
        "btn.new_link": "Obtenir un nouveau lien de paiement",
        "quote.closing": "Le lien de paiement est en cours de fermeture. Si un paiement aboutit entre-temps, il "
                         "sera remboursé, jamais appliqué.",
        "quote.nothing_charged": "Rien n'a été facturé.",
        "cancelled.closing": "Les licences sont de nouveau libres. Le lien de paiement est en cours de fermeture : "
                             "si un paiement aboutit entre-temps, il sera remboursé, jamais appliqué.",
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
        "tiers.already": "Un devis a déjà été préparé pour cette mise à niveau : le voici.",
        "quote.line_period": "{start} → {end}",
        "quote.purchase_expires": "Ce devis est valable jusqu'au {time}.",
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


# The core's and the dialogs' messages (core.errors.Message) in French, keyed by their English
# template (the same placeholders; a format spec may differ, e.g. dates). A template missing
# here is said in English.
MESSAGES_FR: dict[str, str | Plural] = {
    # people to ask (inside the sentences below)
    "{a} or {b}": "{a} ou à {b}",
    "{a}, {b} or {c}": "{a}, {b} ou {c}",
    "{a}, {b}, {c} or another administrator": "{a}, {b}, {c} ou à un autre administrateur",
    # who is calling
    "I could not tell who you are. Please open License Desk from Microsoft Teams.":
        "Je n'ai pas pu savoir qui vous êtes. Ouvrez License Desk depuis Microsoft Teams.",
    "Your organisation has no License Desk account yet. Ask your IT administrator to set one up.":
        "Votre organisation n'a pas encore de compte License Desk. Demandez à votre administrateur informatique "
        "d'en créer un.",
    "You are not a user of your organisation's License Desk account yet. Ask {whom} to add you.":
        "Vous n'êtes pas encore utilisateur du compte License Desk de votre organisation. Demandez à {whom} de "
        "vous ajouter.",
    "You are not a user of your organisation's License Desk account yet. Ask one of its administrators to add "
    "you.":
        "Vous n'êtes pas encore utilisateur du compte License Desk de votre organisation. Demandez à l'un de ses "
        "administrateurs de vous ajouter.",
    "Only an administrator of your License Desk account can do this. Ask {whom}.":
        "Seul un administrateur de votre compte License Desk peut faire cela. Adressez-vous à {whom}.",
    "Only an administrator of your License Desk account can do this. Ask one of them.":
        "Seul un administrateur de votre compte License Desk peut faire cela. Adressez-vous à l'un d'eux.",
    "Only administrators can see other people's requests.":
        "Seuls les administrateurs peuvent voir les demandes des autres.",
    "This bot is not available to your organisation.": "Ce bot n'est pas disponible pour votre organisation.",
    "Over the rate limit ({limit}).": "Limite de requêtes dépassée ({limit}).",
    # input
    "reason": "motif",
    "search text": "texte recherché",
    "name": "nom",
    "e-mail": "e-mail",
    "directory id": "identifiant d'annuaire",
    "The {field} must be text.": "Le champ « {field} » doit être du texte.",
    "Please enter the {field}.": "Renseignez le champ « {field} ».",
    "The {field} is too long ({length} characters; at most {max_length}).":
        "Le champ « {field} » est trop long ({length} caractères ; {max_length} au maximum).",
    "The quantity must be a whole number from 1 to 10,000.": "La quantité doit être un nombre entier de 1 à 10 000.",
    "That pool reference is not valid.": "La référence de ce lot n'est pas valide.",
    "That user reference is not valid.": "La référence de cet utilisateur n'est pas valide.",
    "That request reference is not valid.": "La référence de cette demande n'est pas valide.",
    "That account reference is not valid.": "La référence de ce compte n'est pas valide.",
    "That {what} reference is not valid.": "Cette référence ({what}) n'est pas valide.",
    "The user selection is not valid.": "La sélection d'utilisateurs n'est pas valide.",
    "At most {limit:,} users can be selected at once.": "Au plus {limit} utilisateurs peuvent être sélectionnés à la "
                                                        "fois.",
    "Select at least one user.": "Sélectionnez au moins un utilisateur.",
    "That page number is not valid.": "Ce numéro de page n'est pas valide.",
    "That e-mail address is not valid.": "Cette adresse e-mail n'est pas valide.",
    "The database is busy right now. Nothing was changed; please try again.":
        "La base de données est occupée pour le moment. Rien n'a été modifié ; réessayez.",
    # catalog
    "“{interval}” is not a billing interval (month or year).":
        "« {interval} » n'est pas une périodicité de facturation (mois ou année).",
    "There is no plan “{code}”.": "L'offre « {code} » n'existe pas.",
    "{plan} is sold in {sold_in}, but this account is billed in {billed_in}.":
        "L'offre {plan} est vendue en {sold_in}, mais ce compte est facturé en {billed_in}.",
    "{plan} is sold in {sold_in}, but your account is billed in {billed_in}.":
        "L'offre {plan} est vendue en {sold_in}, mais votre compte est facturé en {billed_in}.",
    # pools and seats
    "That license pool does not exist in your account (it may have been removed).":
        "Ce lot de licences n'existe pas dans votre compte (il a peut-être été supprimé).",
    "That user is not in your account.": "Cet utilisateur ne fait pas partie de votre compte.",
    "{missing} of the selected users no longer holds a seat in this pool. Here is the pool as it is now; select "
    "again.": Plural(
        "{missing} des utilisateurs sélectionnés n'a plus de licence dans ce lot. Voici le lot tel qu'il est "
        "maintenant ; sélectionnez de nouveau.",
        "{missing} des utilisateurs sélectionnés n'ont plus de licence dans ce lot. Voici le lot tel qu'il est "
        "maintenant ; sélectionnez de nouveau.", "missing"),
    "{email} is not on an approved e-mail domain of your account, so it cannot hold a license. An administrator "
    "can approve the domain first.":
        "{email} n'est pas sur un domaine de messagerie approuvé pour votre compte : cette personne ne peut donc "
        "pas recevoir de licence. Un administrateur peut d'abord approuver le domaine.",
    "{name} already holds a {plan} license ({family} family). Upgrade or unassign it instead.":
        "{name} a déjà une licence {plan} (famille {family}). Mettez-la plutôt à niveau, ou retirez-la.",
    "There is no free {plan} seat in this pool. Buy one, or unassign someone first.":
        "Il n'y a plus de licence {plan} libre dans ce lot. Achetez-en une, ou retirez d'abord une licence à "
        "quelqu'un.",
    "Only {free} seat of this pool is free. Unassign users first, then remove their seats.": Plural(
        "Ce lot n'a que {free} licence libre. Retirez d'abord des utilisateurs, puis supprimez leurs licences.",
        "Ce lot n'a que {free} licences libres. Retirez d'abord des utilisateurs, puis supprimez leurs licences.",
        "free"),
    "The seats to remove from this pool changed since this card was shown: {scheduled} now leaves at renewal. "
    "Nothing more was removed.": Plural(
        "Les licences à supprimer de ce lot ont changé depuis l'affichage de cette carte : {scheduled} part "
        "désormais au renouvellement. Rien de plus n'a été supprimé.",
        "Les licences à supprimer de ce lot ont changé depuis l'affichage de cette carte : {scheduled} partent "
        "désormais au renouvellement. Rien de plus n'a été supprimé.", "scheduled"),
    "No seat of this pool is scheduled to leave at renewal: there is nothing to cancel.":
        "Aucune licence de ce lot ne doit partir au renouvellement : il n'y a rien à annuler.",
    "These seats are held by an open quote of {holder} until {until:%Y-%m-%d %H:%M %Z}. Wait for it to be paid "
    "or to expire, or ask {holder} to cancel it.":
        "Ces licences sont réservées jusqu'au {until:%Y-%m-%d à %H:%M %Z} par un devis ouvert préparé par "
        "{holder}. Attendez qu'il soit payé ou qu'il expire, ou demandez à {holder} de l'annuler.",
    "These seats are held by an open quote of another administrator until {until:%Y-%m-%d %H:%M %Z}. Wait for "
    "it to be paid or to expire, or ask another administrator to cancel it.":
        "Ces licences sont réservées jusqu'au {until:%Y-%m-%d à %H:%M %Z} par un devis ouvert préparé par un autre "
        "administrateur. Attendez qu'il soit payé ou qu'il expire, ou demandez à cet administrateur de l'annuler.",
    "These seats are held by your own open quote until {until:%Y-%m-%d %H:%M %Z}. Open it to pay it, or cancel "
    "it to go on.":
        "Ces licences sont réservées jusqu'au {until:%Y-%m-%d à %H:%M %Z} par votre propre devis ouvert. Ouvrez-le "
        "pour le payer, ou annulez-le pour continuer.",
    # upgrades and downgrades
    "Choose the plan to upgrade to.": "Choisissez l'offre supérieure à laquelle passer.",
    "{plan} is not in the same family as {current}; an upgrade stays within the {family} family.":
        "L'offre {plan} n'est pas de la même famille que l'offre {current} ; une mise à niveau reste dans la "
        "famille {family}.",
    "{plan} is not above {current}: an upgrade must go to a higher tier.":
        "L'offre {plan} n'est pas au-dessus de l'offre {current} : une mise à niveau doit aller vers une offre "
        "supérieure.",
    "Choose the plan to downgrade to.": "Choisissez l'offre inférieure à laquelle passer.",
    "{plan} is not in the same family as {current}.":
        "L'offre {plan} n'est pas de la même famille que l'offre {current}.",
    "{plan} is not below {current}: a downgrade goes to a lower tier.":
        "L'offre {plan} n'est pas en dessous de l'offre {current} : une rétrogradation va vers une offre "
        "inférieure.",
    "The downgrade to {plan} is already scheduled for the selected users ({date:%Y-%m-%d}). Nothing was changed.":
        "La rétrogradation vers {plan} est déjà planifiée pour les utilisateurs sélectionnés (le "
        "{date:%Y-%m-%d}). Rien n'a été modifié.",
    "None of these users has a downgrade scheduled.": "Aucun de ces utilisateurs n'a de rétrogradation planifiée.",
    # carts and quotes
    "The cart is empty: add at least one line.": "Le panier est vide : ajoutez au moins une ligne.",
    "A cart holds at most {n} lines.": "Un panier contient au plus {n} lignes.",
    "A cart line is not valid.": "Une ligne du panier n'est pas valide.",
    "Choose monthly or yearly billing for each line.": "Choisissez une facturation mensuelle ou annuelle pour chaque "
                                                       "ligne.",
    "Choose a plan for each line.": "Choisissez une offre pour chaque ligne.",
    "This cart card is not valid. Start again from “buy”.":
        "Cette carte de panier n'est pas valide. Recommencez avec « acheter ».",
    "This cart is not valid (a cart holds at most {n} lines). Start again with “buy”.":
        "Ce panier n'est pas valide (un panier contient au plus {n} lignes). Recommencez avec « acheter ».",
    "This cart card is not valid, or its cart is empty. Start again with “buy”.":
        "Cette carte de panier n'est pas valide, ou son panier est vide. Recommencez avec « acheter ».",
    "That quote does not exist.": "Ce devis n'existe pas.",
    "That quote does not exist in your account.": "Ce devis n'existe pas dans votre compte.",
    "This quote has expired; nothing was charged. Prepare a new one to see today's amounts.":
        "Ce devis a expiré ; rien n'a été facturé. Préparez-en un nouveau pour voir les montants du jour.",
    "This quote is already paid.": "Ce devis est déjà payé.",
    "This quote was cancelled; nothing was charged.": "Ce devis a été annulé ; rien n'a été facturé.",
    "This quote could not be applied after payment; our team has been told to refund it.":
        "Ce devis n'a pas pu être appliqué après le paiement ; notre équipe a été prévenue et va rembourser le "
        "paiement.",
    "This quote can no longer be used.": "Ce devis ne peut plus être utilisé.",
    "Nothing is due on this quote: confirm it instead of paying.":
        "Rien n'est dû sur ce devis : confirmez-le au lieu de payer.",
    "This quote has an amount due: pay it through the payment link.":
        "Ce devis comporte un montant à payer : réglez-le par le lien de paiement.",
    "Payments are not configured on this server. Ask your administrator.":
        "Les paiements ne sont pas configurés sur ce serveur. Adressez-vous à votre administrateur.",
    "The amount due now is below the smallest card payment the payment service accepts, and this account has no "
    "billing profile there to add it to the next invoice. Include more users or licenses in this change.":
        "Le montant à payer maintenant est inférieur au plus petit paiement par carte qu'accepte le service de "
        "paiement, et ce compte n'y a pas de profil de facturation pour l'ajouter à la prochaine facture. "
        "Incluez plus d'utilisateurs ou de licences dans ce changement.",
    "The payment service did not answer. Nothing was charged; please try again in a minute.":
        "Le service de paiement n'a pas répondu. Rien n'a été facturé ; réessayez dans une minute.",
    "The payment arrived after the quote was closed (cancelled or expired); it was not applied.":
        "Le paiement est arrivé après la clôture du devis (annulé ou expiré) ; il n'a pas été appliqué.",
    "The payment arrived after the billing period the quote was priced in had ended; it was not applied. Prepare "
    "a new quote for the current period.":
        "Le paiement est arrivé après la fin de la période de facturation sur laquelle le devis était calculé ; il "
        "n'a pas été appliqué. Préparez un nouveau devis pour la période en cours.",
    "The payment service could not create the payment link just now. Nothing was charged; please try again in a "
    "minute.":
        "Le service de paiement n'a pas pu créer le lien de paiement pour l'instant. Rien n'a été facturé ; "
        "réessayez dans une minute.",
    "The payment service refused this server's credentials, so no payment link can be created. Nothing was "
    "charged. Ask whoever runs License Desk to check its payment settings: trying again will not help until then.":
        "Le service de paiement a refusé les identifiants de ce serveur : aucun lien de paiement ne peut être créé. "
        "Rien n'a été facturé. Demandez à la personne qui gère License Desk de vérifier ses réglages de paiement : "
        "réessayer n'y changera rien d'ici là.",
    "The payment service refused to create a payment link for this quote. Nothing was charged. Ask whoever runs "
    "License Desk to check the account's billing profile and the payment settings: trying again will not help "
    "until then.":
        "Le service de paiement a refusé de créer un lien de paiement pour ce devis. Rien n'a été facturé. "
        "Demandez à la personne qui gère License Desk de vérifier le profil de facturation du compte et les "
        "réglages de paiement : réessayer n'y changera rien d'ici là.",
    "This card does not name a quote. Start again from the license pools.":
        "Cette carte ne désigne aucun devis. Recommencez depuis les lots de licences.",
    "This card is not valid. Start again from the license pools.":
        "Cette carte n'est pas valide. Recommencez depuis les lots de licences.",
    # upgrade requests
    "Choose the plan you would like.": "Choisissez l'offre souhaitée.",
    "You hold no {family} license yet. Ask an administrator to assign one to you.":
        "Vous n'avez encore aucune licence de la famille {family}. Demandez à un administrateur de vous en "
        "attribuer une.",
    "{plan} is not above your current plan, {current}.":
        "L'offre {plan} n'est pas au-dessus de votre offre actuelle, {current}.",
    "You already asked for {plan} on {date:%Y-%m-%d}; an administrator will answer soon.":
        "Vous avez déjà demandé {plan} le {date:%Y-%m-%d} ; un administrateur va vous répondre.",
    "Your request for {plan} was approved; an administrator is completing the payment. You will be told when it is "
    "active.":
        "Votre demande pour {plan} a été approuvée ; un administrateur effectue le paiement. Vous serez prévenu dès "
        "qu'elle sera active.",
    "You already asked for an upgrade of your {family} license; an administrator will answer soon.":
        "Vous avez déjà demandé une mise à niveau de votre licence {family} ; un administrateur va vous répondre.",
    "That upgrade request does not exist in your account.":
        "Cette demande de mise à niveau n'existe pas dans votre compte.",
    "This request was already approved by {by} at {at:%Y-%m-%d %H:%M %Z}.":
        "Cette demande a déjà été approuvée par {by} le {at:%Y-%m-%d à %H:%M %Z}.",
    "This request was already declined by {by} at {at:%Y-%m-%d %H:%M %Z}.":
        "Cette demande a déjà été refusée par {by} le {at:%Y-%m-%d à %H:%M %Z}.",
    "This request was already decided.": "Une décision a déjà été prise pour cette demande.",
    "The requester no longer holds a license of that family; nothing was approved.":
        "Le demandeur n'a plus de licence de cette famille ; rien n'a été approuvé.",
    "There is no account {account}.": "Le compte {account} n'existe pas.",
    # card steps
    "No user was selected.": "Aucun utilisateur n'a été sélectionné.",
    "No user was chosen.": "Aucun utilisateur n'a été choisi.",
    "No plan was chosen.": "Aucune offre n'a été choisie.",
    "No license was chosen.": "Aucune licence n'a été choisie.",
    "At most {n} users can be selected at once. Select fewer, then do the others in a second round.":
        "Au plus {n} utilisateurs peuvent être sélectionnés à la fois. Sélectionnez-en moins, puis traitez les "
        "autres dans un second temps.",
    "At most {n} users can be unassigned at once.": "Vous pouvez retirer la licence d'au plus {n} utilisateurs à la "
                                                    "fois.",
    "This pool has {total} users: at most {n} can be downgraded at once. Select them in the pool's users card, in "
    "several rounds.":
        "Ce lot compte {total} utilisateurs : au plus {n} peuvent être rétrogradés à la fois. Sélectionnez-les dans "
        "la carte des utilisateurs du lot, en plusieurs fois.",
    "Choose whom to downgrade: the selected users or the whole pool.":
        "Choisissez qui rétrograder : les utilisateurs sélectionnés ou tout le lot.",
    "This card is not valid. Open the pool's users card and try again.":
        "Cette carte n'est pas valide. Ouvrez la carte des utilisateurs du lot et réessayez.",
    "That person cannot be picked here. Search again and choose someone from the list.":
        "Cette personne ne peut pas être choisie ici. Recherchez de nouveau et choisissez quelqu'un dans la liste.",
    "That person is not in your organisation's directory any more. Search again.":
        "Cette personne ne figure plus dans l'annuaire de votre organisation. Recherchez de nouveau.",
    "The organisation's directory could not be read.": "L'annuaire de l'organisation n'a pas pu être consulté.",
    "This button is not one I know (the card may come from an older version). Start again from the license pools.":
        "Je ne connais pas ce bouton (la carte vient peut-être d'une version plus ancienne). Recommencez depuis les "
        "lots de licences.",
    "The action has no verb.": "L'action n'a pas de verbe.",
    "The action's data must be an object.": "Les données de l'action doivent être un objet.",
    "Unknown search dataset.": "Jeu de données de recherche inconnu.",
    "The invoke has no action.": "L'appel ne contient aucune action.",
    "Only Action.Execute is supported here.": "Seul Action.Execute est pris en charge ici.",
}

_FR_VOWELS = frozenset("aeiouyàâäéèêëîïôöùûüœæ")
_PLACEHOLDER = re.compile(r"(\{[^{}]*\})")
_FR_BEFORE = re.compile(r"[ \u00a0\u202f]*([:;!?»%])(?=[\s)»,.]|$)")  # a colon, not that of "https://" or "10:30"
_FR_AFTER = re.compile(r"«[ \u00a0\u202f]*")


def french_typography(template: str) -> str:
    """A French template with a no-break space (U+00A0) before : ; ! ? % and » and after «, as
    French typography wants (and so that a line never starts with a colon); the placeholders
    and their format specs are left as they are."""
    parts = _PLACEHOLDER.split(template)
    for i in range(0, len(parts), 2):  # the text between placeholders
        parts[i] = _FR_AFTER.sub("«\u00a0", _FR_BEFORE.sub("\u00a0\\1", parts[i]))
    return "".join(parts)


def _typeset_fr(value: str | Plural) -> str | Plural:
    return value.map(french_typography) if isinstance(value, Plural) else french_typography(value)


_check_plurals(STRINGS["en"], STRINGS["fr"])
STRINGS["fr"] = {key: _typeset_fr(value) for key, value in STRINGS["fr"].items()}
MESSAGES: dict[str, dict[str, str | Plural]] = {"fr": {key: _typeset_fr(value) for key, value in MESSAGES_FR.items()}}


def add_strings(strings: dict[str, dict[str, str | Plural]]) -> None:
    """Register a card module's strings: ``{"en": {...}, "fr": {...}}``; every key needs both."""
    en, fr = strings["en"], strings["fr"]
    if set(en) != set(fr):
        raise ValueError(f"strings without a translation: {sorted(set(en) ^ set(fr))}")
    _check_plurals(en, fr)
    clash = set(en) & set(STRINGS["en"])
    if clash:
        raise ValueError(f"strings defined twice: {sorted(clash)}")
    STRINGS["en"].update(en)
    STRINGS["fr"].update({key: _typeset_fr(value) for key, value in fr.items()})


@dataclass(frozen=True)
class Reader:
    """Who reads a card: their locale and, when known, their IANA time zone (e.g.
    "Europe/Paris"). Data like any other card input: :class:`T`, :func:`language` and
    :func:`babel_locale` take a Reader wherever they take a locale string, so a card builder's
    ``locale`` argument may be either (a plain locale: times in UTC, as before)."""

    locale: str | None = None
    timezone: str | None = None


def _locale(locale: str | Reader | None) -> str | None:
    return locale.locale if isinstance(locale, Reader) else locale


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones() - {"localtime"})  # (the server's own zone: not a name a client sends)


def zone(name) -> ZoneInfo | None:
    """The time zone with that IANA name; None for anything else (unknown, malformed, not a str)."""
    if not isinstance(name, str) or len(name) > 64 or name not in _zone_names():
        return None
    try:
        return ZoneInfo(name)
    except Exception:  # noqa: BLE001 - a name in the list whose file cannot be read: no zone
        return None


def language(locale: str | Reader | None) -> str:
    lang = (_locale(locale) or "en").replace("_", "-").split("-")[0].lower()
    return lang if lang in SUPPORTED else "en"


def babel_locale(locale: str | Reader | None) -> str:
    """'fr-CA' -> 'fr_CA'; anything unsupported falls back to en_US."""
    locale = _locale(locale)
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
    """Translator bound to one reader (a :class:`Reader`, or a plain locale): ``t("key", n=3)``;
    also formats money, and dates and times in the reader's time zone (UTC when not known)."""

    def __init__(self, locale: str | Reader | None):
        self.zone = zone(locale.timezone) if isinstance(locale, Reader) else None
        locale = _locale(locale)
        self.locale = locale or "en-US"
        self.lang = language(locale)
        self.babel = babel_locale(locale)

    def __call__(self, key: str, **kw) -> str:
        """The string ``key`` formatted with ``kw``; a value that is a Message is said first."""
        text = STRINGS[self.lang].get(key) or STRINGS["en"][key]
        if isinstance(text, Plural):
            text = text.form(self.lang, kw)
        if not kw:
            return text
        values = {k: self.say(v) if isinstance(v, Message) else v for k, v in kw.items()}
        if self.lang == "fr":  # "de API Pro" is "d'API Pro": French elides "de" before a vowel
            for k, v in values.items():
                if isinstance(v, str) and v[:1].lower() in _FR_VOWELS:
                    text = re.sub(r"\b(de|De) \{" + re.escape(k) + r"\}", lambda m, k=k: m[1][0] + "'{" + k + "}",
                                  text)
        return text.format(**values)

    def say(self, message) -> str:
        """A :class:`~core.errors.Message` in this language: its template's translation formatted
        with the same params (those that are Messages said too, instants in the reader's time
        zone); the English text when there is none. Anything else (a plain or already
        translated str) is returned as it is."""
        if not isinstance(message, Message):
            return str(message)
        template, lang = MESSAGES.get(self.lang, {}).get(message.template), self.lang
        if template is None:
            if self.zone is None:
                return str(message)
            template, lang = message.template, "en"  # the English text, its instants in the reader's zone
            if message.plural is not None:
                template = Plural(message.template, message.plural, message.count)
        if isinstance(template, Plural):
            template = template.form(lang, message.params)
        return template.format(**{k: self._param(v) for k, v in message.params.items()})

    def _param(self, value):
        if isinstance(value, Message):
            return self.say(value)
        if isinstance(value, datetime) and value.tzinfo is not None and self.zone is not None:
            return _Local(value.astimezone(self.zone))
        return value

    def money(self, amount: int, currency: str) -> str:
        return _money(amount, currency, self.babel)

    def _local(self, value: datetime) -> datetime:
        """An instant in the reader's zone (a naive one is taken as UTC, as stored)."""
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(self.zone)

    def date(self, value: date) -> str:
        """The calendar date of an instant in the reader's time zone (a ``date`` as it is)."""
        if isinstance(value, datetime) and self.zone is not None:
            value = self._local(value)
        return format_date(value, format="medium", locale=self.babel)

    def datetime(self, value: datetime) -> str:
        """An instant in the reader's time zone, with the zone's abbreviation ("CET", "EST", or
        an offset: "UTC+04"); in UTC with " UTC" when the zone is not known."""
        if self.zone is None:
            return format_datetime(value, format="medium", tzinfo=value.tzinfo, locale=self.babel) + " UTC"
        local = self._local(value)
        return f"{format_datetime(local, format='medium', tzinfo=self.zone, locale=self.babel)} {zone_abbr(local)}"

    def interval(self, interval: str) -> str:
        return self(f"interval.{interval}")

    def quote_line(self, line) -> str:
        """A quote line's label (a ``QuoteLineView``: credit, charge or purchase), as the quote
        card, the cart and the payment page show it."""
        if line.kind == "credit":
            return self("quote.credit", n=line.quantity, plan=line.plan_name)
        if line.kind == "charge":
            return self("quote.charge", n=line.quantity, plan=line.plan_name)
        return self("quote.purchase_line", n=line.quantity, plan=line.plan_name, interval=self.interval(line.interval))

    def signed(self, amount: int, currency: str) -> str:
        """An amount with its sign always shown ("+$0.75", "-$1.51"): a discount on a credit adds."""
        return ("+" if amount > 0 else "") + self.money(amount, currency)

    def discount_label(self, q) -> str:
        """The discount in our words around its name from the account's data ("Discount (15%):
        Partner discount"), or without a name."""
        percent = self.percent(q.discount_percent)
        if q.discount_label:
            return self("quote.discount", label=q.discount_label, percent=percent)
        return self("quote.discount_unnamed", percent=percent)

    def quote_amounts(self, q) -> list[tuple[str, str, int]]:
        """A quote's amounts as the quote card, the cart and the payment page show them:
        (role, label, amount), role one of line | discount | carried | due. The discount is
        applied line by line (DESIGN.md), so each line's discount comes right under it: every
        amount above "Due now" adds up to it, to the cent."""
        rows = []
        for ln in q.lines:
            rows.append(("line", self.quote_line(ln), ln.gross))
            if ln.amount != ln.gross:
                rows.append(("discount", self.discount_label(q), ln.amount - ln.gross))
        if q.carried:
            rows.append(("carried", self("quote.carried"), -q.carried))
        rows.append(("due", self("quote.due"), q.due_now))
        return rows

    @staticmethod
    def renewals(q) -> list:
        """The quote's renewal dates and amounts, earliest first (``RenewalView``)."""
        from core.views import RenewalView

        return list(q.renewals) or [RenewalView(q.renewal_date, q.renewal_amount)]

    @staticmethod
    def percent(value) -> str:
        """A discount percentage (a Decimal, or None: "0") without trailing zeros: "15", "12.5"."""
        return f"{value.normalize():f}" if value is not None else "0"


def zone_abbr(local: datetime) -> str:
    """The abbreviation of a local time's zone: "CET", "EDT"; "UTC+04" where the time zone
    database has only an offset ("+04")."""
    name = local.tzname() or ""
    return f"UTC{name}" if name[:1] in ("+", "-") else name


class _Local:
    """A local time in a Message's params: "{until:%Y-%m-%d %H:%M %Z}" with the zone's name as
    cards show it (:func:`zone_abbr`)."""

    def __init__(self, local: datetime):
        self.local = local

    def __format__(self, spec: str) -> str:
        return format(self.local, spec.replace("%Z", zone_abbr(self.local)))
