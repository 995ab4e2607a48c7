"""Welcome, help and error cards."""

from __future__ import annotations

from cards.base import action_set, card, execute, facts, text, title
from cards.data import QuoteRef
from cards.i18n import N_, SUPPORTED, Locale, T
from cards.verbs import Verb

# each command: the word the help shows in the reader's language, its description, and the
# other words that open it in that language ("|"-separated) (catalog keys)
COMMANDS = {
    "licenses": (N_("word.licenses"), N_("cmd.licenses"), N_("alias.licenses")),
    "buy": (N_("word.buy"), N_("cmd.buy"), N_("alias.buy")),
    "assign": (N_("word.assign"), N_("cmd.assign"), N_("alias.assign")),
    "requests": (N_("word.requests"), N_("cmd.requests"), N_("alias.requests")),
    "audit": (N_("word.audit"), N_("cmd.audit"), N_("alias.audit")),
    "mylicense": (N_("word.mylicense"), N_("cmd.mylicense"), N_("alias.mylicense")),
    "help": (N_("word.help"), N_("cmd.help"), N_("alias.help")),
}
# whom to ask, by how many administrators are named (catalog keys: not an admin, not a user)
_ADMIN_ASK = {"none": N_("error.admin_ask.none"), "one": N_("error.admin_ask.one"), "two": N_("error.admin_ask.two"),
              "three": N_("error.admin_ask.three"), "more": N_("error.admin_ask.more")}
_ASK = {"none": N_("error.ask.none"), "one": N_("error.ask.one"), "two": N_("error.ask.two"),
        "three": N_("error.ask.three"), "more": N_("error.ask.more")}


def command_word(t: T, name: str) -> str:
    """The word that opens command ``name`` in the reader's language (the help shows it)."""
    return t(COMMANDS[name][0])


def command_aliases(name: str) -> tuple[str, ...]:
    """Every word that opens command ``name``, in every language of the catalogs (the router
    takes them all: a French reader may type "aide" in an English Teams)."""
    words = (T(lang)(COMMANDS[name][2]).split("|") for lang in SUPPORTED)
    return tuple(dict.fromkeys(w.strip().lower() for ws in words for w in ws if w.strip()))


def _commands(t: T, commands: list[str]) -> dict:
    """The commands a person may use, each as the word to type in the reader's language
    with its description."""
    return facts([(t(COMMANDS[cmd][0]), t(COMMANDS[cmd][1])) for cmd in commands])


def welcome(locale: Locale, *, is_admin: bool, commands: list[str], name: str | None = None) -> dict:
    t = T(locale)
    body = [title(t("welcome.title")), text(t("welcome.body")),
            text(t("welcome.admin") if is_admin else t("welcome.member")), _commands(t, commands)]
    actions = [execute(t("btn.licenses"), Verb.POOLS, style="positive")] if is_admin else None
    return card(body, actions, fallback_text=t("welcome.title"))


def help_card(locale: Locale, *, is_admin: bool, commands: list[str], unknown: str | None = None) -> dict:
    t = T(locale)
    body = [title(t("help.title"))]
    if unknown:
        body.append(text(t("help.unknown", text=unknown[:80])))
    body.append(_commands(t, commands))
    actions = [execute(t("btn.licenses"), Verb.POOLS, style="positive")] if is_admin else None
    return card(body, actions, fallback_text=t("help.title"))


def error_card(locale: Locale, message: str, *, heading: str | None = None, show_pools: bool = False,
               retry: dict | None = None, own_quote: str | None = None) -> dict:
    """A refusal or a failure, said plainly (a core Message in the viewer's language), with a way forward.
    ``own_quote``: the id of the caller's own quote that blocks the action, to open or cancel."""
    t = T(locale)
    message = t.say(message)
    buttons = []
    if retry:
        buttons.append(retry)
    if own_quote:
        buttons += [execute(t("btn.open_quote"), Verb.QUOTE_REFRESH, QuoteRef(own_quote), style="positive",
                            inputs="none"),
                    execute(t("btn.cancel_quote"), Verb.QUOTE_CANCEL, QuoteRef(own_quote), style="destructive",
                            inputs="none")]
    if show_pools:
        buttons.append(execute(t("btn.licenses"), Verb.POOLS))
    body = [title(heading or t("error.title")), text(message, color="Attention")]
    if buttons:
        body.append(action_set(buttons))
    return card(body, fallback_text=message)


def apology_card(locale: Locale) -> dict:
    t = T(locale)
    return card([title(t("error.title")), text(t("error.apology"))], fallback_text=t("error.apology"))


def dismissed_card(locale: Locale, heading: str, message: str, *, show_pools: bool = True) -> dict:
    t = T(locale)
    actions = [execute(t("btn.licenses"), Verb.POOLS)] if show_pools else None
    return card([title(heading), text(message)], actions, fallback_text=heading)


def caller_error(locale: Locale, error) -> dict:
    """"You are not set up" / "administrators only", in the viewer's language, naming whom to ask
    (the core puts the administrators' names in the error's details)."""
    from core.errors import NotAdmin

    t = T(locale)
    admins = list(error.details.get("admins") or [])[:3]
    more = bool(error.details.get("more_admins"))
    size = "more" if more and len(admins) == 3 else {0: "none", 1: "one", 2: "two", 3: "three"}[len(admins)]
    names = dict(zip("abc", admins, strict=False))
    if isinstance(error, NotAdmin):
        message = f"{t('error.admin_only')} {t(_ADMIN_ASK[size], **names)}"
        return error_card(locale, message, heading=t("error.not_admin.title"))
    if error.details.get("reason") == "anonymous":  # no tenant or user id at all: the core's words
        return error_card(locale, error.message, heading=t("error.not_registered.title"))
    if "account_id" not in error.details:  # the tenant has no account at all
        return error_card(locale, t("error.no_account"), heading=t("error.not_registered.title"))
    message = f"{t('error.not_user')} {t(_ASK[size], **names)}"
    return error_card(locale, message, heading=t("error.not_registered.title"))
