"""A test harness that plays Teams against the real app over HTTP.

``Desk`` runs the whole aiohttp app (``bootstrap.build_server``) on 127.0.0.1 with a
:class:`~tests.fakes.connector.FakeConnector` as the Bot Connector, a Licensing core on the
test database with the test clock, and a sandbox gateway whose pay links point at the app.
``TeamsClient`` is one Teams user in their 1:1 chat with the bot: it sends Teams-shaped
activities and clicks the cards the bot returned, building each invoke from the card itself
(its actions, data and inputs) the way the Teams client (the adaptivecards JS SDK) does.

Use it from async tests (pytest-asyncio, auto mode) through the ``desk`` fixture of
``tests/conftest.py`` (``running_desk(db=db, clock=clock)``: the demo account, Contoso, loaded)::

    async def test_something(desk):
        alex = desk.admin()                   # or desk.member(), desk.client(aad, tenant_id=..., locale=...)
        await alex.install()                  # installationUpdate + conversationUpdate: the welcome cards
        [pools] = await alex.say("licenses")  # the cards replied, each knowing its message id
        users = (await alex.act(pools, pool_button(pools, "Eco", "monthly"))).expect_card()
        users = (await alex.act(users, "Next", users=tick(users, "users", "Adele Vance"))).expect_card()
        url = alex.open_url(quote, "Pay …")   # "…" matches a title by prefix
        await desk.post_form(url, {"action": "pay"})
        await desk.notify()                   # run the notifier until the outbox is drained
        alex.card_in(quote.message_id)        # a message's card now (after invokes and PUTs)

``TeamsClient``: ``install``, ``say``, ``act`` (Action.Execute from a card: data + the card's
inputs as Teams sends them), ``submit`` / ``submit_value`` (Action.Submit), ``execute`` /
``invoke`` (forged or malformed invokes), ``refresh`` (a card's refresh action), ``search``
(typeahead ``application/search``), ``open_url``, ``card_in``, ``proactive_cards``,
``last_activity``. ``Desk``: ``lic`` (the app's core), ``connector``, ``app``, ``root`` (the
parts bootstrap built: router, transport, links), ``url``, ``notify``, ``get`` / ``post_form`` /
``post_raw``, ``user(name)``, ``client_named``, ``chat_of(aad)``.

Card helpers (module functions, work on any card dict): :func:`find_action`,
:func:`actions_of`, :func:`inputs_of`, :func:`choices_of`, :func:`choice_value`,
:func:`tick`, :func:`selected`, :func:`texts_of`, :func:`text_of`, :func:`facts_of`,
:func:`heading_of`, :func:`amount_rows`, :func:`pool_button`. DB helpers: :func:`snapshot`,
:func:`audit_mark`, :func:`audit_since`, :func:`add_pool_users` (bulk users with seats),
:func:`pool_id`. :class:`Watch`: the licensing tables and the audit log around a refused action.
Other accounts: :func:`insert_account`, :func:`add_account`, :func:`add_fabrikam`.
The ``desk`` fixture itself is in ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import func, insert, select, update

import bootstrap
import web.app as web_app
from core.config import Settings
from core.db import Database
from core.demo import PEOPLE, TENANT, load_demo
from core.licensing import Licensing
from core.models import (
    Account,
    AccountDomain,
    AccountTenant,
    AuditEvent,
    Base,
    Pool,
    Seat,
    Subscription,
    User,
    UserTerm,
)
from core.payments import PaymentGateway
from core.periods import period_containing
from core.text import search_terms, sort_key
from core.views import Actor
from payments.sandbox.gateway import SandboxGateway
from tests.fakes.connector import CARD, FakeConnector, personal_chat_id

ALEX = "00000000-0000-0000-0000-0000000000020"  # admin
MEGAN = "00000000-0000-0000-0000-0000000000021"  # admin
LEE = "00000000-0000-0000-0000-0000000000022"  # member
BOT_ID = "28:00000000-0000-0000-0000-00000000000011"
BOT_NAME = "License Desk"
INVOKE_CARD = CARD
INVOKE_ERROR = "application/vnd.microsoft.error"
INVOKE_MESSAGE = "application/vnd.microsoft.activity.message"

# The tables whose rows are the licensing state (audit events, delivery addresses and posted
# cards are bookkeeping that a refused action may write).
LICENSE_TABLES = ("accounts", "account_tenants", "account_domains", "discounts", "users", "subscriptions", "pools",
                  "seats", "quotes", "quote_holds", "payments", "payment_events", "upgrade_requests", "outbox")


# ============================================================================ cards


class Card(dict):
    """A card as a Teams client holds it: the JSON, plus the message that shows it."""

    def __init__(self, content: dict, *, message_id: str | None = None, conversation_id: str | None = None):
        super().__init__(content)
        self.message_id = message_id
        self.conversation_id = conversation_id


def _children(el: dict) -> Iterator[dict]:
    for key in ("body", "items", "columns", "actions", "cards", "inlines"):
        for child in el.get(key) or []:
            if isinstance(child, dict):
                yield child
    for key in ("selectAction", "inlineAction", "card", "fallback"):
        child = el.get(key)
        if isinstance(child, dict):
            yield child


def walk(card: dict, *, into_show_cards: bool = True) -> Iterator[dict]:
    """Every element and action of a card, depth first (ShowCard cards included by default)."""
    stack = [card]
    while stack:
        el = stack.pop()
        yield el
        kids = list(_children(el))
        if not into_show_cards and el.get("type") == "Action.ShowCard":
            kids = [k for k in kids if k is not el.get("card")]
        stack.extend(reversed(kids))


def actions_of(card: dict, type_: str | None = None) -> list[dict]:
    """Every action anywhere in the card: top-level, ActionSets, nested in ColumnSets/
    Columns/Containers, selectActions and inline actions."""
    return [el for el in walk(card) if str(el.get("type", "")).startswith("Action.")
            and (type_ is None or el.get("type") == type_)]


def _title_matches(title: str, wanted) -> bool:
    if callable(wanted):
        return bool(wanted(title))
    if wanted.endswith("…") or wanted.endswith("..."):
        return title.startswith(wanted.rstrip("….").rstrip())
    return title == wanted


def find_action(card: dict, title, type_: str | None = None) -> dict:
    """The one action with that title (exact; ``"Pay …"`` matches by prefix; a callable is a
    predicate on the title). Fails listing the titles there are."""
    found = [a for a in actions_of(card, type_) if _title_matches(str(a.get("title", "")), title)]
    if len(found) != 1:
        titles = [a.get("title") for a in actions_of(card)]
        raise AssertionError(f"{'no' if not found else len(found)} action titled {title!r} "
                             f"({type_ or 'any type'}) in the card; its actions: {titles}")
    return found[0]


def has_action(card: dict, title, type_: str | None = None) -> bool:
    return any(_title_matches(str(a.get("title", "")), title) for a in actions_of(card, type_))


def inputs_of(card: dict) -> dict[str, dict]:
    """The card's inputs by id (not those inside ShowCard sub-cards, as Teams collects them)."""
    return {el["id"]: el for el in walk(card, into_show_cards=False)
            if str(el.get("type", "")).startswith("Input.") and el.get("id")}


