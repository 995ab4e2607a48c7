"""Card flows: map (verb, card data, inputs, who) to a core call and the next card.

Stateless: everything a step needs comes in the action's data (ids, page, selection) and
from the database; nothing is kept in process memory, so any instance serves any step.
Card data is never trusted: the core re-checks every id and right.

The router owns dispatch and error handling; each journey is a :class:`~dialogs.base.Flow`
that registers its text commands, verbs, typeahead datasets, notification cards and the
refusals it recovers from (e.g. a stale selection: the pool as it is now). Flows are built
with their collaborators by dialogs/flows.py (or bootstrap.py); they never reach each other
through the router.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TypeVar, cast

from cards import common
from cards.base import execute
from cards.i18n import SUPPORTED, Reader, T
from cards.verbs import Verb
from core.errors import DomainError, HeldByQuote, InvalidInput, Message, NotAdmin, PaymentUnavailable, UnknownCaller
from core.kinds import AuditAction
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
    Recovery,
    Render,
    Search,
    Turn,
    target_of,
)

log = logging.getLogger(__name__)

__all__ = ["CardDataError", "ProtocolError", "Router", "Turn"]

AnyFlow = TypeVar("AnyFlow", bound=Flow)


class Router:
    def __init__(self, lic: Licensing, flows: list[Flow] | None = None, *, directory=None, links=None):
        """``flows``: the journeys, built (None: :func:`dialogs.flows.default_flows`, given
        ``directory`` and ``links``)."""
        if flows is None:
            from dialogs.flows import default_flows

            flows = default_flows(lic, directory=directory, links=links)
        self.lic = lic
        self.commands: dict[str, CommandSpec] = {}
        self.actions: dict[str, Action] = {Verb.HELP: self._help, Verb.DISMISS: self._dismiss}
        self.searches: dict[str, Search] = {}
        self.notifications: dict[str, Render] = {}
        self.card_updates: dict[str, Render] = {}
        self.tracked: dict = {}
        self.recoveries: dict[type[DomainError], Recovery] = {}
        self.flows: dict[type[Flow], Flow] = {}
        for flow in flows:
            self.flows[type(flow)] = flow
            registries: tuple[tuple[dict, dict], ...] = (
                (self.commands, flow.commands), (self.actions, flow.actions), (self.searches, flow.searches),
                (self.notifications, flow.notifications), (self.card_updates, flow.card_updates),
                (self.tracked, flow.tracked))
            for registry, items in registries:
                clash = set(registry) & set(items)
                if clash:
                    raise ValueError(f"{type(flow).__name__} registers {sorted(clash)} twice")
                registry.update(items)
            for error, recover in flow.recoveries.items():  # (flows sharing steps register the same recovery)
                if self.recoveries.setdefault(error, recover) != recover:
                    raise ValueError(f"{type(flow).__name__} registers a second recovery from {error.__name__}")
        self.commands["help"] = CommandSpec(self._cmd_help, False, ("?",))
        for name, spec in list(self.commands.items()):  # the words of every language (catalogs: alias.<name>)
            self.commands[name] = replace(spec, aliases=spec.aliases + common.command_aliases(name))
        for name in self.commands:  # the help shows each command's word in each language: it must open it
            for lang in SUPPORTED:
                word = common.command_word(T(lang), name)
                if self.command_for(word) != name:
                    raise ValueError(f"the {lang} help shows “{word}” for {name}, which the router does not map to it")

    def flow(self, cls: type[AnyFlow]) -> AnyFlow:
        """The flow of that class (for the composition root and tests: flows do not use it)."""
        return cast(AnyFlow, self.flows[cls])  # (the one instance of that class)

    # ------------------------------------------------------------------ entry points

    def command_for(self, text: str | None) -> str | None:
        """The command a typed text names (its name or an alias, any case and spacing), or None."""
        word = " ".join((text or "").split()).lower().strip(" !.")
        return next((name for name, spec in self.commands.items() if word == name or word in spec.aliases), None)

    def on_text(self, turn: Turn, text: str) -> dict:
        name = self.command_for(text)
        if name is not None:
            return self._guard(turn, lambda: self.commands[name].handler(turn), AuditAction.command(name))
        return self._guard(turn, lambda: self._cmd_help(turn, unknown=text), AuditAction.command("unknown"))

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
                self.lic.audit.record_refusal(turn.actor, AuditAction.CARD_UNKNOWN_VERB, err, verb[:64])
                answer = common.error_card(turn.reader, err.message, heading=t("error.title"), show_pools=True)
            else:
                answer = self._guard(turn, lambda: handler(turn, data), AuditAction.card(verb), data=data,
                                     verb=verb)
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
        except tuple(self.recoveries) as e:  # a flow knows the card that recovers from it
            return self._recover(turn, data, e)
        except InvalidInput as e:
            return common.error_card(turn.reader, e.message, show_pools=True)
        except HeldByQuote as e:
            own = e.details.get("quote_id") if e.details.get("mine") else None
            return common.error_card(turn.reader, e.message, show_pools=True, own_quote=own or None)
        except PaymentUnavailable as e:
            retry = execute(t("btn.refresh"), verb, data) if verb else None
            return common.error_card(turn.reader, e.message, retry=retry, show_pools=True)
        except DomainError as e:
            return common.error_card(turn.reader, e.message, show_pools=True)

    def _recover(self, turn: Turn, data: dict | None, error: DomainError) -> dict:
        """The card of the recovery registered for the refusal's class (the most specific one);
        the error card when it has none for this action or fails in turn."""
        recover = next(fn for cls, fn in sorted(self.recoveries.items(), key=lambda kv: -len(kv[0].__mro__))
                       if isinstance(error, cls))
        try:
            card = recover(turn, data or {}, error) if data else None
        except DomainError as again:
            return common.error_card(turn.reader, again.message, show_pools=True)
        return card if card is not None else common.error_card(turn.reader, error.message, show_pools=True)

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
