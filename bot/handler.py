"""The Teams activity handler: it only translates activities into router calls and the
router's cards into replies or invoke responses."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

from botbuilder.core import CardFactory, MessageFactory, TurnContext
from botbuilder.core.teams import TeamsActivityHandler
from botbuilder.schema import Activity, ActivityTypes, ChannelAccount, InvokeResponse

from bot import invoke
from bot.auth import clean_activity
from bot.connector import SharedJson
from bot.identity import actor_of, address_key, address_of, locale_of, timezone_of
from bot.ratelimit import ACTION, SEARCH, RateLimited, RateLimiter, slow_down_text
from cards import common
from cards.i18n import T
from core.errors import DomainError, InvalidInput, Message
from core.licensing import Licensing
from dialogs.router import ProtocolError, Router, Turn

log = logging.getLogger(__name__)

MAX_TEXT = 2000
NOT_AVAILABLE = Message("This bot is not available to your organisation.")
TURN_KEY = "license_desk.turn"  # the activity's Turn, in tc.turn_state: built once per turn
_UNSET = object()


class ActivityTurn(Turn):
    """The :class:`~dialogs.router.Turn` of an activity, whose ``address`` (the msrest
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
    def address(self) -> dict | None:
        address = self._address
        if address is _UNSET:
            a = self._activity
            address = address_of(a) if a is not None and a.conversation and a.service_url else None
            object.__setattr__(self, "_address", address)  # (two threads at once would build the same)
        return address


class _Recent:
    """A small bounded memory of recent keys (to avoid welcoming a chat twice when Teams
    sends both installationUpdate and conversationUpdate). Only an optimisation: losing it
    on restart costs one extra welcome at most."""

    def __init__(self, size: int = 10_000, ttl: float = 300.0):
        self.size, self.ttl, self._d = size, ttl, OrderedDict()

    def seen(self, key: str) -> bool:
        now = time.monotonic()
        hit = key in self._d and now - self._d[key] < self.ttl
        self._d[key] = now
        self._d.move_to_end(key)
        while len(self._d) > self.size:
            self._d.popitem(last=False)
        return hit

    def forget(self, key: str) -> None:
        self._d.pop(key, None)


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
    def __init__(self, router: Router, lic: Licensing, *, allowed_tenants: frozenset[str] = frozenset(),
                 limiter: RateLimiter | None = None):
        super().__init__()
        self.router = router
        self.lic = lic
        self.allowed_tenants = allowed_tenants
        self.limiter = limiter
        self._welcomed = _Recent()
        self._addresses = _LastSaved()
        self._refused_quietly = _Recent()  # other tenants' activities that get no answer: audited once in 5 min
        self._unsupported_logged = _Recent(size=1000, ttl=3600.0)  # invoke names answered "unsupported"

    # ------------------------------------------------------------------ every activity: rate limit, then tenant

    async def on_turn(self, tc: TurnContext) -> None:
        clean_activity(tc.activity)
        if not await self._gate(tc):
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

    async def _gate(self, tc: TurnContext) -> bool:
        """Answer here (True) what must go no further: a user over their rate limit, an activity
        of a tenant not in ALLOWED_TENANTS (every type: refused, audited, nothing done)."""
        a = tc.activity
        kind = self._kind(a)
        turn = self._turn(tc)
        if self.limiter is not None and kind in ("message", "action", "search", "invoke"):
            who = turn.actor.aad_object_id or str(getattr(a.from_property, "id", "") or "")[:128]
            verdict = await self.limiter.check(SEARCH if kind == "search" else ACTION, turn.actor.tenant_id, who,
                                               answer=kind)
            if not verdict.allowed:
                await self._over_limit(tc, kind, turn, verdict.first)
                return True
        if self.allowed_tenants and turn.actor.tenant_id not in self.allowed_tenants:
            await self._refuse_tenant(tc, kind, turn)
            return True
        return False

    async def _over_limit(self, tc: TurnContext, kind: str, turn: Turn, first: bool) -> None:
        """Nothing is done; the first refusal of the window is audited and answered in words."""
        heading, message = slow_down_text(turn.locale)
        if first:
            a = tc.activity
            action = a.value.get("action") if kind == "action" and isinstance(a.value, dict) else None
            what = action.get("verb") if isinstance(action, dict) else (a.name if kind != "message" else None)
            limit = self.limiter.items[SEARCH if kind == "search" else ACTION]
            await asyncio.to_thread(self.lic.audit.record_refusal, turn.actor, "rate.limited",
                                    RateLimited(Message("Over the rate limit ({limit}).", limit=limit)),
                                    f"{kind}:{str(what or '')[:64]}")
            log.warning("rate limit reached (%s, tenant %s, user %s)", kind, turn.actor.tenant_id,
                        turn.actor.aad_object_id)
        if kind == "message":
            if first:  # later messages of the window get no reply: a flood sends nothing out
                await self._reply(tc, common.error_card(turn.locale, message, heading=heading))
        elif kind == "action":  # Teams shows the text and leaves the card as it is
            await self._answer(tc, invoke.message_response(message))
        elif kind == "search":
            await self._answer(tc, invoke.search_response([]))
        else:
            await self._answer(tc, invoke.error_response(429, "TooManyRequests", message))

    async def _refuse_tenant(self, tc: TurnContext, kind: str, turn: Turn) -> None:
        conv = tc.activity.conversation.id if tc.activity.conversation else ""
        if kind == "message":
            await self._reply(tc, await asyncio.to_thread(self._tenant_refused, turn))
        elif kind == "action":
            await self._answer(tc, invoke.card_response(await asyncio.to_thread(self._tenant_refused, turn)))
        elif kind in ("search", "invoke"):
            await asyncio.to_thread(self._tenant_refused, turn)  # audited
            await self._answer(tc, invoke.search_response([]) if kind == "search"
                               else invoke.error_response(403, "Forbidden", NOT_AVAILABLE))
        elif kind == "install":  # installationUpdate + conversationUpdate: one refusal card, one audit
            if not self._welcomed.seen(f"{conv}|{turn.actor.aad_object_id}"):
                await self._reply(tc, await asyncio.to_thread(self._tenant_refused, turn))
        elif not self._refused_quietly.seen(f"{turn.actor.tenant_id}|{conv}|{tc.activity.type}"):
            await asyncio.to_thread(self._tenant_refused, turn)  # audited, not answered

    @staticmethod
    async def _answer(tc: TurnContext, response: InvokeResponse) -> None:
        await tc.send_activity(Activity(type=ActivityTypes.invoke_response, value=response))

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

    def _refuses(self, turn: Turn) -> bool:
        """Whether the tenant is not allowed (cheap; :meth:`_tenant_refused` audits it)."""
        return bool(self.allowed_tenants) and turn.actor.tenant_id not in self.allowed_tenants

    def _tenant_refused(self, turn: Turn) -> dict | None:
        if self.allowed_tenants and turn.actor.tenant_id not in self.allowed_tenants:
            err = InvalidInput(NOT_AVAILABLE)
            self.lic.audit.record_refusal(turn.actor, "tenant.refused", err, turn.actor.tenant_id or "(none)")
            return common.error_card(turn.locale, err.message, heading=T(turn.locale)("error.not_registered.title"))
        return None

    async def _reply(self, tc: TurnContext, card: dict) -> None:
        # SharedJson: botbuilder's deepcopy of the outgoing activity leaves the card as it is
        await tc.send_activity(MessageFactory.attachment(CardFactory.adaptive_card(SharedJson(card))))

    # ------------------------------------------------------------------ messages

    async def on_message_activity(self, tc: TurnContext) -> None:
        turn = self._turn(tc)
        try:
            if self._refuses(turn):
                refused = await asyncio.to_thread(self._tenant_refused, turn)
                if refused:
                    await self._reply(tc, refused)
                    return
            address_due = self._address_due(tc, turn)
            value = tc.activity.value
            if isinstance(value, dict) and "verb" in value:  # an Action.Submit: same router as Execute
                def answer() -> dict:
                    try:
                        return self.router.on_action(turn, value.get("verb"), value)
                    except ProtocolError as e:
                        self.lic.audit.record_refusal(turn.actor, "card.malformed", InvalidInput(e.message))
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
            if self._refuses(turn):
                refused = await asyncio.to_thread(self._tenant_refused, turn)
                if refused:
                    return invoke.card_response(refused)
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
            await asyncio.to_thread(self.lic.audit.record_refusal, turn.actor, "card.malformed",
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
            if self.allowed_tenants and turn.actor.tenant_id not in self.allowed_tenants:
                return invoke.search_response([])
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
            refused = await asyncio.to_thread(self._tenant_refused, turn) if self._refuses(turn) else None
            card = refused or await asyncio.to_thread(self.router.welcome, turn)
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