def choices_of(card: dict, input_id: str) -> list[tuple[str, str]]:
    """The (title, value) choices of an Input.ChoiceSet."""
    inp = inputs_of(card).get(input_id)
    if inp is None or inp.get("type") != "Input.ChoiceSet":
        raise AssertionError(f"no Input.ChoiceSet {input_id!r} in the card (inputs: {list(inputs_of(card))})")
    return [(c["title"], c["value"]) for c in inp.get("choices") or []]


def choice_value(card: dict, input_id: str, title) -> str:
    """The value of the one choice whose title is ``title`` or starts with it (or matches a
    predicate)."""
    options = choices_of(card, input_id)
    if callable(title):
        found = [v for t, v in options if title(t)]
    else:
        found = [v for t, v in options if t == title] or [v for t, v in options if t.startswith(title)]
    if len(found) != 1:
        raise AssertionError(f"{len(found)} choice(s) of {input_id!r} match {title!r}: {[t for t, _ in options]}")
    return found[0]


def selected(card: dict, input_id: str) -> list[str]:
    """The values currently ticked in a ChoiceSet (its ``value``, comma-separated)."""
    value = inputs_of(card)[input_id].get("value") or ""
    return [v for v in str(value).split(",") if v]


def tick(card: dict, input_id: str, *titles, keep: bool = True) -> str:
    """The comma-separated value a multi-select ChoiceSet has after ticking the choices with
    these titles (by prefix, e.g. a user's name), keeping what was ticked (``keep``)."""
    values = selected(card, input_id) if keep else []
    for title in titles:
        v = choice_value(card, input_id, title)
        if v not in values:
            values.append(v)
    return ",".join(values)


def untick(card: dict, input_id: str, *titles) -> str:
    drop = {choice_value(card, input_id, t) for t in titles}
    return ",".join(v for v in selected(card, input_id) if v not in drop)


_MARKDOWN_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


def shown(markdown) -> str:
    """A TextBlock's or Fact's text as Teams shows it: its Markdown renderer (CommonMark) shows a
    backslash-escaped punctuation character as the character itself (the cards escape people's text)."""
    return _MARKDOWN_ESCAPE.sub(r"\1", str(markdown))


def texts_of(card: dict) -> list[str]:
    """Every visible string, as shown: TextBlocks, RichTextBlock runs, facts (as "title: value"),
    choice titles, action titles."""
    out = []
    for el in walk(card):
        t = el.get("type")
        if t == "TextBlock":
            out.append(shown(el.get("text", "")))
        elif t == "TextRun":  # (no Markdown in a TextRun)
            out.append(str(el.get("text", "")))
        elif t == "FactSet":
            out.extend(f"{shown(f.get('title'))}: {shown(f.get('value'))}" for f in el.get("facts") or [])
        elif t == "Input.ChoiceSet":
            out.extend(str(c.get("title", "")) for c in el.get("choices") or [])
        elif str(t).startswith("Action."):
            out.append(str(el.get("title", "")))
    return out


def text_of(card: dict) -> str:
    return "\n".join(texts_of(card))


def heading_of(card: dict) -> str:
    for el in walk(card):
        if el.get("type") == "TextBlock":
            return shown(el.get("text", ""))
    return ""


