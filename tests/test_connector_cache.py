"""bot/connector.py: connector clients and the bot's credentials are built once, not per turn;
sends go through one shared aiohttp session (closed on app cleanup); errors reach the caller
as the SDK raised them, with no retry hidden in the HTTP client. Counts only, no timings."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import Activity, ChannelAccount, ConversationAccount, ConversationReference
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import microsoft_app_credentials
from botframework.connector.models import ErrorResponseException

from bot.connector import LazyUserTokenClient, LicenseDeskAuthentication
from bot.notifier import classify
from tests.fakes.connector import FakeConnector
from tests.harness import pool_button, running_desk

APP_ID = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def built_clients(monkeypatch):
    """Counts ConnectorClient constructions (each one is an msrest Configuration + credentials)."""
    counter = {"n": 0}
    original = ConnectorClient.__init__

    def counting(self, *args, **kw):
        counter["n"] += 1
        original(self, *args, **kw)

    monkeypatch.setattr(ConnectorClient, "__init__", counting)
    return counter


class FakeMsal:
    """Stands in for msal.ConfidentialClientApplication: counts apps and token requests."""

    apps: list[FakeMsal] = []

    def __init__(self, client_id, client_credential=None, authority=None, **kw):
        self.client_id = client_id
        self.token_requests = 0
        self._cache = None
        FakeMsal.apps.append(self)

    def acquire_token_silent(self, scopes, account=None):
        return self._cache

    def acquire_token_for_client(self, scopes):
        self.token_requests += 1
        self._cache = {"access_token": f"token-{len(FakeMsal.apps)}-{self.token_requests}", "expires_in": 3600}
        return self._cache


@pytest.fixture
def fake_msal(monkeypatch):
    FakeMsal.apps = []
    monkeypatch.setattr(microsoft_app_credentials, "ConfidentialClientApplication", FakeMsal)
    return FakeMsal


def _auth(app_id: str = "") -> LicenseDeskAuthentication:
    return LicenseDeskAuthentication(SimpleNamespace(APP_ID=app_id, APP_PASSWORD="secret" if app_id else "",
                                                     APP_TYPE="MultiTenant", APP_TENANTID=""))


def _auth_of(desk) -> LicenseDeskAuthentication:
    auth = desk.root.transport.adapter.bot_framework_authentication
    assert isinstance(auth, LicenseDeskAuthentication)
    return auth


async def test_turns_build_one_connector_client_per_service_url(desk, built_clients, monkeypatch):
    token_clients = {"n": 0}
    real_parent = LicenseDeskAuthentication.__mro__[1].create_user_token_client

    async def counting_parent(self, claims):
        token_clients["n"] += 1
        return await real_parent(self, claims)

    monkeypatch.setattr(LicenseDeskAuthentication.__mro__[1], "create_user_token_client", counting_parent)
    alex = desk.admin()
    for _ in range(5):
        assert len(await alex.say("help")) == 1
    [pools] = await alex.say("licenses")
    for _ in range(3):
        (await alex.act(pools, pool_button(pools, "Eco", "monthly"))).expect_card()  # invokes
    assert built_clients["n"] == 1
    async with FakeConnector() as other:  # a second service URL (another Teams region)
        for _ in range(3):
            res = await alex.send(alex.activity("message", text="help", serviceUrl=other.service_url))
            assert res.status < 300
        assert len(other.since(0, kind="reply")) == 3
    assert built_clients["n"] == 2
    assert len(_auth_of(desk).connectors) == 2
    assert token_clients["n"] == 0  # the user token client is built on first use only: never here


async def test_proactive_turns_reuse_the_bots_credentials_and_token(fake_msal, built_clients):
    """A configured app id (as in production): N proactive sends, through a new connector
    factory each (as continue_conversation does), make 1 client, 1 msal app, 1 token request."""
    auth = _auth(APP_ID)
    adapter = CloudAdapter(auth)
    async with FakeConnector() as teams, FakeConnector() as other:
        for n in range(6):
            url = teams.service_url if n % 2 == 0 else other.service_url
            ref = ConversationReference(service_url=url, channel_id="msteams",
                                        conversation=ConversationAccount(id=f"a:chat-{n}"),
                                        bot=ChannelAccount(id=f"28:{APP_ID}"))

            async def send(tc, n=n):
                await tc.send_activity(Activity(type="message", text=f"notice {n}"))

            await adapter.continue_conversation(ref, send, APP_ID)
        calls = teams.calls + other.calls
        assert len(calls) == 6 and all(c.status == 201 for c in calls)
        assert {c.headers.get("Authorization") for c in calls} == {"Bearer token-1-1"}
        assert all("BotBuilder Python" in c.headers.get("User-Agent", "") for c in calls)
    assert built_clients["n"] == 2  # one per service URL
    assert len(fake_msal.apps) == 1 and fake_msal.apps[0].token_requests == 1
    await auth.close()


async def test_local_mode_sends_no_authorization_header(built_clients):
    auth = _auth("")
    factory = auth.create_connector_factory(CloudAdapter(auth).create_claims_identity(""))
    async with FakeConnector() as teams:
        client = await factory.create(teams.service_url, None)
        await client.conversations.send_to_conversation("a:chat", Activity(type="message", text="hi"))
        assert "Authorization" not in teams.calls[0].headers
    await auth.close()


async def test_a_429_reaches_the_caller_with_retry_after_and_is_not_retried():
    auth = _auth("")
    factory = auth.create_connector_factory(CloudAdapter(auth).create_claims_identity(""))
    async with FakeConnector() as teams:
        client = await factory.create(teams.service_url, None)
        teams.fail_next(429, retry_after=7)
        with pytest.raises(ErrorResponseException) as caught:
            await client.conversations.send_to_conversation("a:chat", Activity(type="message", text="hi"))
        assert len(teams.calls) == 1  # exactly one request: no retry inside the HTTP client
        response = caught.value.response
        assert response.status_code == 429 and response.headers["Retry-After"] == "7"
        failure = classify(caught.value)
        assert failure.status == 429 and failure.retry_after == 7.0 and not failure.blocked

        teams.fail_next(403, code="ConversationBlockedByUser", sub_code="MessageWritesBlocked")
        with pytest.raises(ErrorResponseException) as caught:
            await client.conversations.reply_to_activity("a:chat", "1", Activity(type="message", text="hi"))
        assert len(teams.calls) == 2
        assert "MessageWritesBlocked" in caught.value.response.text
        assert classify(caught.value).blocked

        teams.fail_next(503)
        with pytest.raises(ErrorResponseException):
            await client.conversations.send_to_conversation("a:chat", Activity(type="message", text="hi"))
        assert len(teams.calls) == 3
        ok = await client.conversations.send_to_conversation("a:chat", Activity(type="message", text="hi"))
        assert ok.id and len(teams.calls) == 4
    await auth.close()


async def test_the_shared_session_is_closed_on_app_cleanup(db, clock):
    async with running_desk(db=db, clock=clock) as desk:
        auth = _auth_of(desk)
        assert auth.session.closed  # created lazily: nothing sent yet
        alex = desk.admin()
        await alex.say("help")
        await alex.say("help")
        assert auth.session.created == 1 and not auth.session.closed
        session = auth.session.get()
    assert session.closed and auth.session.closed


async def test_the_user_token_client_is_lazy(monkeypatch):
    auth = _auth("")
    built = []

    async def build(self, claims):
        built.append(claims)
        return "the real client"

    monkeypatch.setattr(LicenseDeskAuthentication.__mro__[1], "create_user_token_client", build)
    client = await auth.create_user_token_client(CloudAdapter(auth).create_claims_identity(""))
    assert isinstance(client, LazyUserTokenClient) and not client.built and built == []
    assert await client._inner() == "the real client" and await client._inner() == "the real client"
    assert len(built) == 1


def test_the_fast_serializer_writes_what_msrest_writes():
    """Plain-JSON values (cards) pass through as they are; anything else goes through msrest."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from botbuilder.core import CardFactory, MessageFactory

    from bot.serialization import FastSerializer

    stock = ConnectorClient(microsoft_app_credentials.MicrosoftAppCredentials.empty(), base_url="http://x/")._serialize
    fast = FastSerializer(stock.dependencies)
    card = {"type": "AdaptiveCard", "version": "1.5", "body": [
        {"type": "TextBlock", "text": f"row {i} é😀", "wrap": True, "n": i, "f": 1.5, "none": None,
         "items": [{"type": "Action.Execute", "data": {"ids": [1, 2, 3], "ok": False}}]} for i in range(30)]}
    reply = MessageFactory.attachment(CardFactory.adaptive_card(card))
    reply.conversation = ConversationAccount(id="a:chat")
    reply.channel_data = {"tenant": {"id": "t"}, "when": datetime(2026, 3, 10, tzinfo=UTC), "cost": Decimal("1.50")}
    reply.value = [{"nested": ChannelAccount(id="29:x", name="X")}, "text", 3]
    assert fast.body(reply, "Activity") == stock.body(reply, "Activity")
    assert fast.body(reply, "Activity")["attachments"][0]["content"] is card  # passed through, not rebuilt
