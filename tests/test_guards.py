"""The transport guards (bot/guards.py), one unit at a time: what each refuses, that a refusal
stops the chain (nothing after it runs: no body read, no turn), and the order of each chain.
The journeys through them are in test_auth.py, test_bot_refusals.py and test_tamper.py."""

from __future__ import annotations

import asyncio
import json
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request
from botbuilder.schema import Activity, ConversationAccount

from bot import guards
from bot.auth import AuthUnavailable, Unauthorized
from bot.guards import (
    Inbound,
    Jwt,
    RateLimit,
    TenantAllowList,
    bearer_present,
    loopback_caller,
    loopback_service_url,
    read_activity,
    read_body,
    request_chain,
    request_steps,
    turn_guards,
)
from bot.ratelimit import RateLimiter
from core.views import Actor
from dialogs.base import Turn

JWS = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"  # a JOSE header that decodes; not a valid token
TENANT = "11111111-1111-1111-1111-111111111111"


def payload(data: bytes) -> StreamReader:
    """A request body as aiohttp holds it (all received)."""
    stream = StreamReader(mock.Mock(_reading_paused=False), 2 ** 16, loop=asyncio.get_running_loop())
    if data:
        stream.feed_data(data)
    stream.feed_eof()
    return stream


def request(*, remote: str = "127.0.0.1", headers: dict | None = None, body: bytes = b"") -> web.Request:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (remote, 1234) if name == "peername" else default
    return make_mocked_request("POST", "/api/messages", headers=headers or {}, transport=transport,
                               payload=payload(body))


class Next:
    """The rest of the chain: records that it ran."""

    def __init__(self):
        self.seen: list[Inbound] = []

    async def __call__(self, inbound: Inbound) -> web.Response:
        self.seen.append(inbound)
        return web.Response(status=299)


# ============================================================================ request guards


async def test_loopback_caller_refuses_any_other_address():
    nxt = Next()
    assert (await loopback_caller(Inbound(request(remote="10.0.0.5"), ""), nxt)).status == 403
    assert (await loopback_caller(Inbound(request(remote="::1"), ""), nxt)).status == 299
    assert len(nxt.seen) == 1


async def test_bearer_presence_refuses_before_the_body_is_read():
    for header in ("", "Basic abc", "Bearer not-a-jws", "Bearer a.b.c"):
        nxt, req = Next(), request(headers={"Authorization": header}, body=b'{"type": "message"}')
        res = await bearer_present(Inbound(req, header), nxt)
        assert res.status == 401 and res.headers["WWW-Authenticate"] == "Bearer", header
        assert not nxt.seen and not req.content.at_eof(), header  # (the body unread)
    nxt = Next()
    assert (await bearer_present(Inbound(request(), f"Bearer {JWS}"), nxt)).status == 299


async def test_the_body_must_be_a_json_activity():
    def inbound(body: bytes, content_type: str = "application/json") -> Inbound:
        return Inbound(request(headers={"Content-Type": content_type}, body=body), "")

    nxt = Next()
    assert (await read_body(inbound(b"{}", "text/plain"), nxt)).status == 415
    assert (await read_body(inbound(b"{not json"), nxt)).status == 400
    assert (await read_body(inbound(b'["type"]'), nxt)).status == 400
    assert (await read_body(inbound(b'{"type": 3}'), nxt)).status == 400
    assert not nxt.seen
    assert (await read_body(inbound(b'{"type": "message", "text": "hi"}'), nxt)).status == 299
    assert nxt.seen[0].body == {"type": "message", "text": "hi"}


async def test_the_activity_is_deserialized_with_its_value_as_sent():
    nxt = Next()
    value = {"action": {"verb": "x", "data": {"deep": [1, {"a": None}]}}}
    body = {"type": "invoke", "serviceUrl": "http://127.0.0.1:1/", "value": value}
    assert (await read_activity(Inbound(request(), "", body=body), nxt)).status == 299
    activity = nxt.seen[0].activity
    assert activity.type == "invoke" and activity.service_url == "http://127.0.0.1:1/" and activity.value is value
    assert (await read_activity(Inbound(request(), "", body={"type": "message", "from": 7}), Next())).status == 400


async def test_local_mode_replies_to_a_loopback_service_url_only():
    for url, status in (("http://127.0.0.1:3978/", 299), ("https://localhost/", 299), ("http://169.254.169.254/", 400),
                        ("file:///etc/passwd", 400), (None, 400)):
        inbound = Inbound(request(), "", activity=Activity(type="message", service_url=url))
        assert (await loopback_service_url(inbound, Next())).status == status, url


async def test_jwt_checks_the_envelope_before_the_activity_exists(monkeypatch):
    """Production: the token is checked against type, serviceUrl and channelId of the body,
    before it is deserialized; its result goes on with the request."""
    calls = []

    async def authenticate(bfa, activity, header, *, required, issuer):
        calls.append((activity, header, required, issuer))
        if header != f"Bearer {JWS}":
            raise Unauthorized("bad signature")
        return "auth-result"

    monkeypatch.setattr(guards, "authenticate", authenticate)
    jwt = Jwt(object(), required=True, issuer="https://api.botframework.com")
    body = {"type": "message", "serviceUrl": "https://smba.example/", "channelId": "msteams", "text": "hi"}
    nxt = Next()
    assert (await jwt(Inbound(request(), f"Bearer {JWS}", body=body), nxt)).status == 299
    envelope = calls[0][0]
    assert (envelope.type, envelope.service_url, envelope.channel_id, envelope.text) == (
        "message", "https://smba.example/", "msteams", None)
    assert nxt.seen[0].auth == "auth-result" and nxt.seen[0].activity is None
    assert (await jwt(Inbound(request(), "Bearer x.y.z", body=body), nxt)).status == 401
    assert len(nxt.seen) == 1


