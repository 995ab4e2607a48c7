"""Welcome, help and error cards."""

from __future__ import annotations

from cards import verbs
from cards.base import action_set, card, execute, facts, text, title
from cards.i18n import T


def _commands(t: T, commands: list[str]) -> dict:
    """The commands a person may use, each with its description (``cmd.<name>``)."""
    return facts([(cmd, t(f"cmd.{cmd}")) for cmd in commands])


def welcome(locale: str | None, *, is_admin: bool, commands: list[str], name: str | None = None) -> dict:
    t = T(locale)
    body = [title(t("welcome.title")), text(t("welcome.body")),
            text(t("welcome.admin") if is_admin else t("welcome.member")), _commands(t, commands)]
    actions = [execute(t("btn.licenses"), verbs.POOLS, style="positive")] if is_admin else None
    return card(body, actions, fallback_text=t("welcome.title"))


def help_card(locale: str | None, *, is_admin: bool, commands: list[str], unknown: str | None = None) -> dict:
    t = T(locale)
    body = [title(t("help.title"))]
    if unknown:
        body.append(text(t("help.unknown", text=unknown[:80])))
    body.append(_commands(t, commands))
    actions = [execute(t("btn.licenses"), verbs.POOLS, style="positive")] if is_admin else None
    return card(body, actions, fallback_text=t("help.title"))


def error_card(locale: str | None, message: str, *, heading: str | None = None, show_pools: bool = False,
               retry: dict | None = None) -> dict:
    """A refusal or a failure, said plainly, with a way forward."""
    t = T(locale)
    buttons = []
    if retry:
        buttons.append(retry)
    if show_pools:
        buttons.append(execute(t("btn.licenses"), verbs.POOLS))
    body = [title(heading or t("error.title")), text(message, color="Attention")]
    if buttons:
        body.append(action_set(buttons))
    return card(body, fallback_text=message)


def apology_card(locale: str | None) -> dict:
    t = T(locale)
    return card([title(t("error.title")), text(t("error.apology"))], fallback_text=t("error.apology"))


def dismissed_card(locale: str | None, heading: str, message: str, *, show_pools: bool = True) -> dict:
    t = T(locale)
    actions = [execute(t("btn.licenses"), verbs.POOLS)] if show_pools else None
    return card([title(heading), text(message)], actions, fallback_text=heading)
