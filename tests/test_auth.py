"""Who may call the bot, end to end and offline.

Production mode (a MicrosoftAppId): the app runs with botbuilder pointed, through its own
configuration settings, at a local OpenID metadata + JWKS + token endpoint
(:mod:`tests.fakes.openid`, HTTPS with a CA made in the test), and every activity carries an
RS256 token signed in the test. A good token gets the whole journey (replies go out with the
bot's own token, obtained from the fake with the app's password); every bad one gets 401 with
a bare body, a WARNING log line without the token, no turn, no audit row and no change.

ALLOWED_TENANTS: every activity type from another tenant is refused, audited and does nothing.
"""

from __future__ import annotations

import json
import logging
import socket
import time

import jwt
import pytest
from sqlalchemy import select

import bot.transport
from bot.auth import PUBLIC_CLOUD, botbuilder_settings
from core.config import Settings
from core.demo import TENANT
from core.models import DeliveryAddress
from tests.fakes.openid import AAD_ISSUER, APP_ID, APP_PASSWORD, CALLER_ID, FakeOpenId, production_desk
from tests.harness import (
    INVOKE_ERROR,
    audit_mark,
    audit_since,
    heading_of,
    pool_button,
    running_desk,
    snapshot,
    text_of,
)

OTHER_TENANT = "77777777-7777-7777-7777-777777777777"
UNAUTHORIZED = {"error": "Unauthorized."}


@pytest.fixture
def idp():
    with FakeOpenId(APP_ID, APP_PASSWORD) as fake:
        yield fake


@pytest.fixture
async def desk(idp, monkeypatch, db, clock):
    async with production_desk(idp, monkeypatch, db=db, clock=clock) as d:
        yield d


# ============================================================================ production mode: the good path


async def test_a_bot_connector_token_gets_the_whole_journey(desk, idp):
    alex = desk.admin()
    welcome = await alex.install()
    assert [heading_of(c) for c in welcome] == ["Welcome to License Desk"]
    [pools] = await alex.say("licenses")
    users = (await alex.act(pools, pool_button(pools, "Eco", "monthly"))).expect_card()  # an invoke
    assert heading_of(users) == "Eco (monthly): 24 users"

    # the keys came from the metadata's jwks_uri; the replies went out with the bot's own token,
    # obtained with its id and password (client credentials) from the configured login URL
    assert ("GET", "/v1/.well-known/openidconfiguration") in idp.requests
    assert ("GET", "/v1/.well-known/keys") in idp.requests
    assert ("GET", "/botframework.com/v2.0/.well-known/openid-configuration") in idp.requests  # msal's discovery
    assert idp.token_requests and all(
        r["grant_type"] == "client_credentials" and r["client_id"] == APP_ID and r["client_secret"] == APP_PASSWORD
        and r["scope"] == "https://api.botframework.com/.default" for r in idp.token_requests)
    replies = [c for c in desk.connector.calls if c.kind == "reply"]
    assert replies and {c.headers.get("Authorization") for c in replies} <= {f"Bearer {t}" for t in idp.issued}


# ============================================================================ production mode: refusals


def _bad_tokens(idp: FakeOpenId, service_url: str) -> list[tuple[str, str, str]]:
    """(case, Authorization header, what botbuilder alone does with it: raises PermissionError,
    raises another exception (a 500), or accepts it)."""
    now = int(time.time())
    su = service_url
    return [
        ("no header", "", "PermissionError"),
        ("empty bearer", "Bearer ", "DecodeError: 500"),
        ("another scheme", f"Basic {idp.token(su)}", "PermissionError"),
        ("not a jwt", "Bearer not.a.jwt", "DecodeError: 500"),
        ("two tokens", f"Bearer {idp.token(su)} {idp.token(su)}", "AttributeError: 500"),
        ("forged: same kid, another key", f"Bearer {idp.token(su, key=idp.rogue_key)}", "InvalidSignatureError: 500"),
        ("unknown kid", f"Bearer {idp.token(su, kid='no-such-key')}", "IndexError: 500"),
        ("no kid", f"Bearer {idp.token(su, kid=None)}", "IndexError: 500"),
        ("expired", f"Bearer {idp.token(su, exp=now - 3600, iat=now - 7200, nbf=now - 7200)}",
         "ExpiredSignatureError: 500"),
        ("not valid yet", f"Bearer {idp.token(su, nbf=now + 3600)}", "ImmatureSignatureError: 500"),
        ("wrong audience", f"Bearer {idp.token(su, aud='another-bot-app-id')}", "PermissionError"),
        ("no audience", f"Bearer {idp.token(su, aud=None)}", "PermissionError"),
        ("wrong issuer", f"Bearer {idp.token(su, iss='https://api.botframework.com.evil.example')}",
         "PermissionError"),
        ("wrong serviceurl", f"Bearer {idp.token('https://smba.evil.example/amer/')}", "PermissionError"),
        ("no serviceurl claim", f"Bearer {idp.token(su, serviceurl=None)}", "PermissionError"),
        ("key not endorsed for msteams", f"Bearer {idp.token(su, key=idp.other_channel_key)}", "Exception: 500"),
        ("HS256 signed with the app password", f"Bearer {idp.token(su, alg='HS256')}", "Exception: 500"),
        ("alg none", f"Bearer {jwt.encode(idp.claims(su), None, algorithm='none')}", "IndexError: 500"),
        ("Azure AD token for the bot's app id (emulator path)",
         f"Bearer {idp.token(key=idp.aad_key, iss=AAD_ISSUER, appid=APP_ID, ver='1.0', serviceurl=None)}",
         "accepted"),
        ("skill token", f"Bearer {idp.token(key=idp.aad_key, iss=AAD_ISSUER, azp='other', ver='2.0')}",
         "PermissionError"),
    ]