def facts_of(card: dict) -> dict[str, str]:
    return {shown(f["title"]): shown(f["value"])
            for el in walk(card) if el.get("type") == "FactSet" for f in el.get("facts") or []}


def amount_rows(card: dict) -> list[tuple[str, str]]:
    """Two-column ColumnSets (label | right-aligned amount), e.g. a quote's lines."""
    rows = []
    for el in walk(card):
        if el.get("type") != "ColumnSet" or len(el.get("columns") or []) != 2:
            continue
        left, right = el["columns"]
        li = [i for i in left.get("items") or [] if i.get("type") == "TextBlock"]
        ri = [i for i in right.get("items") or [] if i.get("type") == "TextBlock"]
        if len(li) == 1 and len(ri) == 1 and ri[0].get("horizontalAlignment") == "Right":
            rows.append((shown(li[0]["text"]), shown(ri[0]["text"])))
    return rows


def _teams_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | set):
        return ",".join(str(v) for v in value)
    return str(value)


class InputRequired(AssertionError):
    """A required input is empty: Teams would not send the action."""


def action_data(card: dict, action: dict, inputs: dict[str, Any]) -> dict:
    """``data`` as the Teams client builds it for an Action.Execute/Submit: the action's data,
    then every input of the card that has a value (its default, or what the user set),
    values as strings (a multi-select as one comma-separated string); none when the action
    has ``associatedInputs: "none"``. An input the user empties is left out."""
    data = action.get("data")
    data = dict(data) if isinstance(data, dict) else ({} if data is None else data)
    card_inputs = inputs_of(card)
    unknown = set(inputs) - set(card_inputs)
    if unknown:
        raise AssertionError(f"the card has no input {sorted(unknown)} (inputs: {sorted(card_inputs)})")
    if action.get("associatedInputs", "auto") == "none":
        if inputs:
            raise AssertionError(f"action {action.get('title')!r} sends no inputs (associatedInputs: none)")
        return data
    for input_id, el in card_inputs.items():
        value = _teams_value(inputs[input_id]) if input_id in inputs else el.get("value")
        if value in (None, ""):
            if el.get("isRequired"):
                raise InputRequired(f"input {input_id!r} is required: Teams would not send {action.get('title')!r}")
            continue
        if isinstance(data, dict):
            data[input_id] = _teams_value(value)
    return data


# ============================================================================ HTTP answers


class InvokeReply(dict):
    """The parsed body of an invoke answer (``{statusCode, type, value}`` for a Universal
    Action), with the HTTP status and the returned card (placed in the clicked message)."""

    def __init__(self, body, http_status: int, card: Card | None = None):
        super().__init__(body if isinstance(body, dict) else {"_body": body})
        self.http_status = http_status
        self.card = card

    @property
    def status_code(self):
        return self.get("statusCode")

    @property
    def type(self):
        return self.get("type")

    @property
    def value(self):
        return self.get("value")

    @property
    def is_error(self) -> bool:
        return self.type == INVOKE_ERROR

    def expect_card(self) -> Card:
        assert self.http_status == 200, (self.http_status, dict(self))
        assert self.status_code == 200 and self.type == INVOKE_CARD, dict(self)
        return self.card


@dataclass
class HttpResult:
    status: int
    text: str
    headers: dict

    def json(self):
        return json.loads(self.text) if self.text else None


# ============================================================================ the Teams user


TEAMS_AUTO_REFRESH_MAX_MEMBERS = 60