async def test_jwt_answers_503_when_the_keys_cannot_be_fetched(monkeypatch):
    async def authenticate(*args, **kwargs):
        raise AuthUnavailable("ConnectionError")

    monkeypatch.setattr(guards, "authenticate", authenticate)
    res = await Jwt(object(), required=True, issuer="i")(Inbound(request(), "", body={"type": "message"}), Next())
    assert res.status == 503


def test_each_chain_applies_each_guard_once_in_its_order():
    production = request_steps(object(), production=True, issuer="i")
    assert [type(s) if isinstance(s, Jwt) else s for s in production] == [
        bearer_present, read_body, Jwt, read_activity]
    local = request_steps(object(), production=False, issuer="i")
    assert [type(s) if isinstance(s, Jwt) else s for s in local] == [
        loopback_caller, read_body, read_activity, loopback_service_url, Jwt]
    assert [s.required for s in production + local if isinstance(s, Jwt)] == [True, False]


async def test_a_chain_stops_at_its_first_refusal():
    ran = []

    def step(name: str, status: int | None = None):
        async def run(inbound, call_next):
            ran.append(name)
            return web.Response(status=status) if status else await call_next(inbound)
        return run

    async def endpoint(inbound):
        ran.append("endpoint")
        return web.Response(status=201)

    assert (await request_chain([step("a"), step("b")], endpoint)(request())).status == 201
    assert ran == ["a", "b", "endpoint"]
    ran.clear()
    assert (await request_chain([step("a", 403), step("b")], endpoint)(request())).status == 403
    assert ran == ["a"]


# ============================================================================ turn guards


class Context:
    """What a turn guard uses of a TurnContext: the activity, and what is sent back."""

    def __init__(self, activity: Activity):
        self.activity = activity
        self.sent: list[Activity] = []

    async def send_activity(self, activity):
        self.sent.append(activity)


class AuditLog:
    def __init__(self):
        self.refusals: list[tuple] = []

    def record_refusal(self, actor, action, error, target=None):
        self.refusals.append((actor.tenant_id, action, target))


class Core:
    """What the turn guards use of the core: its audit log."""

    def __init__(self):
        self.audit = AuditLog()

    @property
    def refusals(self) -> list[tuple]:
        return self.audit.refusals


def turn(tenant: str = TENANT) -> Turn:
    return Turn(actor=Actor(tenant, "aad-1"), locale="en-US")


def activity(kind: str = "message", **kw) -> Activity:
    return Activity(type=kind, conversation=ConversationAccount(id="conv-1"), **kw)


async def test_the_tenant_allow_list_lets_its_tenants_through_and_refuses_the_others_once_each():
    lic = Core()
    guard = TenantAllowList(frozenset({TENANT}), lic)
    tc = Context(activity())
    assert await guard(tc, "message", turn()) is False and not tc.sent and not lic.refusals
    assert await guard(tc, "message", turn("other")) is True
    [card] = tc.sent
    assert json.dumps(card.attachments[0].content).count("not available to your organisation")
    assert lic.refusals == [("other", "tenant.refused", "other")]
    tc = Context(activity("installationUpdate", action="add"))
    assert await guard(tc, "install", turn("other")) and await guard(tc, "install", turn("other"))
    assert len(tc.sent) == 1 and len(lic.refusals) == 2  # installationUpdate + conversationUpdate: one card
    tc = Context(activity("event"))
    assert await guard(tc, "other", turn("other")) and await guard(tc, "other", turn("other"))
    assert not tc.sent and len(lic.refusals) == 3  # not answered; audited once in 5 minutes


async def test_the_rate_limit_answers_over_the_limit_and_audits_the_first_refusal():
    lic = Core()
    guard = RateLimit(RateLimiter("2/minute", "off"), lic)
    tc = Context(activity())
    assert [await guard(tc, "message", turn()) for _ in range(2)] == [False, False]
    assert await guard(tc, "message", turn()) and await guard(tc, "message", turn())
    assert len(tc.sent) == 1 and lic.refusals == [(TENANT, "rate.limited", "message:")]  # a flood: one answer
    assert await guard(tc, "install", turn()) is False  # installs and other activities are not counted
    assert await guard(tc, "search", turn()) is False  # searches: their own budget (here off)


@pytest.mark.parametrize(("limiter", "allowed", "expected"), [
    (None, frozenset(), []),
    (RateLimiter(), frozenset(), [RateLimit]),
    (None, frozenset({TENANT}), [TenantAllowList]),
    (RateLimiter(), frozenset({TENANT}), [RateLimit, TenantAllowList]),  # the limit first: a refused flood
])                                                                      # writes a few audit rows, not one each
def test_turn_guards_rate_limit_then_tenant(limiter, allowed, expected):
    assert [type(g) for g in turn_guards(Core(), limiter=limiter, allowed_tenants=allowed)] == expected
