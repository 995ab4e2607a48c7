"""Card flows: map (verb, card data, inputs, who) to a core call and the next card.

Stateless: everything a step needs comes in the action's data (ids, page, selection) and
from the database; nothing is kept in process memory, so any instance serves any step.
Card data is never trusted: the core re-checks every id and right.

The router owns dispatch and error handling; each journey is a :class:`~dialogs.base.Flow`
that registers its text commands, verbs, typeahead datasets and notification cards.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from cards import common, upgrade
from cards.base import execute
from cards.i18n import SUPPORTED, Reader, T
from core.errors import (
    DomainError,
    HeldByQuote,
    InvalidInput,
    Message,
    NotAdmin,
    PaymentUnavailable,
    QuoteNotOpen,
    UnknownCaller,
)
from core.licensing import Licensing
from core.text import parse_id
from core.views import OutboxItem
from dialogs.base import (
    SEARCH_TOP,
    Action,
    CardDataError,
    CommandSpec,
    Flow,
    ProtocolError,
    Render,
    Search,
    Turn,
    target_of,
)
from dialogs.upgrade import UpgradeFlow

log = logging.getLogger(__name__)

__all__ = ["CardDataError", "ProtocolError", "Router", "Turn"]

HELP = "help"
DISMISS = "dismiss"


def default_flows() -> list[type[Flow]]:
    """Every journey the bot offers, in the order the help card lists their commands."""
    flows: list[type[Flow]] = [UpgradeFlow]
    for module, name in (("dialogs.buy", "BuyFlow"), ("dialogs.assign", "AssignFlow"),
                         ("dialogs.pool_admin", "PoolAdminFlow"), ("dialogs.requests", "RequestsFlow"),
                         ("dialogs.mylicense", "MyLicenseFlow"), ("dialogs.audit", "AuditFlow")):
        try:
            mod = __import__(module, fromlist=[name])
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue
        flows.append(getattr(mod, name))
    return flows


class Router:
    def __init__(self, lic: Licensing, flows: list[type[Flow]] | None = None, *, directory=None, links=None):
        """``directory``: the tenant's directory for the assign picker (None: the account's users
        only); ``links``: the audit download links (None: no Export button). The flows take
        them from here as they are built."""
        self.lic = lic
        self.directory = directory
        self.links = links
        self.commands: dict[str, CommandSpec] = {}
        self.actions: dict[str, Action] = {HELP: self._help, DISMISS: self._dismiss}
        self.searches: dict[str, Search] = {}
        self.notifications: dict[str, Render] = {}
        self.card_updates: dict[str, Render] = {}
        self.tracked: dict = {}
        self.flows: dict[type[Flow], Flow] = {}
        for cls in flows or default_flows():
            flow = cls(self)
            self.flows[cls] = flow
            for registry, items in ((self.commands, flow.commands), (self.actions, flow.actions),
                                    (self.searches, flow.searches), (self.notifications, flow.notifications),
                                    (self.card_updates, flow.card_updates), (self.tracked, flow.tracked)):
                clash = set(registry) & set(items)
                if clash:
                    raise ValueError(f"{cls.__name__} registers {sorted(clash)} twice")
                registry.update(items)
        self.commands["help"] = CommandSpec(self._cmd_help, False, ("?",))
        for name, spec in list(self.commands.items()):  # the words of every language (catalogs: alias.<name>)
            self.commands[name] = replace(spec, aliases=spec.aliases + common.command_aliases(name))
        for name in self.commands:  # the help shows each command's word in each language: it must open it
            for lang in SUPPORTED:
                word = common.command_word(T(lang), name)
                if self.command_for(word) != name:
                    raise ValueError(f"the {lang} help shows “{word}” for {name}, which the router does not map to it")

    def flow(self, cls: type[Flow]) -> Flow:
        return self.flows[cls]

    # ------------------------------------------------------------------ entry points

    def command_for(self, text: str | None) -> str | None:
        """The command a typed text names (its name or an alias, any case and spacing), or None."""
        word = " ".join((text or "").split()).lower().strip(" !.")
        return next((name for name, spec in self.commands.items() if word == name or word in spec.aliases), None)

    def on_text(self, turn: Turn, text: str) -> dict:
        name = self.command_for(text)
        if name is not None:
            return self._guard(turn, lambda: self.commands[name].handler(turn), f"command.{name}")
        return self._guard(turn, lambda: self._cmd_help(turn, unknown=text), "command.unknown")

    def on_action(self, turn: Turn, verb, data) -> dict:
        if not isinstance(verb, str) or not verb or len(verb) > 64:
            raise ProtocolError(Message("The action has no verb."))
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ProtocolError(Message("The action's data must be an object."))
        handler = self.actions.get(verb)
        held = self._answering(turn)
        try:
            if handler is None:
                t = T(turn.reader)
                err = InvalidInput(Message("This button is not one I know (the card may come from an older "
                                           "version). Start again from the license pools."))
                self.lic.audit.record_refusal(turn.actor, "card.unknown_verb", err, verb[:64])
                answer = common.error_card(turn.reader, err.message, heading=t("error.title"), show_pools=True)
            else:
                answer = self._guard(turn, lambda: handler(turn, data), f"card.{verb}", data=data, verb=verb)
        except BaseException:
            if held:
                self._moved_on(turn, failed=True)  # its card stays: its updates need not wait
            raise
        if held or turn.shown:
            self._moved_on(turn)
        return answer

    def _answering(self, turn: Turn) -> bool:
        """The action's answer will replace the card acted on: until it has, in-place updates of
        what that card shows wait (one queued by this very action, e.g. Back closing a quote,
        would otherwise land after the answer)."""
        if not (turn.message_ref and turn.answer_in_place):
            return False
        try:
            return self.lic.addresses.message_answering(turn.actor, turn.message_ref)
        except Exception:  # noqa: BLE001 - bookkeeping: the reader still gets an answer
            log.exception("could not hold the in-place updates of message %s", turn.message_ref)
            return False

    def _moved_on(self, turn: Turn, *, failed: bool = False) -> None:
        """The answer replaced the card acted on: its message now shows what the answer said it
        shows (:meth:`Turn.shows`) and nothing else, so that no later in-place update of another
        subject replaces the step its reader moved to (Back from a quote, a pools card opened
        from it...). Bookkeeping: a failure is logged, the answer still given."""
        if not (turn.message_ref and turn.answer_in_place):
            return
        try:
            self.lic.addresses.message_shows(turn.actor, turn.message_ref, turn.address if turn.shown else None,
                                   None if failed else turn.shown)
        except Exception:  # noqa: BLE001 - the reader gets their answer; a stale card may be updated later
            log.exception("could not record what message %s shows now", turn.message_ref)

    def on_search(self, turn: Turn, dataset, query, skip=0, top=SEARCH_TOP) -> list[dict]:
        if not isinstance(dataset, str) or ":" not in dataset:
            raise ProtocolError(Message("Unknown search dataset."))
        name, _, ref = dataset.partition(":")
        search = self.searches.get(name)
        if search is None:
            raise ProtocolError(Message("Unknown search dataset."))
        try:
            parse_id(ref, "reference")
            size = max(1, min(int(top or SEARCH_TOP), SEARCH_TOP))
            return search(turn, ref, query if isinstance(query, str) else "", max(0, int(skip or 0)), size)[:size]
        except (DomainError, ValueError, TypeError):
            return []

    def welcome(self, turn: Turn) -> dict:
        try:
            caller = self.lic.accounts.whoami(turn.actor)
        except UnknownCaller as e:
            return common.caller_error(turn.reader, e)
        return common.welcome(turn.reader, is_admin=caller.is_admin, name=caller.name,
                              commands=self.command_names(caller.is_admin))

    def notification(self, item: OutboxItem, locale: Reader | str | None) -> dict | None:
        """The card a user receives for an outbox message (None: nothing to send)."""
        render = self.notifications.get(item.kind)
        return render(item, locale) if render else None

    def card_update(self, item: OutboxItem, locale: Reader | str | None) -> dict | None:
        """The new content of a card shown earlier (quote paid, request decided...)."""
        render = self.card_updates.get(item.kind)
        return render(item, locale) if render else None

    def tracked_card(self, item: OutboxItem) -> tuple[str, str] | None:
        """(subject, id) of a notification card to remember for later in-place updates, if any."""
        track = self.tracked.get(item.kind)
        return track(item) if track else None

    def command_names(self, is_admin: bool) -> list[str]:
        return [name for name, spec in self.commands.items() if is_admin or not spec.admin]

    # ------------------------------------------------------------------ error handling

    def _guard(self, turn: Turn, fn, action: str, *, data: dict | None = None, verb: str | None = None) -> dict:
        t = T(turn.reader)
        try:
            return fn()
        except (UnknownCaller, NotAdmin) as e:
            return common.caller_error(turn.reader, e)
        except CardDataError as e:
            self.lic.audit.record_refusal(turn.actor, action, e, target_of(data))
            return common.error_card(turn.reader, e.message, show_pools=True)
        except InvalidInput as e:
            if e.details.get("stale") and data and "pool" in data:
                try:
                    return self.flow(UpgradeFlow).stale_pool(turn, data, e.message)
                except DomainError as again:
                    return common.error_card(turn.reader, again.message, show_pools=True)
            return common.error_card(turn.reader, e.message, show_pools=True)
        except QuoteNotOpen as e:
            if data and "quote" in data:
                try:
                    q = self.lic.quotes.quote(turn.actor, data["quote"])
                    turn.shows("quote", q.id)
                    return upgrade.quote_card(turn.reader, q, note=e.message,
                                              admins=self.lic.addresses.account_admin_chat_ids(q.account_id))
                except DomainError:
                    pass
            return common.error_card(turn.reader, e.message, show_pools=True)
        except HeldByQuote as e:
            own = e.details.get("quote_id") if e.details.get("mine") else None
            return common.error_card(turn.reader, e.message, show_pools=True, own_quote=own or None)
        except PaymentUnavailable as e:
            retry = execute(t("btn.refresh"), verb, data) if verb else None
            return common.error_card(turn.reader, e.message, retry=retry, show_pools=True)
        except DomainError as e:
            return common.error_card(turn.reader, e.message, show_pools=True)

    # ------------------------------------------------------------------ help

    def _cmd_help(self, turn: Turn, unknown: str | None = None) -> dict:
        try:
            is_admin = self.lic.accounts.whoami(turn.actor).is_admin
        except UnknownCaller:
            is_admin = False
        return common.help_card(turn.reader, is_admin=is_admin, unknown=unknown,
                                commands=self.command_names(is_admin))

    def _help(self, turn: Turn, data: dict) -> dict:
        return self._cmd_help(turn)

    def _dismiss(self, turn: Turn, data: dict) -> dict:
        t = T(turn.reader)
        return common.dismissed_card(turn.reader, t("dismiss.title"), t("dismiss.body"))