class TeamsClient:
    """One Teams user in their personal (1:1) chat with the bot (or in a group chat: see
    :meth:`Desk.group_chat`)."""

    _ids = itertools.count(1)

    def __init__(self, desk: Desk, aad_object_id: str, *, tenant_id: str = TENANT, locale: str = "en-US",
                 name: str | None = None, user_id: str | None = None, conversation_id: str | None = None,
                 email: str | None = None, timezone: str | None = None, conversation_type: str = "personal",
                 server: str | None = None):
        self.desk = desk
        self.server = server  # the base URL of another app instance to send to (default: the desk's)
        self.aad_object_id = aad_object_id
        self.tenant_id = tenant_id
        self.locale = locale
        self.timezone = timezone  # the client's IANA time zone: sent as localTimezone and in clientInfo
        self.name = name or aad_object_id
        self.user_id = user_id or f"29:{aad_object_id}"
        self.conversation_id = conversation_id or personal_chat_id(aad_object_id, tenant_id)
        self.conversation_type = conversation_type  # personal | groupChat
        self.email = email
        self.last_activity: dict | None = None  # the last activity this user sent
        desk.connector.add_member(self.user_id, aad_object_id, self.name, tenant_id, email)

    # ------------------------------------------------------------------ activities

    def activity(self, type_: str, **fields) -> dict:
        """A Teams-shaped activity from this user (fields override)."""
        now = datetime.now(UTC)
        base = {
            "type": type_,
            "id": f"f:{next(self._ids)}-{uuid.uuid4().hex[:8]}",
            "timestamp": now.isoformat().replace("+00:00", "Z"),
            "localTimestamp": now.isoformat(),
            "serviceUrl": self.desk.connector.service_url,
            "channelId": "msteams",
            "from": {"id": self.user_id, "name": self.name, "aadObjectId": self.aad_object_id},
            "recipient": {"id": BOT_ID, "name": BOT_NAME},
            "conversation": {"conversationType": self.conversation_type, "tenantId": self.tenant_id,
                             "id": self.conversation_id, **({"isGroup": True} if self.conversation_type != "personal"
                                                           else {})},
            "channelData": {"tenant": {"id": self.tenant_id}},
            "locale": self.locale,
        }
        if self.timezone:
            base["localTimezone"] = self.timezone
            base["entities"] = [{"type": "clientInfo", "locale": self.locale, "timezone": self.timezone}]
        base.update(fields)
        return base

    async def send(self, activity: dict) -> HttpResult:
        """POST an activity to /api/messages, as the Bot Connector does for Teams."""
        conversation = activity.get("conversation")
        conv = conversation.get("id") if isinstance(conversation, dict) else None
        if conv and isinstance(activity.get("id"), str):
            self.desk.connector.note_inbound(conv, activity["id"])
        self.last_activity = activity
        if self.server:  # another app instance (local mode: no token to sign)
            return await self.desk.post_raw("/api/messages", json.dumps(activity), base=self.server)
        return await self.desk.post_json("/api/messages", activity)

    async def _turn(self, activity: dict) -> tuple[HttpResult, list[Card]]:
        mark = self.desk.connector.mark()
        res = await self.send(activity)
        assert res.status < 500, f"HTTP {res.status} for a {activity['type']}: {res.text[:500]}"
        return res, self._cards_since(mark)

    def _cards_since(self, mark: int) -> list[Card]:
        out = []
        for call in self.desk.connector.since(mark, conversation_id=self.conversation_id):
            if call.kind == "reply" and call.answers_user:
                out.extend(Card(c, message_id=call.new_id, conversation_id=self.conversation_id)
                           for c in call.cards)
        return out

    async def install(self) -> list[Card]:
        """Install the app in the personal scope, like Teams / the Playground: an
        installationUpdate (add), then a conversationUpdate with membersAdded (user and bot).
        Returns the cards the bot posted (the welcome)."""
        mark = self.desk.connector.mark()
        res = await self.send(self.activity("installationUpdate", action="add"))
        assert res.status < 300, (res.status, res.text)
        res = await self.send(self.activity(
            "conversationUpdate",
            membersAdded=[{"id": self.user_id, "aadObjectId": self.aad_object_id}, {"id": BOT_ID}]))
        assert res.status < 300, (res.status, res.text)
        return self._cards_since(mark)

    async def say(self, text: str) -> list[Card]:
        """Send a message; the cards the bot replied with (each knows its message id)."""
        _, cards = await self._turn(self.activity("message", text=text, textFormat="plain"))
        return cards

    async def submit(self, card: dict, title, **inputs) -> list[Card]:
        """Click an Action.Submit: a message with no text and ``value`` = data + inputs."""
        action = find_action(card, title, "Action.Submit")
        return await self.submit_value(action_data(card, action, inputs), message_id=getattr(card, "message_id", None))

    async def submit_value(self, value: Any, *, message_id: str | None = None) -> list[Card]:
        """What an Action.Submit sends (also for forged values): the cards the bot replied with."""
        extra = {"replyToId": message_id} if message_id else {}
        _, cards = await self._turn(self.activity("message", value=value, **extra))
        return cards

    async def invoke(self, name: str, value: Any, *, message_id: str | None = None, **fields) -> InvokeReply:
        """Send any invoke (for forged or malformed ones too); the parsed answer."""
        extra = dict(fields)
        if message_id:
            extra["replyToId"] = message_id
        res = await self.send(self.activity("invoke", name=name, value=value, **extra))
        assert res.status != 500, f"HTTP 500 for invoke {name}: {res.text[:500]}"
        try:
            body = res.json()
        except ValueError:
            body = res.text
        reply = InvokeReply(body, res.status)
        if isinstance(body, dict) and body.get("type") == INVOKE_CARD and isinstance(body.get("value"), dict):
            self.desk.invoke_cards.append(body["value"])
            reply.card = Card(body["value"], message_id=message_id, conversation_id=self.conversation_id)
            if message_id:  # Teams shows the returned card in place of the one clicked
                self.desk.connector.replace(self.conversation_id, message_id, body["value"])
        return reply

    async def execute(self, verb, data: Any = None, *, message_id: str | None = None,
                      trigger: str = "manual") -> InvokeReply:
        """An ``adaptiveCard/action`` invoke with this verb and data, as if from a card."""
        action = {"type": "Action.Execute", "verb": verb, "data": data}
        return await self.invoke("adaptiveCard/action", {"action": action, "trigger": trigger},
                                 message_id=message_id)

    async def act(self, card: dict, title, *, message_id: str | None = None, **inputs) -> InvokeReply:
        """Click the Action.Execute titled ``title`` (anywhere in the card; or pass the action
        dict itself), with the card's inputs as they are, overridden by ``inputs`` (a list
        becomes a comma-separated string; ``""`` empties an input). The answer's card replaces
        the card in its message."""
        if isinstance(title, dict):
            action = title
            assert any(a is action for a in actions_of(card, "Action.Execute")), "that action is not in this card"
        else:
            action = find_action(card, title, "Action.Execute")
        data = action_data(card, action, inputs)
        mid = message_id or getattr(card, "message_id", None)
        return await self.execute(action.get("verb"), data, message_id=mid)

    async def refresh(self, card: dict, *, message_id: str | None = None) -> InvokeReply:
        """What Teams does with a card's ``refresh`` action (trigger automatic)."""
        action = card.get("refresh", {}).get("action")
        assert action, "the card has no refresh action"
        mid = message_id or getattr(card, "message_id", None)
        return await self.execute(action.get("verb"), dict(action.get("data") or {}), message_id=mid,
                                  trigger="automatic")

    async def view(self, card: dict, *, message_id: str | None = None) -> InvokeReply | None:
        """What Teams does when this user looks at a card in this chat: the refresh invoke's
        answer when Teams refreshes it automatically for them, else None (nothing is sent).
        Teams (Universal Actions for Adaptive Cards, "User IDs in refresh"): a card whose
        ``refresh`` has ``userIds`` is refreshed automatically only for the users listed (the
        MRIs their activities carry in ``from.id``; ``userIds: []``: for nobody, a manual
        "Refresh card" stays in the menu); without ``userIds``, for every viewer of a chat or
        channel of at most 60 members, and for nobody in a larger one."""
        refresh = card.get("refresh")
        if not isinstance(refresh, dict) or not refresh.get("action"):
            return None
        if "userIds" in refresh:
            if self.user_id not in refresh["userIds"]:
                return None
        elif len(self.desk.chat_members.get(self.conversation_id, [self.user_id])) > TEAMS_AUTO_REFRESH_MAX_MEMBERS:
            return None
        return await self.refresh(card, message_id=message_id)

    async def search(self, card: dict, input_id: str, query: str, *, skip: int = 0, top: int = 15) -> InvokeReply:
        """Type in a typeahead ChoiceSet: an ``application/search`` invoke for its dataset."""
        el = inputs_of(card)[input_id]
        dataset = (el.get("choices.data") or {}).get("dataset")
        assert dataset, f"input {input_id!r} has no Data.Query"
        value = {"queryText": query, "queryOptions": {"skip": skip, "top": top}, "dataset": dataset}
        return await self.invoke("application/search", value, message_id=getattr(card, "message_id", None))

    @staticmethod
    def open_url(card: dict, title) -> str:
        """The URL of an Action.OpenUrl (what clicking it opens)."""
        return find_action(card, title, "Action.OpenUrl")["url"]

    # ------------------------------------------------------------------ what the chat shows

    def card_in(self, message_id: str) -> Card | None:
        """The card a message shows now (after invokes and updates)."""
        c = self.desk.connector.card(self.conversation_id, message_id)
        return Card(c, message_id=message_id, conversation_id=self.conversation_id) if c else None

    def posted(self) -> list[dict]:
        """Every activity the bot posted into this user's chat."""
        return self.desk.connector.posted(self.conversation_id)

    def proactive_cards(self) -> list[Card]:
        """Cards the bot sent into this chat on its own (not answering this user): notifications."""
        return [Card(c, message_id=call.new_id, conversation_id=self.conversation_id)
                for call in self.desk.connector.sent_calls(self.conversation_id) for c in call.cards]

    def updates(self, message_id: str | None = None) -> list[dict]:
        return self.desk.connector.updates(self.conversation_id, message_id)


