"""The Teams activity handler: it only translates activities into router calls and the
router's cards into replies or invoke responses."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence

from botbuilder.core import TurnContext
from botbuilder.core.teams import TeamsActivityHandler
from botbuilder.schema import Activity, ActivityTypes, ChannelAccount, InvokeResponse

from bot import invoke
from bot.addresses import address_key, address_of
from bot.auth import clean_activity
from bot.guards import TurnGuard
from bot.identity import actor_of, locale_of, timezone_of
from bot.recent import Recent
from bot.replies import reply
from cards import common
from core.errors import DomainError, InvalidInput, Message
from core.kinds import AuditAction
from core.licensing import Licensing
from core.views import ChatAddress
from dialogs.router import ProtocolError, Router, Turn

log = logging.getLogger(__name__)

MAX_TEXT = 2000
TURN_KEY = "license_desk.turn"  # the activity's Turn, in tc.turn_state: built once per turn
_UNSET = object()


class ActivityTurn(Turn):
    """The :class:`~dialogs.router.Turn` of an activity, whose ``address`` (built from the msrest
    serialisation of its conversation reference, ~0.13 ms) is built on first use only: most
    turns never read it (a quote card remembered for later updates, a new delivery address do)."""

    def __init__(self, activity: Activity | None = None, *, actor, locale: str = "en-US",
                 message_ref: str | None = None, address=_UNSET, activity_id: str | None = None,
                 timezone: str | None = None, answer_in_place: bool = True):
        for name, value in (("actor", actor), ("locale", locale), ("message_ref", message_ref),
                            ("activity_id", activity_id), ("timezone", timezone), ("_activity", activity),
                            ("_address", address), ("answer_in_place", answer_in_place)):
            object.__setattr__(self, name, value)  # (a frozen dataclass)

    @property
    def address(self) -> ChatAddress | None:
        address = self._address
        if address is _UNSET:
            a = self._activity
            address = address_of(a) if a is not None and a.conversation and a.service_url else None
            object.__setattr__(self, "_address", address)  # (two threads at once would build the same)
        return address


class _LastSaved:
    """Per user, the key of the delivery address last saved (bounded, least recently used out).
    An address is due when its key differs from the user's last one (a new locale, time zone,
    conversation...: saved at once, also when going back to one seen before) or that one is
    older than ``ttl`` (another instance may have saved another address since)."""

    def __init__(self, size: int = 10_000, ttl: float = 300.0):
        self.size, self.ttl, self._d = size, ttl, OrderedDict()

    def due(self, user: tuple, key: tuple) -> bool:
        """Whether to save ``key`` for ``user`` (it is taken as saved: :meth:`forget` if not)."""
        now = time.monotonic()
        last = self._d.get(user)
        if last is not None and last[0] == key and now - last[1] < self.ttl:
            self._d.move_to_end(user)
            return False
        self._d[user] = (key, now)
        self._d.move_to_end(user)
        while len(self._d) > self.size:
            self._d.popitem(last=False)
        return True

    def forget(self, user: tuple, key: tuple) -> None:
        if self._d.get(user, (None,))[0] == key:
            del self._d[user]


class LicenseDeskBot(TeamsActivityHandler):
    def __init__(self, router: Router, lic: Licensing, *, guards: Sequence[TurnGuard] = ()):
        super().__init__()
        self.router = router
        self.lic = lic
        self.guards = tuple(guards)  # bot/guards.py: rate limit, tenant allow-list (each once, in order)
        self._welcomed = Recent()
        self._addresses = _LastSaved()
        self._unsupported_logged = Recent(size=1000, ttl=3600.0)  # invoke names answered "unsupported"

    # ------------------------------------------------------------------ every activity: the turn guards first

    async def on_turn(self, tc: TurnContext) -> None:
        clean_activity(tc.activity)
        if self.guards:
            kind, turn = self._kind(tc.activity), self._turn(tc)
            for guard in self.guards:
                if await guard(tc, kind, turn):
                    return  # answered (or quietly refused) by the guard: nothing more is done
        await super().on_turn(tc)

    @staticmethod
    def _kind(a: Activity) -> str:
        """message | action (Action.Execute) | search (typeahead) | invoke (any other) | install
        (the app added: installationUpdate, or conversationUpdate adding the bot) | other."""
        if a.type == ActivityTypes.message:
            return "message"
        if a.type == ActivityTypes.invoke:
            return {"adaptiveCard/action": "action", "application/search": "search"}.get(a.name, "invoke")
        if a.type == ActivityTypes.installation_update and str(a.action or "").startswith("add"):
            return "install"
        bot_id = a.recipient.id if a.recipient else None
        if a.type == ActivityTypes.conversation_update and any(m.id == bot_id for m in a.members_added or []):
            return "install"
        return "other"

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _turn(tc: TurnContext) -> ActivityTurn:
        """The activity's Turn, built once per turn (after :func:`clean_activity`)."""
        turn = tc.turn_state.get(TURN_KEY)
        if turn is None or turn._activity is not tc.activity:
            a = tc.activity
            turn = tc.turn_state[TURN_KEY] = ActivityTurn(a, actor=actor_of(a), locale=locale_of(a),
                                                          message_ref=a.reply_to_id, activity_id=a.id,
                                                          timezone=timezone_of(a),
                                                          answer_in_place=a.type == ActivityTypes.invoke)
        return turn

    def _address_due(self, tc: TurnContext, turn: Turn) -> tuple | None:
        """(user, key of this user's delivery address) when it must be saved (:class:`_LastSaved`),
        else None. Read from the activity (~5 µs): the address itself is only built to be saved."""
        a = tc.activity
        if not (turn.actor.tenant_id and turn.actor.aad_object_id and a.conversation and a.service_url):
            return None
        if a.conversation.conversation_type not in (None, "personal"):
            return None  # notifications go to the person's 1:1 chat, not to a group
        user = (turn.actor.tenant_id, turn.actor.aad_object_id)
        key = address_key(a)
        return (user, key) if self._addresses.due(user, key) else None

    def _save_address(self, turn: Turn) -> bool:
        """(In a worker thread.) Store where to reach this user (proactive messages)."""
        try:
            return self.lic.addresses.save_address(turn.actor.tenant_id, turn.actor.aad_object_id, turn.address)
        except DomainError:
            return False

    async def _in_thread(self, turn: Turn, address_key_, fn):
        """``fn()`` in a worker thread, the delivery address saved first when due: one hop."""
        if address_key_ is None:
            return await asyncio.to_thread(fn)
        saved = False

        def work():
            nonlocal saved
            saved = self._save_address(turn)
            return fn()

        try:
            return await asyncio.to_thread(work)
        finally:
            if not saved:  # not a user yet: try again next time (they may have been added since)
                self._addresses.forget(*address_key_)

    async def _remember(self, tc: TurnContext, turn: Turn) -> None:
        """Store where to reach this user (proactive messages); nothing to do when unchanged."""
        key = self._address_due(tc, turn)
        if key is not None:
            await self._in_thread(turn, key, lambda: None)

    async def _reply(self, tc: TurnContext, card: dict) -> None:
        await reply(tc, card)

    # ------------------------------------------------------------------ messages

    async def on_message_activity(self, tc: TurnContext) -> None:
        turn = self._turn(tc)
        try:
            address_due = self._address_due(tc, turn)
            value = tc.activity.value
            if isinstance(value, dict) and "verb" in value:  # an Action.Submit: same router as Execute
                def answer() -> dict:
                    try:
                        return self.router.on_action(turn, value.get("verb"), value)
                    except ProtocolError as e:
                        self.lic.audit.record_refusal(turn.actor, AuditAction.CARD_MALFORMED, InvalidInput(e.message))
                        return common.error_card(turn.locale, e.message)
            else:
                text = str(TurnContext.remove_recipient_mention(tc.activity) or tc.activity.text or "")[:MAX_TEXT]

                def answer() -> dict:
                    return self.router.on_text(turn, text)

            card = await self._in_thread(turn, address_due, answer)  # one worker-thread hop per turn
        except Exception:
            log.exception("message turn failed (activity %s)", tc.activity.id)
            card = common.apology_card(turn.locale)
        await self._reply(tc, card)

    # ------------------------------------------------------------------ invokes

    async def on_invoke_activity(self, tc: TurnContext) -> InvokeResponse:
        name = tc.activity.name
        if name == "adaptiveCard/action":
            return await self._card_action(tc)
        if name == "application/search":
            return await self._search(tc)
        return self._unsupported(tc)

    def _unsupported(self, tc: TurnContext) -> InvokeResponse:
        """Any other invoke (botbuilder's own handlers answer 501, a null body): as documented for
        its kind (:func:`bot.invoke.unsupported_response`); logged once an hour per name."""
        name = tc.activity.name if isinstance(tc.activity.name, str) else None
        response = invoke.unsupported_response(name, self._turn(tc).locale)
        if not self._unsupported_logged.seen(repr(name)[:80]):  # bounded memory: a flood logs each name once
            log.warning("unhandled invoke %.80r answered %d (logged once an hour per name)", name, response.status)
        return response

    async def _card_action(self, tc: TurnContext) -> InvokeResponse:
        turn = self._turn(tc)
        try:
            value = tc.activity.value
            action = value.get("action") if isinstance(value, dict) else None
            if not isinstance(action, dict):
                raise ProtocolError(Message("The invoke has no action."))
            if action.get("type", "Action.Execute") != "Action.Execute":
                raise ProtocolError(Message("Only Action.Execute is supported here."))
            # the delivery address too, when due: an invoke tells the locale and time zone as a
            # message does, and a user may only ever click (cards updated later are for them)
            card = await self._in_thread(turn, self._address_due(tc, turn),
                                         lambda: self.router.on_action(turn, action.get("verb"), action.get("data")))
            return invoke.card_response(card)
        except ProtocolError as e:
            await asyncio.to_thread(self.lic.audit.record_refusal, turn.actor, AuditAction.CARD_MALFORMED,
                                    InvalidInput(e.message))
            return invoke.error_response(400, e.code, e.message)
        except Exception:
            log.exception("card action failed (activity %s)", tc.activity.id)
            return invoke.card_response(common.apology_card(turn.locale))

    async def _search(self, tc: TurnContext) -> InvokeResponse:
        turn = self._turn(tc)
        value = tc.activity.value if isinstance(tc.activity.value, dict) else {}
        options = value.get("queryOptions") if isinstance(value.get("queryOptions"), dict) else {}
        try:
            results = await asyncio.to_thread(self.router.on_search, turn, value.get("dataset"),
                                              value.get("queryText"), options.get("skip", 0),
                                              options.get("top", 15))
            return invoke.search_response(results)
        except ProtocolError as e:
            return invoke.error_response(400, e.code, e.message)
        except Exception:
            log.exception("search failed (activity %s)", tc.activity.id)
            return invoke.search_response([])

    # ------------------------------------------------------------------ installation and welcome

    async def _welcome(self, tc: TurnContext) -> None:
        turn = self._turn(tc)
        await self._remember(tc, turn)
        conv = tc.activity.conversation.id if tc.activity.conversation else ""
        if self._welcomed.seen(f"{conv}|{turn.actor.aad_object_id}"):
            return
        try:
            card = await asyncio.to_thread(self.router.welcome, turn)
        except Exception:
            log.exception("welcome failed (activity %s)", tc.activity.id)
            card = common.apology_card(turn.locale)
        await self._reply(tc, card)

    async def on_installation_update_add(self, tc: TurnContext) -> None:
        await self._welcome(tc)

    async def on_members_added_activity(self, members_added: list[ChannelAccount], tc: TurnContext) -> None:
        bot_id = tc.activity.recipient.id if tc.activity.recipient else None
        if any(m.id == bot_id for m in members_added):
            await self._welcome(tc)
        else:
            await self._remember(tc, self._turn(tc))

    async def on_teams_members_added(self, members_added, team_info, tc: TurnContext) -> None:
        await self.on_members_added_activity(members_added, tc)
