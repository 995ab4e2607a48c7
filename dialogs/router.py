"""Card flows: map (verb, card data, inputs, who) to a core call and the next card.

Stateless: everything a step needs comes in the action's data (ids, page, selection) and
from the database; nothing is kept in process memory, so any instance serves any step.
Card data is never trusted: the core re-checks every id and right.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial

from cards import common, upgrade, verbs
from cards.base import execute
from cards.i18n import T
from core.errors import (
    DomainError,
    HeldByQuote,
    InvalidInput,
    NotAdmin,
    PaymentUnavailable,
    QuoteNotOpen,
    UnknownCaller,
)
from core.service import Licensing
from core.text import parse_id, parse_ids
from core.views import Actor, CallerView, OutboxItem

log = logging.getLogger(__name__)

MAX_SELECTION = 250
SEARCH_TOP = 15


class ProtocolError(Exception):
    """The request is not a well-formed card action (answered 400, never a crash)."""

    def __init__(self, message: str, code: str = "BadRequest"):
        super().__init__(message)
        self.message = message
        self.code = code


class CardDataError(InvalidInput):
    """Card data refused by the router itself (the core never saw it, so never audited it):
    ``_guard`` audits it as refused."""


@dataclass(frozen=True)
class Turn:
    actor: Actor
    locale: str = "en-US"
    message_ref: str | None = None  # the id of the message holding the card that was acted on
    address: dict | None = None  # opaque conversation address (for updating cards later)
    activity_id: str | None = None


@dataclass
class CommandSpec:
    admin: bool
    handler: str
    aliases: tuple[str, ...] = field(default_factory=tuple)


COMMANDS: dict[str, CommandSpec] = {
    "licenses": CommandSpec(True, "_cmd_licenses", ("licences", "pools", "lots", "licence", "license")),
    "help": CommandSpec(False, "_cmd_help", ("aide", "?", "hi", "hello", "bonjour", "start")),
}


def _data_int(data: dict, key: str, what: str = "item") -> int:
    try:
        return parse_id(data.get(key), what)
    except InvalidInput as e:
        raise CardDataError(e.message) from None


def _target(data: dict | None) -> str | None:
    """What a refused card action was about, for the audit log."""
    for key in ("quote", "pool", "request"):
        value = (data or {}).get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return f"{key}:{str(value)[:64]}"
    return None


def _page(data: dict) -> int:
    value = data.get("page", 0)
    if isinstance(value, bool) or not isinstance(value, int | str):
        return 0
    try:
        return max(0, min(int(value), 100_000))
    except ValueError:
        return 0


def _str(data: dict, key: str, limit: int = 100) -> str:
    value = data.get(key)
    return value[:limit] if isinstance(value, str) else ""


def _id_list(value) -> list[int]:
    """Ids from card data: a list of ints, or a comma-separated string (Teams multi-select)."""
    if value in (None, "", []):
        return []
    try:
        return parse_ids(value if isinstance(value, list | str) else [value], "user", limit=MAX_SELECTION * 2)
    except InvalidInput as e:
        raise CardDataError(e.message) from None


class Router:
    def __init__(self, lic: Licensing):
        self.lic = lic
        self._actions = {
            verbs.POOLS: self._pools,
            verbs.POOL_USERS: self._pool_users,
            verbs.POOL_SEARCH: self._pool_search,
            verbs.POOL_PICK: self._pool_pick,
            verbs.POOL_CLEAR: self._pool_clear,
            verbs.UPGRADE_TIERS: self._tiers,
            verbs.UPGRADE_QUOTE: self._quote,
            verbs.QUOTE_REFRESH: self._quote_refresh,
            verbs.QUOTE_CANCEL: self._quote_cancel,
            verbs.QUOTE_BACK: self._quote_back,
            verbs.QUOTE_CONFIRM: self._quote_confirm,
            verbs.HELP: self._help,
            verbs.DISMISS: self._dismiss,
        }

    # ------------------------------------------------------------------ entry points

    def on_text(self, turn: Turn, text: str) -> dict:
        word = " ".join((text or "").split()).lower().strip(" !.")
        for name, spec in COMMANDS.items():
            if word == name or word in spec.aliases:
                return self._guard(turn, partial(getattr(self, spec.handler), turn), f"command.{name}",
                                   admin=spec.admin)
        return self._guard(turn, lambda: self._cmd_help(turn, unknown=text), "command.unknown", admin=False)

    def on_action(self, turn: Turn, verb, data) -> dict:
        if not isinstance(verb, str) or not verb or len(verb) > 64:
            raise ProtocolError("The action has no verb.")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ProtocolError("The action's data must be an object.")
        handler = self._actions.get(verb)
        if handler is None:
            t = T(turn.locale)
            err = InvalidInput("This button is not one I know (the card may come from an older version). "
                               "Start again from the license pools.")
            self.lic.record_refusal(turn.actor, "card.unknown_verb", err, verb[:64])
            return common.error_card(turn.locale, err.message, heading=t("error.title"), show_pools=True)
        return self._guard(turn, lambda: handler(turn, data), f"card.{verb}", data=data, verb=verb)

    def on_search(self, turn: Turn, dataset, query, skip=0, top=SEARCH_TOP) -> list[dict]:
        if not isinstance(dataset, str) or ":" not in dataset:
            raise ProtocolError("Unknown search dataset.")
        name, _, ref = dataset.partition(":")
        if name != verbs.DATASET_POOL_USERS:
            raise ProtocolError("Unknown search dataset.")
        try:
            pool_id = parse_id(ref, "pool")
            size = max(1, min(int(top or SEARCH_TOP), SEARCH_TOP))
            page = self.lic.pool_users(turn.actor, pool_id, query=query if isinstance(query, str) else "",
                                       page=max(0, int(skip or 0)) // size, page_size=size)
        except (DomainError, ValueError, TypeError):
            return []
        return [{"title": f"{u.name} — {u.email}", "value": str(u.id)} for u in page.items]

    def welcome(self, turn: Turn) -> dict:
        try:
            caller = self.lic.whoami(turn.actor)
        except UnknownCaller as e:
            return common.error_card(turn.locale, e.message, heading=T(turn.locale)("error.not_registered.title"))
        return common.welcome(turn.locale, is_admin=caller.is_admin, name=caller.name)

    # ------------------------------------------------------------------ error handling

    def _guard(self, turn: Turn, fn, action: str, *, admin: bool = True, data: dict | None = None,
               verb: str | None = None) -> dict:
        t = T(turn.locale)
        try:
            return fn()
        except UnknownCaller as e:
            return common.error_card(turn.locale, e.message, heading=t("error.not_registered.title"))
        except NotAdmin as e:
            return common.error_card(turn.locale, e.message, heading=t("error.not_admin.title"))
        except CardDataError as e:
            self.lic.record_refusal(turn.actor, action, e, _target(data))
            return common.error_card(turn.locale, e.message, show_pools=True)
        except InvalidInput as e:
            if e.details.get("stale") and data and "pool" in data:
                return self._stale_pool(turn, data, e.message)
            return common.error_card(turn.locale, e.message, show_pools=True)
        except QuoteNotOpen as e:
            if data and "quote" in data:
                try:
                    q = self.lic.quote(turn.actor, data["quote"])
                    return upgrade.quote_card(turn.locale, q, note=e.message)
                except DomainError:
                    pass
            return common.error_card(turn.locale, e.message, show_pools=True)
        except HeldByQuote as e:
            return common.error_card(turn.locale, e.message, show_pools=True)
        except PaymentUnavailable as e:
            retry = execute(t("btn.refresh"), verb, data) if verb else None
            return common.error_card(turn.locale, e.message, retry=retry, show_pools=True)
        except DomainError as e:
            return common.error_card(turn.locale, e.message, show_pools=True)

    def _stale_pool(self, turn: Turn, data: dict, message: str) -> dict:
        try:
            pool = self.lic.pool(turn.actor, data["pool"])
            page = self.lic.pool_users(turn.actor, pool.id, query=_str(data, "cq"), page=_page(data))
            return upgrade.pool_users_card(turn.locale, pool, page, [], note=message)
        except DomainError as e:
            return common.error_card(turn.locale, e.message, show_pools=True)

    # ------------------------------------------------------------------ commands

    def _cmd_licenses(self, turn: Turn) -> dict:
        return self._pools(turn, {})

    def _cmd_help(self, turn: Turn, unknown: str | None = None) -> dict:
        try:
            is_admin = self.lic.whoami(turn.actor).is_admin
        except UnknownCaller:
            is_admin = False
        return common.help_card(turn.locale, is_admin=is_admin, unknown=unknown)

    # ------------------------------------------------------------------ upgrade flow

    def _pools(self, turn: Turn, data: dict, note: str | None = None) -> dict:
        caller: CallerView = self.lic.require_admin(turn.actor, "pools.list")
        return upgrade.pools_card(turn.locale, caller.account_name, self.lic.list_pools(turn.actor), note=note)

    def _selection(self, data: dict) -> list[int]:
        """The selection after this action: kept from other pages, plus what is ticked on this one."""
        page_ids = set(_id_list(data.get("ids")))
        kept = [i for i in _id_list(data.get("sel")) if i not in page_ids]
        ticked = _id_list(data.get("users"))
        picked = _id_list(data.get("pick")) if data.get("_with_pick") else []
        sel = list(dict.fromkeys(kept + [i for i in ticked if i in page_ids or not page_ids] + picked))
        if len(sel) > MAX_SELECTION:
            raise CardDataError(f"At most {MAX_SELECTION} users can be upgraded in one quote. Select fewer, "
                                "then upgrade the others in a second quote.")
        return sel

    def _users_page(self, turn: Turn, pool_id: int, query: str, page: int, sel: list[int],
                    note: str | None = None) -> dict:
        pool = self.lic.pool(turn.actor, pool_id)
        pg = self.lic.pool_users(turn.actor, pool.id, query=query, page=page)
        if page and not pg.items and pg.total:
            pg = self.lic.pool_users(turn.actor, pool.id, query=query, page=pg.pages - 1)
        return upgrade.pool_users_card(turn.locale, pool, pg, sel, note=note)

    def _pool_users(self, turn: Turn, data: dict) -> dict:
        pool_id = _data_int(data, "pool", "pool")
        return self._users_page(turn, pool_id, _str(data, "cq"), _page(data), self._selection(data))

    def _pool_search(self, turn: Turn, data: dict) -> dict:
        pool_id = _data_int(data, "pool", "pool")
        return self._users_page(turn, pool_id, _str(data, "q"), 0, self._selection(data))

    def _pool_pick(self, turn: Turn, data: dict) -> dict:
        pool_id = _data_int(data, "pool", "pool")
        sel = self._selection(dict(data, _with_pick=True))
        return self._users_page(turn, pool_id, _str(data, "cq"), _page(data), sel)

    def _pool_clear(self, turn: Turn, data: dict) -> dict:
        pool_id = _data_int(data, "pool", "pool")
        return self._users_page(turn, pool_id, _str(data, "cq"), _page(data), [])

    def _refused_step(self, turn: Turn, verb: str, why: str, pool_id: int, card: dict) -> dict:
        """A step asked without what it needs (no user selected, no plan chosen): the card
        to complete it (built first: a caller with no right gets that refusal instead), and
        the refusal audited."""
        self.lic.record_refusal(turn.actor, f"card.{verb}", InvalidInput(why), f"pool:{pool_id}")
        return card

    def _tiers(self, turn: Turn, data: dict, note: str | None = None) -> dict:
        pool_id = _data_int(data, "pool", "pool")
        sel = self._selection(data)
        if not sel:
            return self._refused_step(turn, verbs.UPGRADE_TIERS, "No user was selected.", pool_id, self._users_page(
                turn, pool_id, _str(data, "cq"), _page(data), [], note=T(turn.locale)("users.empty_selection")))
        options = self.lic.upgrade_options(turn.actor, pool_id, sel)
        pool = self.lic.pool(turn.actor, pool_id)
        users = self.lic.directory_rows(turn.actor, sel[: upgrade.MAX_NAMES])
        return upgrade.tiers_card(turn.locale, pool, users, len(sel), options, sel, note=note)

    def _quote(self, turn: Turn, data: dict) -> dict:
        pool_id = _data_int(data, "pool", "pool")
        sel = _id_list(data.get("sel"))
        if not sel:
            return self._refused_step(turn, verbs.UPGRADE_QUOTE, "No user was selected.", pool_id, self._users_page(
                turn, pool_id, "", 0, [], note=T(turn.locale)("users.empty_selection")))
        plan = data.get("plan")
        if not isinstance(plan, str) or not plan.strip():
            return self._refused_step(turn, verbs.UPGRADE_QUOTE, "No plan was chosen.", pool_id, self._tiers(
                turn, {"pool": pool_id, "sel": sel}, note=T(turn.locale)("tiers.missing")))
        quote = self.lic.quote_upgrade(turn.actor, pool_id, sel, plan.strip())
        return self._show_quote(turn, quote.id)

    def _show_quote(self, turn: Turn, quote_id: str, note: str | None = None) -> dict:
        q = self.lic.quote(turn.actor, quote_id)
        if q.status == "open" and q.due_now > 0 and not q.payment_url:
            try:
                q = self.lic.payment_link(turn.actor, q.id)
            except PaymentUnavailable as e:
                note = e.message
        if turn.message_ref and turn.address:
            self.lic.record_posted_card(q.account_id, "quote", q.id, turn.message_ref, turn.address)
        return upgrade.quote_card(turn.locale, q, note=note)

    def _quote_id(self, data: dict) -> str:
        qid = data.get("quote")
        if not isinstance(qid, str) or not qid:
            raise CardDataError("This card does not name a quote. Start again from the license pools.")
        return qid[:64]

    def _quote_refresh(self, turn: Turn, data: dict) -> dict:
        return self._show_quote(turn, self._quote_id(data))

    def _quote_cancel(self, turn: Turn, data: dict) -> dict:
        self.lic.cancel_quote(turn.actor, self._quote_id(data))
        t = T(turn.locale)
        return common.dismissed_card(turn.locale, t("cancelled.title"), t("cancelled.body"))

    def _quote_back(self, turn: Turn, data: dict) -> dict:
        q = self.lic.cancel_quote(turn.actor, self._quote_id(data))
        return self._tiers(turn, {"pool": q.pool_id, "sel": [u.id for u in q.users]})

    def _quote_confirm(self, turn: Turn, data: dict) -> dict:
        q = self.lic.confirm_without_payment(turn.actor, self._quote_id(data))
        return upgrade.quote_card(turn.locale, q)

    def _help(self, turn: Turn, data: dict) -> dict:
        return self._cmd_help(turn)

    def _dismiss(self, turn: Turn, data: dict) -> dict:
        t = T(turn.locale)
        return common.dismissed_card(turn.locale, t("dismiss.title"), t("dismiss.body"))

    # ------------------------------------------------------------------ notifications

    def notification(self, item: OutboxItem, locale: str | None) -> dict | None:
        """The card a user receives for an outbox message (None: nothing to send)."""
        p = item.payload
        if item.kind == "license_upgraded":
            return upgrade.upgraded_notice(locale, self.lic.plan_name(p.get("to_plan")),
                                           self.lic.plan_name(p.get("from_plan")))
        return None

    def card_update(self, item: OutboxItem, locale: str | None) -> dict | None:
        """The new content of a card shown earlier (quote paid, cancelled...)."""
        if item.kind == "quote_card" and item.payload.get("quote_id"):
            q = self.lic.quote_snapshot(item.payload["quote_id"])
            return upgrade.quote_card(locale, q) if q else None
        return None