# ============================================================================ the app


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class Desk:
    """The app on 127.0.0.1 (real HTTP), a fake Bot Connector, and a Licensing core with the
    test clock whose sandbox pay links point at the app."""

    def __init__(self) -> None:
        self.connector = FakeConnector()
        self.runner: web.AppRunner | None = None
        self.http: aiohttp.ClientSession | None = None
        self.lic: Licensing
        self.app: web.Application
        self.root: bootstrap.Server
        self.settings: Settings
        self.url = ""
        self._own_db: Database | None = None
        self.chat_members: dict[str, list[str]] = {}  # group chat id -> its members' Teams ids
        self.invoke_cards: list[dict] = []  # every card an invoke answered with (the connector has the others)

    def shown_cards(self) -> list[dict]:
        """Every card the bot showed anyone so far: posted, updated, or answered to an invoke."""
        return [c for call in self.connector.calls if 200 <= call.status < 300 for c in call.cards] + \
            self.invoke_cards

    @classmethod
    async def start(cls, *, db: Database | None = None, db_url: str | None = None,
                    clock: Callable[[], datetime] | None = None, demo: bool = True,
                    quote_ttl: timedelta = timedelta(minutes=30), gateway: PaymentGateway | None = None,
                    **settings) -> Desk:
        self = cls()
        sock = _free_socket()  # bound now, so the pay links can name the port before the app exists
        try:
            await self.connector.start()
            self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            if db is None:
                db = self._own_db = Database(db_url)
            gateway = gateway or SandboxGateway(self.url)
            settings.setdefault("PAYMENTS", gateway.name)  # (the provider whose routes are mounted)
            self.settings = Settings(MicrosoftAppId="", DATABASE_URL=db.url, PUBLIC_BASE_URL=self.url,
                                     QUOTE_TTL_MINUTES=int(quote_ttl.total_seconds() // 60), **settings)
            self.lic = bootstrap.build_licensing(self.settings, db=db, gateway=gateway,
                                                 clock=clock, quote_ttl=quote_ttl)
            if demo:
                assert load_demo(self.lic)
            self.root = bootstrap.build_server(self.settings, self.lic)  # as `app.py serve`, without background jobs
            self.app = self.root.app
            self.runner = web.AppRunner(self.app, access_log=None, **web_app.SERVER_OPTIONS)  # as `app.py serve`
            await self.runner.setup()
            await web.SockSite(self.runner, sock).start()
            self.http = aiohttp.ClientSession()
        except BaseException:
            sock.close()
            await self.close()
            raise
        return self

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()
        if self.runner is not None:
            await self.runner.cleanup()
        await self.connector.close()
        if self._own_db is not None:
            self._own_db.dispose()

    # ------------------------------------------------------------------ people

    def client(self, aad_object_id: str, *, tenant_id: str = TENANT, locale: str = "en-US",
               name: str | None = None, **kw) -> TeamsClient:
        if name is None:
            name = next((n for a, n, _ in PEOPLE if a == aad_object_id), None)
        return TeamsClient(self, aad_object_id, tenant_id=tenant_id, locale=locale, name=name, **kw)

    def admin(self, locale: str = "en-US") -> TeamsClient:
        """Alex Wilber, administrator of the demo account."""
        return self.client(ALEX, locale=locale)

    def member(self, locale: str = "en-US") -> TeamsClient:
        """Lee Gu, a member (not an administrator) of the demo account."""
        return self.client(LEE, locale=locale)

    def user(self, name: str, tenant_id: str = TENANT) -> User:
        """The one user of the tenant's account with that display name."""
        with self.lic.db.read() as s:
            return s.scalars(select(User).join(AccountTenant, AccountTenant.account_id == User.account_id)
                             .where(AccountTenant.tenant_id == tenant_id, User.name == name)).one()

    def client_named(self, name: str, *, tenant_id: str = TENANT, locale: str = "en-US") -> TeamsClient:
        u = self.user(name, tenant_id)
        return self.client(u.aad_object_id, tenant_id=tenant_id, locale=locale, name=u.name, email=u.email)

    def group_chat(self, *people: TeamsClient, size: int | None = None) -> list[TeamsClient]:
        """The same people in one new group chat with the bot (a client each, in that chat).
        ``size``: the chat's member count when it has more people than those given."""
        cid = f"19:group-{uuid.uuid4().hex[:12]}@thread.v2"
        ids = [p.user_id for p in people]
        self.chat_members[cid] = ids + [f"29:other-{i}" for i in range(max(0, (size or 0) - len(ids)))]
        return [TeamsClient(self, p.aad_object_id, tenant_id=p.tenant_id, locale=p.locale, name=p.name,
                            user_id=p.user_id, conversation_id=cid, email=p.email, timezone=p.timezone,
                            conversation_type="groupChat") for p in people]

    def chat_of(self, aad_object_id: str, tenant_id: str = TENANT) -> str:
        """The 1:1 chat id of a user (the one a notification creates, or their client uses)."""
        return personal_chat_id(aad_object_id, tenant_id)

    # ------------------------------------------------------------------ HTTP

    async def post_json(self, path: str, body: Any) -> HttpResult:
        return await self.post_raw(path, json.dumps(body), content_type="application/json")

    async def post_raw(self, path: str, data: bytes | str, *, content_type: str = "application/json",
                       headers: dict | None = None, base: str | None = None) -> HttpResult:
        hdrs = {"Content-Type": content_type, **(headers or {})}
        async with self.http.post((base or self.url) + path, data=data, headers=hdrs) as r:
            return HttpResult(r.status, await r.text(), dict(r.headers))

    async def get(self, url: str) -> HttpResult:
        async with self.http.get(url if "://" in url else self.url + url) as r:
            return HttpResult(r.status, await r.text(), dict(r.headers))

    async def post_form(self, url: str, form: dict) -> HttpResult:
        async with self.http.post(url if "://" in url else self.url + url, data=form) as r:
            return HttpResult(r.status, await r.text(), dict(r.headers))

    # ------------------------------------------------------------------ background work, on demand

    @property
    def notifier(self):
        return self.root.transport.notifier

    async def notify(self, rounds: int = 10) -> int:
        """Run the notifier until the outbox has nothing due (at most ``rounds`` batches);
        how many messages were handled."""
        total = 0
        for _ in range(rounds):
            n = await self.notifier.run_once()
            total += n
            if not n:
                break
        return total


# ============================================================================ database helpers


def snapshot(lic: Licensing, tables: tuple[str, ...] = LICENSE_TABLES) -> dict[str, list[tuple]]:
    """Every row of the licensing tables (ordered by primary key), to compare before/after."""
    out = {}
    with lic.db.read() as s:
        for name in tables:
            table = Base.metadata.tables[name]
            rows = s.execute(select(table).order_by(*table.primary_key.columns)).all()
            out[name] = [tuple(r) for r in rows]
    return out


def audit_mark(lic: Licensing) -> int:
    with lic.db.read() as s:
        return s.scalar(select(func.coalesce(func.max(AuditEvent.id), 0)))


def audit_since(lic: Licensing, mark: int) -> list[AuditEvent]:
    with lic.db.read() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.id > mark).order_by(AuditEvent.id)))