def _post(desk, activity: dict, header: str):
    return desk.post_raw("/api/messages", json.dumps(activity), headers={"Authorization": header} if header else {})


def _assert_refused(res, case: str):
    assert res.status == 401, f"{case}: HTTP {res.status} {res.text[:300]}"
    assert res.json() == UNAUTHORIZED, case
    assert res.headers.get("WWW-Authenticate") == "Bearer", case


def _assert_logged_without(caplog, case: str, secret: str, mark: int):
    records = [r for r in caplog.records[mark:] if r.name == "bot.guards" and r.levelno == logging.WARNING]
    assert len(records) == 1, f"{case}: {[r.getMessage() for r in records]}"
    assert "refused an unauthenticated request" in records[0].getMessage(), case
    token = secret.partition(" ")[2]
    for r in caplog.records[mark:]:
        assert not token or token not in r.getMessage(), f"{case}: the token is in the log ({r.name})"


async def test_every_bad_token_gets_401_and_nothing_happens(desk, idp, caplog):
    caplog.set_level(logging.DEBUG)
    alex = desk.admin()
    before, audit, mark = snapshot(desk.lic), audit_mark(desk.lic), desk.connector.mark()
    for kind in ("message", "invoke"):
        activity = alex.activity("message", text="licenses") if kind == "message" else alex.activity(
            "invoke", name="adaptiveCard/action", value={"action": {"type": "Action.Execute", "verb": "pools"}})
        for case, header, _botbuilder in _bad_tokens(idp, activity["serviceUrl"]):
            log_mark = len(caplog.records)
            res = await _post(desk, activity, header)
            _assert_refused(res, f"{kind}: {case}")
            _assert_logged_without(caplog, f"{kind}: {case}", header, log_mark)
    assert desk.connector.calls[mark:] == []  # no turn ran: nothing was sent
    assert audit_since(desk.lic, audit) == []
    assert snapshot(desk.lic) == before


async def test_what_botbuilder_alone_does_with_them(desk, idp):
    """The mapping above is needed: botbuilder (4.17) raises other exceptions than
    PermissionError for many bad tokens (an HTTP 500 in a handler that maps PermissionError
    only), and accepts an Azure AD token for the bot's own app id."""
    from botbuilder.schema import Activity

    bfa = desk.root.transport.adapter.bot_framework_authentication
    activity = Activity().deserialize(desk.admin().activity("message", text="licenses"))
    for case, header, expected in _bad_tokens(idp, activity.service_url):
        try:
            await bfa.authenticate_request(activity, header or None)
            outcome = "accepted"
        except PermissionError:
            outcome = "PermissionError"
        except Exception as e:
            outcome = f"{type(e).__name__}: 500"
        assert outcome == expected, case


async def test_the_activity_must_match_the_token(desk, idp):
    """botbuilder skips the serviceUrl check when the activity has no serviceUrl, and the
    endorsement check when it has no channelId: both are refused."""
    alex = desk.admin()
    good = alex.activity("message", text="licenses")
    token = f"Bearer {idp.token(good['serviceUrl'])}"
    mark = desk.connector.mark()
    cases = [
        ("no serviceUrl", {k: v for k, v in good.items() if k != "serviceUrl"}, token),
        ("another serviceUrl", dict(good, serviceUrl="https://smba.evil.example/"), token),
        ("no channelId, a key not endorsed for msteams",
         {k: v for k, v in good.items() if k != "channelId"},
         f"Bearer {idp.token(good['serviceUrl'], key=idp.other_channel_key)}"),
    ]
    for case, activity, header in cases:
        _assert_refused(await _post(desk, activity, header), case)
    assert desk.connector.calls[mark:] == []
    # and the same token with the activity it was made for goes through
    res = await _post(desk, good, token)
    assert res.status == 201


