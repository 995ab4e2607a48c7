"""A fake Bot Connector (the Teams side of the Bot Framework v3 REST API), over real HTTP.

The bot sends to ``{serviceUrl}v3/...`` where ``serviceUrl`` comes from the incoming
activity; give the bot :attr:`FakeConnector.service_url` (it ends with a slash). The server
listens on 127.0.0.1 on a random free port in the *current* event loop (botbuilder's
connector client sends through ``requests`` in an executor, so the bot and the fake can
share one loop)::

    connector = await FakeConnector().start()
    ...
    connector.replies(conversation_id)        # what the bot answered in that chat
    await connector.close()

Endpoints (shapes from the Bot Framework Connector API / Teams):

* ``POST /v3/conversations/{cid}/activities/{aid}`` reply -> 201 ``{"id": new id}``
* ``POST /v3/conversations/{cid}/activities``        send  -> 201 ``{"id": new id}``

  botbuilder-python posts *proactive* messages as replies too: ``continue_conversation`` and
  ``create_conversation`` run a turn on a made-up event activity (a uuid id), and
  ``send_activity`` replies to it. Teams accepts that in a 1:1 chat, and so does this fake.
  So :meth:`FakeConnector.replies` counts only answers to an activity a user sent (the
  harness declares those with :meth:`FakeConnector.note_inbound`), and
  :meth:`FakeConnector.sent` every other post: what the bot sent on its own.
* ``PUT  /v3/conversations/{cid}/activities/{aid}``  update -> 200 ``{"id": aid}``
* ``DELETE /v3/conversations/{cid}/activities/{aid}`` delete -> 200
* ``POST /v3/conversations`` create a 1:1 chat (``members``, ``tenantId``, ``bot``) -> 201
  ``{"id": chat id}``. Teams keeps one 1:1 chat per bot and user: creating it again answers the
  same id, whether the member is named by their channel id (``29:…``, Bot Framework:
  ``members[].id`` is the user's channel account id) or by their Entra object id (Teams
  accepts that too); people registered with :meth:`FakeConnector.add_member` are known by
  both. So the chat id is deterministic per user (:func:`personal_chat_id`): the one a
  :class:`tests.harness.TeamsClient` of that user talks in. :meth:`created_per_user` counts
  the creations for each user.
* ``GET /v3/conversations/{cid}/members/{mid}``, ``GET .../members``, ``GET .../pagedmembers``:
  answered from the people registered with :meth:`FakeConnector.add_member` (botbuilder's
  ``TeamsActivityHandler`` looks up every non-bot member of a ``membersAdded`` this way).

In local mode (empty MicrosoftAppId) the bot sends no ``Authorization`` header; that is
accepted (the header, when present, is recorded). Every request is recorded as a
:class:`Call`; :meth:`fail_next` injects errors (429 with Retry-After, 403 blocked...).
The content of every message is kept (:meth:`message`): a PUT replaces it, as does a card
returned by an invoke (the harness calls :meth:`replace`, as Teams does in the client).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

CARD = "application/vnd.microsoft.card.adaptive"


def personal_chat_id(user_key: str, tenant_id: str = "") -> str:
    """The 1:1 chat id of a user (by aadObjectId), the same every time (like Teams)."""
    return f"a:personal-{tenant_id[-4:] or 'x'}-{user_key}"


def cards_of(activity: dict | None) -> list[dict]:
    """The Adaptive Cards attached to an activity."""
    if not activity:
        return []
    return [a.get("content") for a in activity.get("attachments") or []
            if isinstance(a, dict) and a.get("contentType") == CARD]


@dataclass
class Call:
    """One request the bot made."""

    method: str
    path: str
    kind: str  # reply | send | update | delete | create | members | other
    # (for "reply": whether it answers an activity a user sent; False = a proactive message)
    conversation_id: str | None
    activity_id: str | None  # the activity replied to / updated (URL), not the new one
    body: Any
    headers: dict[str, str]
    status: int = 0
    new_id: str | None = None  # the id answered (new activity or new conversation)
    answers_user: bool = False  # a reply to an activity a user sent (not a proactive message)

    @property
    def proactive(self) -> bool:
        return self.kind == "send" or (self.kind == "reply" and not self.answers_user)

    @property
    def activity(self) -> dict | None:
        return self.body if isinstance(self.body, dict) and self.kind in ("reply", "send", "update") else None

    @property
    def cards(self) -> list[dict]:
        return cards_of(self.activity)


@dataclass
class Member:
    id: str
    aad_object_id: str
    name: str
    tenant_id: str
    email: str | None = None

    def to_json(self) -> dict:
        out = {"id": self.id, "name": self.name, "aadObjectId": self.aad_object_id, "objectId": self.aad_object_id,
               "tenantId": self.tenant_id, "userRole": "user"}
        if self.email:
            out.update(email=self.email, userPrincipalName=self.email)
        return out


@dataclass
class _Fault:
    status: int
    count: int
    match: Callable[[web.Request], bool]
    body: dict
    headers: dict[str, str] = field(default_factory=dict)


class FakeConnector:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.members: dict[str, Member] = {}  # by id and by aadObjectId
        self.messages: dict[tuple[str, str], dict] = {}  # (conversation, activity id) -> latest activity
        self.inbound: set[tuple[str, str]] = set()  # (conversation, activity id) sent by users
        self._ids = itertools.count(1_700_000_000_001)
        self._faults: list[_Fault] = []
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeConnector:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/v3/conversations", self._create)
        app.router.add_post("/v3/conversations/{cid}/activities", self._send)
        app.router.add_post("/v3/conversations/{cid}/activities/{aid}", self._reply)
        app.router.add_put("/v3/conversations/{cid}/activities/{aid}", self._update)
        app.router.add_delete("/v3/conversations/{cid}/activities/{aid}", self._delete)
        app.router.add_get("/v3/conversations/{cid}/members/{mid}", self._member)
        app.router.add_get("/v3/conversations/{cid}/members", self._members)
        app.router.add_get("/v3/conversations/{cid}/pagedmembers", self._paged_members)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeConnector:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    @property
    def service_url(self) -> str:
        """What to put in an activity's ``serviceUrl`` (with the trailing slash Teams uses)."""
        return f"http://127.0.0.1:{self.port}/"

    # ------------------------------------------------------------------ set-up

    def add_member(self, member_id: str, aad_object_id: str, name: str, tenant_id: str,
                   email: str | None = None) -> Member:
        m = Member(member_id, aad_object_id, name, tenant_id, email)
        self.members[member_id] = m
        self.members[aad_object_id] = m
        return m

    def fail_next(self, status: int, count: int = 1, *, kind: str | None = None, conversation_id: str | None = None,
                  code: str = "Error", message: str = "injected failure", sub_code: str | None = None,
                  retry_after: float | None = None) -> None:
        """The next ``count`` matching requests (kind: reply/send/update/create...) fail with
        ``status`` and a Bot Framework error body; e.g. ``fail_next(429, retry_after=1)`` or
        ``fail_next(403, code="ConversationBlockedByUser", sub_code="MessageWritesBlocked")``."""

        def match(request: web.Request) -> bool:
            return ((kind is None or _kind(request) == kind)
                    and (conversation_id is None or request.match_info.get("cid") == conversation_id))

        error = {"code": code, "message": message}
        if sub_code:
            error["innerHttpError"] = {"statusCode": status, "body": {"subCode": sub_code}}
            error["message"] = f"{message} ({sub_code})"
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        self._faults.append(_Fault(status, count, match, {"error": error}, headers))

    def note_inbound(self, conversation_id: str, activity_id: str) -> None:
        """Declare an activity a user sent to the bot (a reply to it is an answer)."""
        self.inbound.add((conversation_id, activity_id))

    # ------------------------------------------------------------------ queries

    def mark(self) -> int:
        """A position in the record: ``since(mark)`` gives what was sent after it."""
        return len(self.calls)

    def since(self, mark: int, kind: str | None = None, conversation_id: str | None = None) -> list[Call]:
        return [c for c in self.calls[mark:] if (kind is None or c.kind == kind)
                and (conversation_id is None or c.conversation_id == conversation_id) and 200 <= c.status < 300]

    def _select(self, kind: str | tuple[str, ...], conversation_id: str | None) -> list[Call]:
        kinds = (kind,) if isinstance(kind, str) else kind
        return [c for c in self.calls if c.kind in kinds and 200 <= c.status < 300
                and (conversation_id is None or c.conversation_id == conversation_id)]

    def replies(self, conversation_id: str | None = None, to: str | None = None) -> list[dict]:
        """Activities the bot posted in answer to a user's activity (optionally to that one)."""
        return [c.body for c in self._select("reply", conversation_id)
                if c.answers_user and (to is None or c.activity_id == to)]

    def sent(self, conversation_id: str | None = None) -> list[dict]:
        """Activities the bot posted on its own (proactive messages, e.g. notifications)."""
        return [c.body for c in self._select(("reply", "send"), conversation_id) if c.proactive]

    def sent_calls(self, conversation_id: str | None = None) -> list[Call]:
        return [c for c in self._select(("reply", "send"), conversation_id) if c.proactive]

    def posted(self, conversation_id: str | None = None) -> list[dict]:
        """Every activity the bot posted (replies and sends), in order."""
        return [c.body for c in self._select(("reply", "send"), conversation_id)]

    def updates(self, conversation_id: str | None = None, activity_id: str | None = None) -> list[dict]:
        """Activities the bot PUT (card updates in place)."""
        return [c.body for c in self._select("update", conversation_id)
                if activity_id is None or c.activity_id == activity_id]

    def created(self) -> list[Call]:
        """The ``POST /v3/conversations`` calls (1:1 chats created); ``new_id`` is the chat."""
        return self._select("create", None)

    def created_per_user(self) -> dict[str, int]:
        """How many 1:1 chat creations Teams answered for each user (by object id when known)."""
        out: dict[str, int] = {}
        for c in self.created():
            member = (c.body.get("members") or [{}])[0].get("id")
            known = self.members.get(member)
            user = known.aad_object_id if known else member
            out[user] = out.get(user, 0) + 1
        return out

    def sent_per_conversation(self) -> dict[str, int]:
        """How many proactive messages each conversation received."""
        out: dict[str, int] = {}
        for c in self.sent_calls():
            out[c.conversation_id] = out.get(c.conversation_id, 0) + 1
        return out

    def message(self, conversation_id: str, activity_id: str) -> dict | None:
        """The message as it is now (after any update)."""
        return self.messages.get((conversation_id, activity_id))

    def card(self, conversation_id: str, activity_id: str) -> dict | None:
        cards = cards_of(self.message(conversation_id, activity_id))
        return cards[0] if cards else None

    def replace(self, conversation_id: str, activity_id: str, card: dict) -> None:
        """What a Teams client does with the card an invoke answers: it replaces the card in
        the message (no request reaches the connector for that)."""
        old = self.messages.get((conversation_id, activity_id)) or {"type": "message"}
        self.messages[(conversation_id, activity_id)] = dict(
            old, attachments=[{"contentType": CARD, "content": card}])

    # ------------------------------------------------------------------ handlers

    async def _record(self, request: web.Request, kind: str) -> tuple[Call, web.Response | None]:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        call = Call(method=request.method, path=request.path, kind=kind,
                    conversation_id=request.match_info.get("cid"),
                    activity_id=request.match_info.get("aid") or request.match_info.get("mid"), body=body,
                    headers={k: v for k, v in request.headers.items()
                             if k.lower() in ("authorization", "content-type", "user-agent")})
        self.calls.append(call)
        for fault in self._faults:
            if fault.count > 0 and fault.match(request):
                fault.count -= 1
                call.status = fault.status
                return call, web.json_response(fault.body, status=fault.status, headers=fault.headers)
        if body is not None and not isinstance(body, dict):
            call.status = 400
            return call, _error(400, "BadSyntax", "The body is not a JSON object.")
        return call, None

    def _new_id(self) -> str:
        return str(next(self._ids))

    async def _post_activity(self, request: web.Request, kind: str) -> web.Response:
        call, failed = await self._record(request, kind)
        if failed:
            return failed
        activity = call.body or {}
        if not isinstance(activity.get("type"), str):
            call.status = 400
            return _error(400, "BadSyntax", "An activity needs a type.")
        call.new_id = self._new_id()
        call.status = 201
        call.answers_user = kind == "reply" and (call.conversation_id, call.activity_id) in self.inbound
        self.messages[(call.conversation_id, call.new_id)] = dict(activity, id=call.new_id)
        return web.json_response({"id": call.new_id}, status=201)

    async def _send(self, request: web.Request) -> web.Response:
        return await self._post_activity(request, "send")

    async def _reply(self, request: web.Request) -> web.Response:
        return await self._post_activity(request, "reply")

    async def _update(self, request: web.Request) -> web.Response:
        call, failed = await self._record(request, "update")
        if failed:
            return failed
        key = (call.conversation_id, call.activity_id)
        if key not in self.messages:
            call.status = 404
            return _error(404, "ActivityNotFoundInConversation", "Unknown activity.")
        call.status = 200
        call.new_id = call.activity_id
        self.messages[key] = dict(call.body or {}, id=call.activity_id)
        return web.json_response({"id": call.activity_id})

    async def _delete(self, request: web.Request) -> web.Response:
        call, failed = await self._record(request, "delete")
        if failed:
            return failed
        call.status = 200
        self.messages.pop((call.conversation_id, call.activity_id), None)
        return web.Response(status=200)

    async def _create(self, request: web.Request) -> web.Response:
        call, failed = await self._record(request, "create")
        if failed:
            return failed
        body = call.body or {}
        members = body.get("members")
        # botbuilder-python writes "tenantID"; the service reads JSON case-insensitively
        tenant = next((v for k, v in body.items() if k.lower() == "tenantid" and v), None) or (
            (body.get("channelData") or {}).get("tenant") or {}).get("id")
        if (not isinstance(members, list) or len(members) != 1 or not isinstance(members[0], dict)
                or not members[0].get("id") or body.get("isGroup")):
            call.status = 400
            return _error(400, "BadArgument", "A 1:1 conversation needs exactly one member.")
        if not tenant:
            call.status = 400
            return _error(400, "BadArgument", "The tenant id is required.")
        if not isinstance(body.get("bot"), dict):
            call.status = 400
            return _error(400, "BadArgument", "The bot is required.")
        member_id = members[0]["id"]
        known = self.members.get(member_id)
        call.new_id = personal_chat_id(known.aad_object_id if known else member_id, tenant)
        call.status = 201
        out = {"id": call.new_id}
        if isinstance(body.get("activity"), dict):
            out["activityId"] = self._new_id()
            self.messages[(call.new_id, out["activityId"])] = dict(body["activity"], id=out["activityId"])
        return web.json_response(out, status=201)

    async def _member(self, request: web.Request) -> web.Response:
        call, failed = await self._record(request, "members")
        if failed:
            return failed
        m = self.members.get(request.match_info["mid"])
        if m is None:
            call.status = 404
            return _error(404, "MemberNotFoundInConversation", "The member is not in this conversation.")
        call.status = 200
        return web.json_response(m.to_json())

    def _distinct_members(self) -> list[dict]:
        seen, out = set(), []
        for m in self.members.values():
            if m.id not in seen:
                seen.add(m.id)
                out.append(m.to_json())
        return out

    async def _members(self, request: web.Request) -> web.Response:
        call, failed = await self._record(request, "members")
        if failed:
            return failed
        call.status = 200
        return web.json_response(self._distinct_members())

    async def _paged_members(self, request: web.Request) -> web.Response:
        call, failed = await self._record(request, "members")
        if failed:
            return failed
        call.status = 200
        return web.json_response({"members": self._distinct_members()})

    async def _unknown(self, request: web.Request) -> web.Response:
        call, _ = await self._record(request, "other")
        call.status = 404
        return _error(404, "NotFound", f"No such connector endpoint: {request.method} {request.path}")


def _kind(request: web.Request) -> str:
    path, method = request.path.rstrip("/"), request.method
    if method == "POST" and path == "/v3/conversations":
        return "create"
    if "/members" in path or "/pagedmembers" in path:
        return "members"
    if "aid" in request.match_info:
        return {"POST": "reply", "PUT": "update", "DELETE": "delete"}.get(method, "other")
    if method == "POST" and path.endswith("/activities"):
        return "send"
    return "other"


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)