def add_pool_users(lic: Licensing, pool_id: int, people: list[tuple[str, str]], *, aad_prefix: str = "bulk",
                   role: str = "member") -> list[int]:
    """Bulk-insert users (name, e-mail) into a pool's account with their search terms and a seat
    in the pool (SQLAlchemy Core, a few statements: fast enough for 10,000 users), and raise
    the pool's quantity to match. Rows are what ``Licensing._insert_user`` and ``assign`` write.
    Returns the new users' ids in the order given."""
    now = lic.now()
    with lic.db.read() as s:
        pool = s.get(Pool, pool_id)
        account_id, family = pool.account_id, lic.catalog.plan(pool.plan_code).family
    rows = [{"account_id": account_id, "aad_object_id": f"{aad_prefix}-{i:08d}", "email": email.lower(),
             "name": name, "sort_key": sort_key(name), "role": role, "unreachable": False, "created_at": now}
            for i, (name, email) in enumerate(people)]

    def work(s):
        for chunk in range(0, len(rows), 2000):
            s.execute(insert(User), rows[chunk:chunk + 2000])
        ids = dict(s.execute(select(User.aad_object_id, User.id).where(
            User.account_id == account_id, User.aad_object_id.like(f"{aad_prefix}-%"))).all())
        new = [ids[r["aad_object_id"]] for r in rows]
        terms = [{"user_id": uid, "term": t, "account_id": account_id}
                 for uid, r in zip(new, rows, strict=True) for t in search_terms(r["name"], r["email"])]
        seats = [{"account_id": account_id, "pool_id": pool_id, "user_id": uid, "family": family,
                  "sort_key": r["sort_key"], "assigned_at": now} for uid, r in zip(new, rows, strict=True)]
        for table, values in ((UserTerm, terms), (Seat, seats)):
            for chunk in range(0, len(values), 5000):
                s.execute(insert(table), values[chunk:chunk + 5000])
        s.execute(update(Pool).where(Pool.id == pool_id).values(quantity=Pool.quantity + len(rows)))
        return new

    return lic.db.write(work)


