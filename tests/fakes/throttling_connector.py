"""A fake Bot Connector that throttles like Teams (wire-compatible with
:class:`tests.fakes.connector.FakeConnector`, which it extends).

Limits (per bot; Teams documents them as "subject to change"), over moving windows:

* per conversation ("thread"): 7 / 1 s, 8 / 2 s, 60 / 30 s, 1,800 / hour;
* per tenant: 30 / s.

Sends, replies, updates and conversation creations all count (a creation counts for the chat
it opens). The tenant of a request is read from the activity (``conversation.tenantId`` in
any case, ``channelData.tenant.id``), from a creation's ``tenantId``, or from what was learned
about the conversation (:meth:`set_tenant`, earlier creations). A request over a limit is
answered 429 with ``Retry-After`` (whole seconds until a slot frees) and recorded in
:attr:`violations`; only accepted requests count in the windows. ``enforce=False`` accepts it
anyway (still recorded), to see what unpaced sending does.

Faults, besides ``fail_next``: :meth:`block` (a user who blocked the bot: every send to their
chat and every creation for them answers 403 ``MessageWritesBlocked``), ``fault_rates``
(e.g. ``{502: 0.05, 504: 0.05}``, seeded), ``latency`` (seconds before answering).

Hooks for crash tests: ``on_arrival(call_info)`` is awaited when a POST/PUT arrives, before
anything is recorded (it may hold the request, or raise :class:`Dropped`: the request is
then neither recorded nor delivered); ``on_answered(call)`` is awaited once an accepted
message's answer has been written to the socket.

What was delivered: :meth:`deliveries` (accepted sends by ``channelData.notificationId``),
:attr:`accepted` (time, kind, tenant, conversation, notification id), :attr:`arrivals`
(time, tenant of every throttled-kind request, whatever its answer), :attr:`throttles`
(time, tenant, conversation, Retry-After of each 429), :attr:`max_in_flight` (per tenant: the
most requests it had in progress at once). Times are ``time.monotonic()``.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from tests.fakes.connector import Call, FakeConnector, personal_chat_id

CONVERSATION_LIMITS = ((7, 1.0), (8, 2.0), (60, 30.0), (1800, 3600.0))
TENANT_LIMITS = ((30, 1.0),)
THROTTLED_KINDS = ("send", "reply", "update", "create")


class Dropped(Exception):
    """Raised by an ``on_arrival`` hook: the request never reached Teams."""


@dataclass(frozen=True)
class Arrival:
    kind: str
    conversation_id: str | None
    tenant: str | None
    notification_id: str | None
    body: object


@dataclass(frozen=True)
class Violation:
    at: float
    scope: str  # "conversation" | "tenant"
    key: str
    limit: str  # e.g. "7/1s"
    kind: str


@dataclass(frozen=True)
class Accepted:
    at: float
    kind: str
    tenant: str | None
    conversation_id: str | None
    notification_id: str | None


def _ci(d: dict, name: str):
    """A key of a JSON object, case-insensitively (the service reads JSON that way)."""
    if not isinstance(d, dict):
        return None
    return next((v for k, v in d.items() if isinstance(k, str) and k.lower() == name.lower() and v), None)


def notification_id(body) -> str | None:
    data = body.get("channelData") if isinstance(body, dict) else None
    value = data.get("notificationId") if isinstance(data, dict) else None
    return str(value) if value is not None else None


class ThrottlingConnector(FakeConnector):
    def __init__(self, *, conversation_limits=CONVERSATION_LIMITS, tenant_limits=TENANT_LIMITS, enforce: bool = True,
                 fault_rates: dict[int, float] | None = None, latency: float = 0.0, seed: int = 0) -> None:
        super().__init__()
        self.conversation_limits = tuple(conversation_limits)
        self.tenant_limits = tuple(tenant_limits)
        self.enforce = enforce
        self.fault_rates = dict(fault_rates or {})
        self.latency = latency
        self._rng = random.Random(seed)
        self._times: dict[tuple[str, str], deque[float]] = {}
        self.tenants: dict[str, str] = {}  # conversation id -> tenant
        self.blocked: set[str] = set()  # aadObjectIds and conversation ids
        self.violations: list[Violation] = []
        self.throttles: list[tuple[float, str | None, str | None, int]] = []  # (at, tenant, chat, Retry-After)
        self.accepted: list[Accepted] = []
        self.arrivals: list[tuple[float, str | None]] = []
        self.faults_injected: Counter[int] = Counter()
        self.active = 0  # requests being handled (held by a hook included)
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.on_arrival: Callable[[Arrival], Awaitable[None]] | None = None
        self.on_answered: Callable[[Call], Awaitable[None]] | None = None

    # ------------------------------------------------------------------ set-up

    def set_tenant(self, conversation_id: str, tenant_id: str) -> None:
        self.tenants[conversation_id] = tenant_id

    def block(self, *keys: str) -> None:
        """These users (aadObjectId) or conversations blocked the bot."""
        self.blocked.update(keys)

    # ------------------------------------------------------------------ queries

    def deliveries(self) -> Counter[str]:
        """How many times each notification (``channelData.notificationId``) was accepted in a
        send or reply (an update in place is not a delivery)."""
        return Counter(a.notification_id for a in self.accepted
                       if a.kind in ("send", "reply") and a.notification_id is not None)

    def throttled(self) -> int:
        return sum(1 for c in self.calls if c.status == 429)

    # ------------------------------------------------------------------ the limits

    def _check(self, scope: str, key: str, limits, now: float, kind: str) -> float:
        """Seconds until ``key`` may take one more request (0: now); records a violation."""
        times = self._times.get((scope, key))
        wait = 0.0
        for count, window in limits:
            if times is not None and len(times) >= count and times[-count] > now - window:
                wait = max(wait, times[-count] + window - now)
                self.violations.append(Violation(now, scope, key, f"{count}/{window:g}s", kind))
        return wait

    def _count(self, scope: str, key: str, limits, now: float) -> None:
        times = self._times.get((scope, key))
        if times is None:
            times = self._times[(scope, key)] = deque(maxlen=max(n for n, _ in limits))
        times.append(now)

    # ------------------------------------------------------------------ request handling

    def _target(self, request: web.Request, kind: str, body) -> tuple[str | None, str | None]:
        """(conversation, tenant) of a request."""
        body = body if isinstance(body, dict) else {}
        if kind == "create":
            tenant = _ci(body, "tenantId") or ((body.get("channelData") or {}).get("tenant") or {}).get("id")
            members = body.get("members")
            member = members[0].get("id") if isinstance(members, list) and members and isinstance(
                members[0], dict) else None
            if not member or not tenant:
                return None, tenant
            known = self.members.get(member)
            return personal_chat_id(known.aad_object_id if known else member, tenant), tenant
        cid = request.match_info.get("cid")
        tenant = (_ci(body.get("conversation") or {}, "tenantId")
                  or ((body.get("channelData") or {}).get("tenant") or {}).get("id")
                  or self.tenants.get(cid or ""))
        return cid, tenant

    async def _record(self, request: web.Request, kind: str) -> tuple[Call, web.Response | None]:
        if kind not in THROTTLED_KINDS:
            return await super()._record(request, kind)
        raw = await request.read()  # (cached: the parent reads it again)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        conversation, tenant = self._target(request, kind, body)
        self.arrivals.append((time.monotonic(), tenant or self.tenants.get(conversation or "")))
        if self.on_arrival is not None:
            await self.on_arrival(Arrival(kind, conversation, tenant, notification_id(body), body))
        call, failed = await super()._record(request, kind)
        request["call"] = call
        if failed is not None:
            return call, failed
        if conversation and tenant:
            self.tenants.setdefault(conversation, tenant)
        member = None  # the user it goes to (aadObjectId when known)
        if kind == "create" and isinstance(body, dict) and isinstance(body.get("members"), list) and body["members"]:
            member = (body["members"][0] or {}).get("id")
        elif isinstance(body, dict) and isinstance(body.get("recipient"), dict):
            member = body["recipient"].get("aadObjectId") or body["recipient"].get("id")
        known = self.members.get(member or "")
        member = known.aad_object_id if known else member
        if (conversation in self.blocked or member in self.blocked) and kind in ("send", "reply", "create"):
            call.status = 403
            error = {"code": "ConversationBlockedByUser", "message": "User blocked the conversation with the bot.",
                     "innerHttpError": {"statusCode": 403, "body": {"subCode": "MessageWritesBlocked"}}}
            return call, web.json_response({"error": error}, status=403)
        now = time.monotonic()
        wait = 0.0
        if conversation:
            wait = self._check("conversation", conversation, self.conversation_limits, now, kind)
        if tenant:
            wait = max(wait, self._check("tenant", tenant, self.tenant_limits, now, kind))
        if wait > 0 and self.enforce:
            call.status = 429
            retry = max(1, math.ceil(wait))
            self.throttles.append((now, tenant, conversation, retry))
            return call, web.json_response(
                {"error": {"code": "Throttled", "message": "Too many requests; retry later."}},
                status=429, headers={"Retry-After": str(retry)})
        for status, rate in self.fault_rates.items():
            if self._rng.random() < rate:
                self.faults_injected[status] += 1
                call.status = status
                return call, web.json_response(
                    {"error": {"code": "ServiceError", "message": f"injected {status}"}}, status=status)
        if conversation:
            self._count("conversation", conversation, self.conversation_limits, now)
        if tenant:
            self._count("tenant", tenant, self.tenant_limits, now)
        self.accepted.append(Accepted(now, kind, tenant, conversation, notification_id(body)))
        return call, None

    async def _throttled(self, request: web.Request, kind: str, handler) -> web.StreamResponse:
        tenant_key = "?"
        self.active += 1
        try:
            try:
                response = await handler(request)
            except Dropped:
                return web.json_response({"error": {"code": "Dropped", "message": "never reached Teams"}},
                                         status=503)
            call: Call | None = request.get("call")
            if call is not None:
                tenant_key = self.tenants.get(call.conversation_id or call.new_id or "", "?")
                self.in_flight[tenant_key] += 1
                self.max_in_flight[tenant_key] = max(self.max_in_flight[tenant_key], self.in_flight[tenant_key])
                if self.latency:
                    await asyncio.sleep(self.latency)
            if call is not None and 200 <= call.status < 300 and self.on_answered is not None:
                await response.prepare(request)
                await response.write_eof()
                await self.on_answered(call)
            return response
        finally:
            self.active -= 1
            if request.get("call") is not None:
                self.in_flight[tenant_key] -= 1

    async def _send(self, request: web.Request) -> web.StreamResponse:
        return await self._throttled(request, "send", super()._send)

    async def _reply(self, request: web.Request) -> web.StreamResponse:
        return await self._throttled(request, "reply", super()._reply)

    async def _update(self, request: web.Request) -> web.StreamResponse:
        return await self._throttled(request, "update", super()._update)

    async def _create(self, request: web.Request) -> web.StreamResponse:
        return await self._throttled(request, "create", super()._create)
