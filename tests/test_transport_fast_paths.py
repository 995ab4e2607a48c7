"""The transport's fast paths give what the slow ones gave: msrest's (de)serialisation of
activities, botbuilder's copy of outgoing cards, the proxy settings, the notifier's wake-ups,
the delivery-address memory, and a quote's payment link stored with its posted card."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from unittest import mock

import pytest
from botbuilder.core import CardFactory, MessageFactory, TurnContext
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    CardAction,
    ChannelAccount,
    ConversationParameters,
    Entity,
    Mention,
    SuggestedActions,
)
from botframework.connector import models as connector_models
from msrest import Serializer
from sqlalchemy import func, select
from yarl import URL

from bot import invoke
from bot.addresses import address_key, address_of
from bot.connector import SharedSession
from bot.handler import ActivityTurn
from bot.notifier import Notifier
from bot.serialization import FastDeserializer, FastSerializer, SharedJson, _unshared
from core.errors import QuoteNotOpen
from core.models import Payment, Pool, PostedCard, Subscription
from core.views import ChatAddress

CARD = {"type": "AdaptiveCard", "version": "1.5",
        "body": [{"type": "TextBlock", "text": "héllo \u2028", "n": 1.5, "b": True, "x": None, "l": [1, "2"]}]}
TEAMS_MESSAGE = {
    "type": "message", "id": "1709287872123", "text": "<at>License Desk</at> hi", "textFormat": "plain",
    "timestamp": "2024-03-01T10:11:12.1234567Z", "localTimestamp": "2024-03-01T11:11:12.123+01:00",
    "channelId": "msteams", "serviceUrl": "https://smba.trafficmanager.net/emea/", "locale": "fr-FR",
    "localTimezone": "Europe/Paris",
    "from": {"id": "29:1abc", "name": "Alex", "aadObjectId": "0000", "userRole": "user"},
    "conversation": {"conversationType": "personal", "tenantId": "t", "id": "a:1xyz", "isGroup": False},
    "recipient": {"id": "28:bot", "name": "License Desk"},
    "entities": [{"locale": "en-US", "country": "US", "platform": "Web", "type": "clientInfo"},
                 {"mentioned": {"id": "28:bot", "name": "License Desk"}, "text": "<at>License Desk</at>",
                  "type": "mention"}],
    "channelData": {"tenant": {"id": "t"}, "source": {"name": "message"}, "n": None, "l": [1, 2.5, None, True]},
    "attachments": [{"contentType": "text/html", "content": "<div>hi</div>"}],
}


def _models() -> dict:
    return {k: v for k, v in connector_models.__dict__.items() if isinstance(v, type)}


def _reply(content, **changes) -> Activity:
    incoming = Activity().deserialize(TEAMS_MESSAGE)
    out = MessageFactory.attachment(CardFactory.adaptive_card(content))
    out = TurnContext.apply_conversation_reference(out, TurnContext.get_conversation_reference(incoming))
    out.input_hint, out.id = "acceptingInput", None
    for name, value in changes.items():
        setattr(out, name, value)
    return out


def _outgoing() -> dict:
    now = datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    return {
        "card": _reply(CARD),
        "shared card": _reply(SharedJson(CARD)),
        "card that is not plain JSON": _reply(SharedJson({"a": Decimal("1.5"), "d": now, "in": SharedJson({"x": 1})})),
        "entities and actions": _reply(CARD, entities=[Mention(mentioned=ChannelAccount(id="1", name="n"),
                                                                text="<at>n</at>", type="mention"), Entity(type="x")],
                                       suggested_actions=SuggestedActions(to=["a"], actions=[
                                           CardAction(type="imBack", title="t", value={"k": 1})])),
        "dates": _reply(CARD, timestamp=now, local_timestamp=now.astimezone(timezone(timedelta(hours=2)))),
        "a dict where a model is declared": _reply(CARD, attachments=[{"contentType": "x", "content": {"a": 1}}]),
        "None in a list": _reply(CARD, attachments=[None]),
        "channel data": _reply(CARD, channel_data={"notificationId": "5", "tenant": {"id": "t"}}, value=[1, None]),
        "an enum": _reply(CARD, type=ActivityTypes.invoke_response),
        "an int where a str is declared": _reply(CARD, importance=3),
        "incoming": Activity().deserialize(TEAMS_MESSAGE),
        "empty": Activity(),
    }


@pytest.mark.parametrize("name", list(_outgoing()))
def test_fast_serializer_writes_what_msrest_writes(name):
    activity = _outgoing()[name]
    expected = copy.deepcopy(activity)  # msrest itself knows exact dicts only
    for attachment in expected.attachments or []:
        if attachment is not None and hasattr(attachment, "content"):
            attachment.content = _unshared(attachment.content)
    slow = json.dumps(Serializer(_models()).body(expected, "Activity"), default=str)
    assert json.dumps(FastSerializer(_models()).body(copy.deepcopy(activity), "Activity"), default=str) == slow


def test_fast_serializer_takes_the_fast_path_for_replies_and_conversation_parameters():
    fast = FastSerializer(_models())
    params = ConversationParameters(is_group=False, bot=ChannelAccount(id="28:x"), members=[ChannelAccount(id="u")],
                                    tenant_id="t", channel_data={"tenant": {"id": "t"}})
    with mock.patch.object(Serializer, "body", side_effect=AssertionError("msrest's path")):
        for name in ("shared card", "entities and actions", "dates", "an enum"):
            fast.body(_outgoing()[name], "Activity")
        body = fast.body(params, "ConversationParameters")
    assert body == Serializer(_models()).body(copy.deepcopy(params), "ConversationParameters")


def test_a_shared_card_is_not_copied_and_serialises_as_a_dict():
    card = SharedJson(CARD)
    reply = copy.deepcopy(_reply(card))  # what TurnContext.send_activities does
    assert reply.attachments[0].content is card
    body = invoke.card_response(CARD).body
    assert copy.deepcopy(body) is body and body["value"] is CARD
    assert json.dumps(body) == json.dumps({"statusCode": 200, "type": invoke.CARD, "value": CARD})


WEIRD = {
    "a number where a string is declared": {"text": 5}, "a string where a bool is": {"historyDisclosed": "true"},
    "1 for a bool": {"historyDisclosed": 1}, "a string where a model is": {"from": "x"},
    "a bad date": {"timestamp": "nope"}, "a date without fraction": {"timestamp": "2024-01-01T00:00:00Z"},
    "nine digits of fraction": {"timestamp": "2024-01-01T00:00:00.123456789Z"},
    "keys nobody declares": {"extra": {"a": 1}, "recipient": {"id": "x", "zzz": 1}},
    "a dict where a list is": {"membersAdded": {"id": 1}}, "a dict type": {"semanticAction": {
        "id": "s", "entities": {"a": {"type": "x"}}, "state": "start"}},
    "None in lists": {"listenFor": ["a", None], "entities": [None, {"type": "x"}]},
    "nested models": {"relatesTo": {"activityId": "1", "user": {"id": "u"}, "bot": {"id": "b"}},
                      "suggestedActions": {"to": ["a"], "actions": [{"type": "imBack", "value": {"a": [1]}}]}},
    "year 0": {"timestamp": "0000-01-01T00:00:00Z"}, "all null": dict.fromkeys(TEAMS_MESSAGE),
}


@pytest.mark.parametrize("name", ["teams message", "empty", *WEIRD])
def test_fast_deserializer_reads_what_msrest_reads(name):
    body = TEAMS_MESSAGE if name == "teams message" else {} if name == "empty" else {**TEAMS_MESSAGE, **WEIRD[name]}

    def read(fn):
        try:
            return fn(copy.deepcopy(body)), None
        except Exception as e:  # noqa: BLE001 - the same error is expected
            return None, type(e)

    slow, slow_error = read(Activity().deserialize)
    fast, fast_error = read(FastDeserializer(Activity))
    assert fast_error is slow_error
    if slow is not None:
        assert fast == slow  # msrest models compare their whole __dict__, additional_properties included
        assert json.dumps(fast.as_dict(), default=str, sort_keys=True) == json.dumps(slow.as_dict(), default=str,
                                                                                     sort_keys=True)


def test_fast_deserializer_takes_the_fast_path_for_a_teams_message():
    with mock.patch.object(Activity, "deserialize", side_effect=AssertionError("msrest's path")):
        activity = FastDeserializer(Activity)(TEAMS_MESSAGE)
    assert activity.entities[0].additional_properties["country"] == "US"
    assert activity.channel_data == TEAMS_MESSAGE["channelData"]
    assert activity.channel_data is not TEAMS_MESSAGE["channelData"]  # copied, as msrest copies it


def test_proxy_settings_are_read_once_and_no_proxy_is_honoured(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    for name in ("https_proxy", "http_proxy", "HTTP_PROXY", "no_proxy", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    shared = SharedSession()
    monkeypatch.delenv("HTTPS_PROXY")  # read once: later changes do not count
    proxy, auth = shared.proxy_for("https://smba.trafficmanager.net/emea/v3/conversations")
    assert proxy == URL("http://proxy.example:3128") and auth.login == "user" and auth.password == "pw"
    assert shared.proxy_for("http://127.0.0.1:4000/v3/conversations") == (None, None)
    assert shared.proxy_for("http://smba.trafficmanager.net/x") == (None, None)  # no HTTP_PROXY


def test_without_a_proxy_the_session_does_not_read_the_environment(monkeypatch):
    for name in ("https_proxy", "http_proxy", "HTTPS_PROXY", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)

    async def check():
        shared = SharedSession()
        try:
            assert shared.proxy_for("https://smba.trafficmanager.net/x") == (None, None)
            assert shared.get().trust_env is False
        finally:
            await shared.close()

    asyncio.run(check())


async def test_turns_wake_the_notifier_at_most_once_per_interval():
    notifier = Notifier(None, None, None)
    notifier.turn_wake_interval = 0.2
    notifier.poke()
    assert notifier.wake.is_set()  # the first turn: at once
    notifier.wake.clear()
    for _ in range(5):
        notifier.poke()
    assert not notifier.wake.is_set()  # within the interval: once, at its end
    await asyncio.wait_for(notifier.wake.wait(), 1.0)
    notifier.wake.clear()
    await asyncio.sleep(0.3)
    assert not notifier.wake.is_set()  # the pokes were not lost, nor counted twice
    notifier.poke()
    assert notifier.wake.is_set()


def test_the_address_key_changes_with_the_address():
    base = Activity().deserialize(TEAMS_MESSAGE)
    same = Activity().deserialize(TEAMS_MESSAGE)
    assert address_key(base) == address_key(same)
    for change in ({"locale": "en-GB"}, {"serviceUrl": "https://other/"},
                   {"conversation": {**TEAMS_MESSAGE["conversation"], "id": "a:2"}},
                   {"from": {**TEAMS_MESSAGE["from"], "name": "Alex W."}},
                   {"recipient": {**TEAMS_MESSAGE["recipient"], "properties": {"x": 1}}}):
        other = Activity().deserialize({**TEAMS_MESSAGE, **change})
        assert address_of(other) != address_of(base)
        assert address_key(other) != address_key(base), change
    assert address_key(Activity().deserialize({**TEAMS_MESSAGE, "id": "other", "text": "x"})) == address_key(base)


def test_an_address_is_saved_when_its_key_is_not_the_users_last_one(monkeypatch):
    """Unchanged: not saved again (no write per turn); changed, also back to a key seen before:
    saved at once; a save that failed (forget) is tried again."""
    from bot import handler

    last, alex, megan = handler._LastSaved(ttl=300.0), ("t", "alex"), ("t", "megan")
    en, fr = ("en-US",), ("fr-FR",)
    assert [last.due(alex, k) for k in (en, en, fr, fr, en, en)] == [True, False, True, False, True, False]
    assert last.due(megan, en) and not last.due(megan, en) and not last.due(alex, en)  # per user
    last.forget(alex, fr)  # not the last one: nothing forgotten
    assert not last.due(alex, en)
    last.forget(alex, en)
    assert last.due(alex, en)
    now = handler.time.monotonic()
    monkeypatch.setattr(handler.time, "monotonic", lambda: now + 301)  # stale: another instance may have saved
    assert last.due(alex, en)
    small = handler._LastSaved(size=2)
    assert all(small.due(("t", str(i)), en) for i in range(3)) and small.due(("t", "0"), en)  # bounded


def test_a_turn_builds_its_address_on_first_use_only():
    activity = Activity().deserialize(TEAMS_MESSAGE)
    with mock.patch("bot.handler.address_of", wraps=address_of) as spy:
        turn = ActivityTurn(activity, actor=None, locale="fr-FR", message_ref="m", activity_id="1")
        assert spy.call_count == 0
        assert turn.address == address_of(activity) and turn.address is turn.address
        assert spy.call_count == 1
    assert turn == ActivityTurn(activity, actor=None, locale="fr-FR", message_ref="m", activity_id="1",
                                address=address_of(activity))
    assert ActivityTurn(Activity(type="message"), actor=None).address is None


def _eco_pool(lic) -> int:
    with lic.db.read() as s:
        return s.scalars(select(Pool.id).join(Subscription, Subscription.id == Pool.subscription_id)
                         .where(Pool.plan_code == "eco", Subscription.interval == "month")).one()


def _rows(lic):
    with lic.db.read() as s:
        return (s.scalar(select(func.count()).select_from(Payment)),
                sorted(s.execute(select(PostedCard.subject_id, PostedCard.message_ref)).all()))


def test_a_payment_link_is_stored_with_the_card_that_shows_it(demo, admin):
    lic = demo
    pool = _eco_pool(lic)
    users = [u.id for u in lic.pools.pool_users(admin, pool, page_size=2).items]
    address = ChatAddress('{"conversation": {"id": "a:1"}, "serviceUrl": "https://smba/"}')
    q = lic.quotes.quote_upgrade(admin, pool, users, "pro")
    with mock.patch.object(lic.addresses, "record_posted_card", side_effect=AssertionError("a transaction of its own")):
        paid = lic.links.payment_link(admin, q.id, posted_card=("msg-1", address))
    assert paid.payment_url and _rows(lic) == (1, [(q.id, "msg-1")])
    # the link exists already: the card is remembered on its own, once
    assert lic.links.payment_link(admin, q.id, posted_card=("msg-2", address)).payment_url == paid.payment_url
    assert lic.links.payment_link(admin, q.id, posted_card=("msg-2", address)).payment_url == paid.payment_url
    assert _rows(lic) == (1, [(q.id, "msg-1"), (q.id, "msg-2")])
    # a refused link remembers nothing
    lic.quotes.cancel_quote(admin, q.id)
    with pytest.raises(QuoteNotOpen):
        lic.links.payment_link(admin, q.id, posted_card=("msg-3", address))
    assert _rows(lic) == (1, [(q.id, "msg-1"), (q.id, "msg-2")])