async def test_a_refusal_is_decided_before_the_body_is_read(desk, idp):
    """No token: 401 even for a body that is not JSON or is larger than the app accepts; a bad
    token: 401 before the activity is deserialized (an invalid one is not told apart)."""
    alex = desk.admin()
    huge = json.dumps(alex.activity("message", text="hi"))[:-1] + ', "n": ' + "7" * 5000 + "}"
    for body in (b"{not json", b"x" * (2 * 1024 * 1024), huge):
        res = await desk.post_raw("/api/messages", body)
        _assert_refused(res, f"{len(body)} bytes")
        # a header that cannot hold a token (RFC 6750 "Bearer" + an RFC 7515 compact JWS): the same
        for header in ("Bearer", "Bearer not-a-jwt", "Bearer a.b", "Bearer eyJub3Q.anNvbg.x", "bearer a.b.c",
                       "Bearer a.b.c d.e.f"):
            res = await desk.post_raw("/api/messages", body, headers={"Authorization": header})
            _assert_refused(res, f"{len(body)} bytes, {header!r}")
    # with a good token, an unparsable body (an integer over CPython's 4,300 digits) is a 400
    good_token = f"Bearer {idp.token(alex.activity('message')['serviceUrl'])}"
    res = await desk.post_raw("/api/messages", huge, headers={"Authorization": good_token})
    assert res.status == 400 and res.json() == {"error": "The body is not valid JSON."}, (res.status, res.text[:300])
    invalid = alex.activity("message", text="hi", attachments="not a list", entities=[1])
    forged = f"Bearer {idp.token(invalid['serviceUrl'], key=idp.rogue_key)}"
    _assert_refused(await _post(desk, invalid, forged), "invalid activity, forged token")
    good = f"Bearer {idp.token(invalid['serviceUrl'])}"
    assert (await _post(desk, invalid, good)).status == 400  # authenticated: now it is read, and refused


async def test_unreachable_metadata_is_503_not_a_pass(idp, monkeypatch, db, clock, caplog):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"https://127.0.0.1:{s.getsockname()[1]}/v1/.well-known/openidconfiguration"
    async with production_desk(idp, monkeypatch, db=db, clock=clock,
                               TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL=dead) as desk:
        alex = desk.admin()
        mark = desk.connector.mark()
        res = await alex.send(alex.activity("message", text="licenses"))
        assert res.status == 503 and "Unauthorized" not in res.text
        assert desk.connector.calls[mark:] == []


async def test_local_mode_is_unchanged(db, clock):
    """No app id: botbuilder's anonymous path (loopback callers only, tested elsewhere)."""
    async with running_desk(db=db, clock=clock) as desk:
        [card] = await desk.admin().say("licenses")
        assert heading_of(card).startswith("License pools")
        assert all("Authorization" not in c.headers for c in desk.connector.calls)


def test_botbuilder_settings():
    # production with nothing configured: Microsoft's public cloud, through botbuilder's
    # parameterized path (the one the tests run)
    prod = botbuilder_settings(Settings(MicrosoftAppId=APP_ID))
    assert prod == PUBLIC_CLOUD
    assert prod["TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL"] == (
        "https://login.botframework.com/v1/.well-known/openidconfiguration")
    assert prod["TO_CHANNEL_FROM_BOT_LOGIN_URL"] == "https://login.microsoftonline.com/"
    assert prod["CALLER_ID"] == CALLER_ID
    # one setting given: the others stay Microsoft's
    one = botbuilder_settings(Settings(MicrosoftAppId=APP_ID, OAUTH_URL="https://token.example/"))
    assert one == {**PUBLIC_CLOUD, "OAUTH_URL": "https://token.example/"}
    # a national cloud keeps botbuilder's built-in constants; local mode sets nothing
    assert botbuilder_settings(Settings(MicrosoftAppId=APP_ID, CHANNEL_SERVICE="https://botframework.azure.us")) == {
        "CHANNEL_SERVICE": "https://botframework.azure.us"}
    assert botbuilder_settings(Settings()) == {}
    assert botbuilder_settings(Settings(VALIDATE_AUTHORITY="false"))["VALIDATE_AUTHORITY"] is False
    config = bot.transport.bot_config(Settings(MicrosoftAppId=APP_ID, MicrosoftAppPassword="pw"))
    assert config.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER == "https://api.botframework.com" and config.APP_PASSWORD == "pw"