def pool_button(pools_card: dict, plan_name: str, interval_label: str) -> dict:
    """In a pools card, the assigned-count button of the row of ``plan_name`` whose subtitle
    starts with ``interval_label`` (e.g. "Eco", "monthly"), found by reading the card's rows
    (each a ColumnSet: plan name over "interval · price", bought, assigned button, ...).
    Counts may repeat across rows, so pass the action itself to ``act``."""
    for row in walk(pools_card):
        if row.get("type") != "ColumnSet" or len(row.get("columns") or []) < 3:
            continue
        texts = [el.get("text", "") for el in walk(row["columns"][0]) if el.get("type") == "TextBlock"]
        if len(texts) >= 2 and texts[0] == plan_name and texts[1].startswith(interval_label):
            buttons = actions_of(row, "Action.Execute")
            assert len(buttons) == 1, buttons
            return buttons[0]
    raise AssertionError(f"no {plan_name} ({interval_label}) row in the pools card: {texts_of(pools_card)}")


def pool_id(desk: Desk, plan: str, interval: str, tenant: str = TENANT) -> int:
    """The id of the pool of that plan and billing interval of the tenant's account."""
    with desk.lic.db.read() as s:
        return s.scalar(select(Pool.id).join(Subscription, Subscription.id == Pool.subscription_id)
                        .join(AccountTenant, AccountTenant.account_id == Pool.account_id)
                        .where(AccountTenant.tenant_id == tenant, Pool.plan_code == plan,
                               Subscription.interval == interval))


def eco_pool_id(desk: Desk) -> int:
    return pool_id(desk, "eco", "month")


# ============================================================================ refusals


class Watch:
    """The licensing tables and the audit log, before; what changed, after.

    ``refused(action)``: exactly one audit event since, its outcome "refused", its action
    ``action`` (or the watch's ``action`` when none is given; any when neither is); with
    ``unchanged_on_refusal`` it also checks :meth:`unchanged`. Returns the event.
    ``unchanged()``: no licensing table changed. ``events()``: the audit events since."""

    def __init__(self, desk: Desk, *, action: str | None = None, unchanged_on_refusal: bool = False):
        self.desk = desk
        self.action = action
        self.unchanged_on_refusal = unchanged_on_refusal
        self.before = snapshot(desk.lic)
        self.mark = audit_mark(desk.lic)

    def events(self) -> list[AuditEvent]:
        return audit_since(self.desk.lic, self.mark)

    def refused(self, action: str | None = None, case: str = "") -> AuditEvent:
        events = self.events()
        assert len(events) == 1, f"{case}: {[(e.action, e.outcome, e.message) for e in events]}"
        event = events[0]
        assert event.outcome == "refused", f"{case}: {event.action} {event.outcome}"
        action = action or self.action
        if action:
            assert event.action == action, f"{case}: {event.action}"
        if self.unchanged_on_refusal:
            self.unchanged(case)
        return event

    def unchanged(self, case: str = "") -> None:
        after = snapshot(self.desk.lic)
        changed = [t for t in self.before if self.before[t] != after[t]]
        assert not changed, f"{case}: the licensing tables changed: {changed}"


