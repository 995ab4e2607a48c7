"""What every card flow shares: the turn, the refusals the router answers, and the Flow base
class through which a flow registers its commands, verbs, searches, notification cards and the
refusals it recovers from. Card data is parsed by the dataclasses of cards/data.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cards.data import MAX_SELECTION, CardDataError, data_int, id_list, page_of, text_of
from cards.i18n import Reader
from core.errors import DomainError
from core.licensing import Licensing
from core.views import Actor, ChatAddress, OutboxItem

__all__ = ["MAX_SELECTION", "SEARCH_TOP", "Action", "CardDataError", "CommandSpec", "Flow", "ProtocolError",
           "Recovery", "Render", "Search", "Turn", "data_int", "id_list", "page_of", "target_of", "text_of"]

SEARCH_TOP = 15


class ProtocolError(Exception):
    """The request is not a well-formed card action (answered 400, never a crash)."""

    def __init__(self, message: str, code: str = "BadRequest"):
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Turn:
    actor: Actor
    locale: str = "en-US"
    message_ref: str | None = None  # the id of the message holding the card that was acted on
    address: ChatAddress | None = None  # where this conversation is (for updating cards later)
    activity_id: str | None = None
    timezone: str | None = None  # the reader's IANA time zone, when their client tells it
    answer_in_place: bool = True  # the answer replaces the card acted on (an Action.Submit's is a new message)

    def shows(self, subject: str, subject_id) -> None:
        """This turn's answer shows that subject's card (a quote, a request): its message goes on
        being updated in place for it. Whatever else the message was recorded as showing is
        forgotten once the answer replaces its card (:meth:`dialogs.router.Router.on_action`)."""
        self.shown.append((subject, str(subject_id)))

    @property
    def shown(self) -> list[tuple[str, str]]:
        """What :meth:`shows` was told so far in this turn."""
        return self.__dict__.setdefault("_shown", [])  # (a frozen dataclass: state kept beside its fields)

    @property
    def reader(self) -> Reader:
        """Who reads the cards of this turn (locale and time zone): what card builders are given."""
        return Reader(self.locale, self.timezone)


@dataclass(frozen=True)
class CommandSpec:
    """A text command: ``handler(turn)`` returns a card; ``admin`` commands are listed to admins only."""

    handler: Callable[[Turn], dict]
    admin: bool
    aliases: tuple[str, ...] = field(default_factory=tuple)


Action = Callable[[Turn, dict], dict]
Search = Callable[[Turn, str, str, int, int], list[dict]]  # (turn, dataset ref, query, skip, top)
Render = Callable[[OutboxItem, Reader | str | None], dict | None]  # (outbox item, recipient: Reader or locale)
# (turn, the action's data, the refusal) -> the card that recovers from it, or None: the router's error card
Recovery = Callable[[Turn, dict, DomainError], dict | None]


class Flow:
    """A card flow. Subclasses take what they need by constructor (the core, the steps they
    share with other flows) and fill the registries in ``__init__``."""

    def __init__(self, lic: Licensing):
        self.lic = lic
        self.commands: dict[str, CommandSpec] = {}
        self.actions: dict[str, Action] = {}
        self.searches: dict[str, Search] = {}
        self.notifications: dict[str, Render] = {}  # outbox kind (channel chat) -> the user's card
        self.card_updates: dict[str, Render] = {}  # outbox kind (channel card) -> the card's new content
        # outbox kind -> (subject, subject id) of a sent card to remember, so that it can be updated in place
        self.tracked: dict[str, Callable[[OutboxItem], tuple[str, str] | None]] = {}
        # a refusal of any step (by class) -> the card that recovers from it (e.g. a stale selection: the pool now)
        self.recoveries: dict[type[DomainError], Recovery] = {}

    def admins(self, account_id: int) -> list[str]:
        """The chat ids of the account's administrators: whom a card only they may act on is
        refreshed for automatically (at most 60)."""
        return self.lic.addresses.account_admin_chat_ids(account_id)


# ---------------------------------------------------------------------------- card data


def target_of(data: dict | None) -> str | None:
    """What a refused card action was about, for the audit log."""
    for key in ("quote", "pool", "request", "user"):
        value = (data or {}).get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return f"{key}:{str(value)[:64]}"
    return None