# ============================================================================ ALLOWED_TENANTS


@pytest.fixture
async def fenced(db, clock):
    """Contoso (the demo tenant) is not in ALLOWED_TENANTS."""
    async with running_desk(db=db, clock=clock, ALLOWED_TENANTS=f" {OTHER_TENANT.upper()} , ") as d:
        yield d


def _tenant_events(desk, mark):
    events = audit_since(desk.lic, mark)
    assert all(e.action == "tenant.refused" and e.outcome == "refused" and e.tenant_id == TENANT
               and e.target == TENANT for e in events), [(e.action, e.outcome, e.target) for e in events]
    return events


async def test_every_activity_type_from_another_tenant_is_refused_and_audited(fenced):
    desk = fenced
    alex = desk.admin()
    before = snapshot(desk.lic)
    router = desk.root.router
    assert router.actions, "the router has verbs"

    mark = audit_mark(desk.lic)
    cards = await alex.install()  # installationUpdate + conversationUpdate: one refusal, one audit
    assert [heading_of(c) for c in cards] == ["You are not set up yet"]
    assert "not available to your organisation" in text_of(cards[0])
    assert len(_tenant_events(desk, mark)) == 1

    mark = audit_mark(desk.lic)
    [card] = await alex.say("licenses")
    assert "not available to your organisation" in text_of(card)
    [card] = await alex.submit_value({"verb": "pools"})  # an Action.Submit
    assert "not available to your organisation" in text_of(card)
    assert len(_tenant_events(desk, mark)) == 2

    for verb in sorted(router.actions):  # every verb of every flow
        mark = audit_mark(desk.lic)
        reply = await alex.execute(verb, {"pool": 1, "quote": "0" * 32}, message_id=card.message_id)
        assert "not available to your organisation" in text_of(reply.expect_card()), verb
        assert len(_tenant_events(desk, mark)) == 1, verb

    mark = audit_mark(desk.lic)
    reply = await alex.invoke("application/search", {"queryText": "ad", "dataset": "pool_users:1",
                                                     "queryOptions": {"skip": 0, "top": 15}})
    assert reply.http_status == 200 and reply.value == {"results": []}
    reply = await alex.invoke("composeExtension/query", {"commandId": "x"})  # botbuilder would answer 501
    assert reply.http_status == 200 and reply.type == INVOKE_ERROR and reply.status_code == 403
    assert len(_tenant_events(desk, mark)) == 2

    # activities that get no answer: audited once (per conversation and type, for 5 minutes)
    mark, calls = audit_mark(desk.lic), desk.connector.mark()
    quiet = [alex.activity("messageReaction", reactionsAdded=[{"type": "like"}], replyToId=card.message_id),
             alex.activity("typing"),
             alex.activity("conversationUpdate", membersAdded=[{"id": "29:someone-else"}]),
             alex.activity("installationUpdate", action="remove"),
             alex.activity("event", name="application/vnd.microsoft.meetingStart")]
    for activity in quiet + quiet:
        res = await alex.send(activity)
        assert res.status < 300, (activity["type"], res.status, res.text)
    assert len(_tenant_events(desk, mark)) == len(quiet)
    assert desk.connector.calls[calls:] == []

    assert snapshot(desk.lic) == before
    with desk.lic.db.read() as s:
        assert s.scalars(select(DeliveryAddress)).all() == []  # nowhere to reach them was stored


async def test_an_activity_without_a_tenant_is_refused_when_tenants_are_fenced(db, clock):
    async with running_desk(db=db, clock=clock, ALLOWED_TENANTS=TENANT) as desk:
        alex = desk.admin()
        [card] = await alex.say("licenses")
        assert heading_of(card).startswith("License pools")  # the allowed tenant works
        mark = audit_mark(desk.lic)
        activity = alex.activity("message", text="licenses", channelData={})
        activity["conversation"].pop("tenantId")
        await alex.send(activity)
        [refusal] = desk.connector.replies(alex.conversation_id, to=activity["id"])
        assert "not available to your organisation" in json.dumps(refusal)
        [event] = audit_since(desk.lic, mark)
        assert event.action == "tenant.refused" and event.target == "(none)"