# ============================================================================ other accounts

FAB_TENANT = "22222222-2222-2222-2222-222222222222"
FAB_ADMIN = "22222222-0000-0000-0000-000000000001"  # Ada Fabrikam
FAB_WORKER = "22222222-0000-0000-0000-000000000002"  # Bo Fabrikam


def insert_account(lic: Licensing, s, now: datetime, *, tenant: str, people: Iterable[tuple[str, str, str, str]],
                   name: str = "Fabrikam", currency: str = "USD", domain: str = "fabrikam.com",
                   ) -> tuple[Account, list[User]]:
    """In the session ``s``: an account (created ``now``) bound to ``tenant`` with one approved
    e-mail domain, and its users, ``people`` being (aad object id, e-mail, name, role)."""
    account = Account(name=name, currency=currency, created_at=now)
    s.add(account)
    s.flush()
    s.add(AccountTenant(tenant_id=tenant, account_id=account.id))
    s.add(AccountDomain(account_id=account.id, domain=domain))
    return account, [lic.accounts.insert_user(s, account.id, aad, email, display, role) for aad, email, display,
                     role in people]


def add_account(lic: Licensing, *, tenant: str, people: list[tuple[str, str, str, str]], plan: str | None = "eco",
                age: timedelta = timedelta(days=3), quantity: int = 5, removal_scheduled: int = 0,
                seats: Iterable[int] = (), downgrades: Mapping[int, str] | None = None,
                **account) -> SimpleNamespace:
    """Another account (:func:`insert_account`; ``account``: its name, currency, domain) and,
    unless ``plan`` is None, a monthly subscription anchored ``age`` ago with one pool of that
    plan (``quantity``, ``removal_scheduled``) in which the people at the indexes ``seats`` hold
    a seat since the anchor (``downgrades``: index -> the plan their seat moves to at renewal).
    Returns account_id, pool_id (None without a plan), user_ids and actors (as ``people``)."""
    now = lic.now()

    def work(s) -> SimpleNamespace:
        acc, users = insert_account(lic, s, now, tenant=tenant, people=people, **account)
        out = SimpleNamespace(account_id=acc.id, pool_id=None, user_ids=[u.id for u in users])
        if plan is None:
            return out
        anchor = now - age
        number, start, end = period_containing(anchor, "month", now)
        sub = Subscription(account_id=acc.id, interval="month", anchor_at=anchor, period_number=number,
                           period_start=start, period_end=end, created_at=anchor)
        s.add(sub)
        s.flush()
        pool = Pool(account_id=acc.id, subscription_id=sub.id, plan_code=plan, quantity=quantity,
                    removal_scheduled=removal_scheduled, created_at=anchor)
        s.add(pool)
        s.flush()
        family = lic.catalog.plan(plan).family
        for i in seats:
            s.add(Seat(account_id=acc.id, pool_id=pool.id, user_id=users[i].id, family=family,
                       sort_key=users[i].sort_key, assigned_at=anchor, downgrade_to=(downgrades or {}).get(i)))
        out.pool_id = pool.id
        return out

    ns = lic.db.write(work)
    ns.actors = [Actor(tenant, aad) for aad, *_ in people]
    return ns


def add_fabrikam(lic: Licensing, *, tenant: str = FAB_TENANT, admin: str | None = FAB_ADMIN,
                 worker: str | None = FAB_WORKER, seats: Iterable[str] | None = None,
                 downgrades: Mapping[str, str] | None = None, upgrade_quote: str | None = None, **kw) -> dict:
    """Fabrikam, a second account (:func:`add_account`, whose ``plan``, ``removal_scheduled``...
    ``kw`` passes on): Ada Fabrikam, administrator (aad object id ``admin``), and Bo Fabrikam,
    member (``worker``), each left out when None; ``seats`` (default: both) and ``downgrades``
    name them "admin" and "worker". With ``upgrade_quote`` (a plan), Ada's open quote upgrading
    Bo to it.
    Returns the ids: account, pool, admin, worker, quote."""
    people = {"admin": (admin, "ada@fabrikam.com", "Ada Fabrikam", "admin"),
              "worker": (worker, "bo@fabrikam.com", "Bo Fabrikam", "member")}
    keys = [k for k, person in people.items() if person[0] is not None]
    acc = add_account(lic, tenant=tenant, people=[people[k] for k in keys],
                      seats=[keys.index(k) for k in (keys if seats is None else seats)],
                      downgrades={keys.index(k): plan for k, plan in (downgrades or {}).items()}, **kw)
    fab = {"account": acc.account_id, "pool": acc.pool_id, **dict(zip(keys, acc.user_ids, strict=True))}
    if upgrade_quote:
        fab["quote"] = lic.quotes.quote_upgrade(Actor(tenant, admin), fab["pool"], [fab["worker"]], upgrade_quote).id
    return fab


# ============================================================================ fixtures


@contextlib.asynccontextmanager
async def running_desk(**kw) -> AsyncIterator[Desk]:
    """``async with running_desk(db=db, clock=clock) as desk:`` (see :meth:`Desk.start`);
    the ``desk`` fixture (``tests/conftest.py``) is this with the demo account loaded."""
    d = await Desk.start(**kw)
    try:
        yield d
    finally:
        await d.close()
