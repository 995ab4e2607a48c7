"""Every bad input, through real HTTP: each answer has the right shape (a 200 invoke answer
with a card, or a 4xx error response for malformed protocol data; never an HTTP 500), a
refusal leaves one audit event with outcome "refused", and the licensing tables do not
change. Stale cards answer with the state as it is now and a one-line explanation."""

from __future__ import annotations

import ipaddress
import json
import logging
import socket

import pytest
from aiohttp import web
from sqlalchemy import select

from bot.addresses import conversation_of, service_of
from core.demo import TENANT
from core.models import DeliveryAddress, Quote
from core.views import Actor
from tests.harness import (
    ALEX,
    InputRequired,
    Watch,
    actions_of,
    add_fabrikam,
    choice_value,
    choices_of,
    eco_pool_id,
    facts_of,
    find_action,
    has_action,
    heading_of,
    pool_button,
    text_of,
    tick,
)

NOWHERE = "99999999-9999-9999-9999-999999999999"
ERROR = "That didn't work"


def error_card(reply, heading: str = ERROR, case: str = ""):
    card = reply.expect_card()
    assert heading_of(card) == heading, f"{case}: {heading_of(card)!r} / {text_of(card)}"
    return card


async def pools_of(client):
    [pools] = await client.say("licenses")
    return pools


# ============================================================================ commands


@pytest.mark.parametrize("locale, heading, unknown", [
    ("en-US", "What I can do", "Sorry, I don't know “frobnicate the widgets”"),
    ("fr-FR", "Ce que je sais faire", "Désolé, je ne connais pas «\u00a0frobnicate the widgets\u00a0»"),
])
async def test_unknown_command_gets_the_help_card(desk, locale, heading, unknown):
    alex = desk.admin(locale)
    watch = Watch(desk)
    [card] = await alex.say("frobnicate the widgets")
    assert heading_of(card) == heading
    assert unknown in text_of(card)
    word = {"en-US": "licenses", "fr-FR": "licences"}[locale]  # (the command word in the reader's language)
    assert word in facts_of(card) and has_action(card, lambda t: True)  # admin: commands and a way on
    [member_card] = await desk.member(locale).say("what?")
    assert heading_of(member_card) == heading and "licenses" not in text_of(member_card)
    assert not has_action(member_card, lambda t: True)
    watch.unchanged()


async def test_member_running_an_admin_command_or_forging_admin_actions(desk):
    lee = desk.member()
    await lee.install()
    alex_quote = desk.lic.quotes.quote_upgrade(Actor(TENANT, ALEX), eco_pool_id(desk), [desk.user("Adele Vance").id],
                                               "pro")
    eco = eco_pool_id(desk)
    watch = Watch(desk)
    [card] = await lee.say("licenses")
    assert heading_of(card) == "Administrators only"
    assert "Only an administrator" in text_of(card)
    watch.refused("pools.list")

    cases = [
        ("pools", {}),
        ("pool.users", {"pool": eco}),
        ("upgrade.tiers", {"pool": eco, "sel": [desk.user("Lee Gu").id]}),
        ("upgrade.quote", {"pool": eco, "sel": [desk.user("Lee Gu").id], "plan": "pro"}),
        ("quote.cancel", {"quote": alex_quote.id}),
        ("quote.refresh", {"quote": alex_quote.id}),
    ]
    for verb, data in cases:
        watch = Watch(desk)
        reply = await lee.execute(verb, data, message_id=card.message_id)
        shown = error_card(reply, "Administrators only", case=verb)
        assert "Only an administrator" in text_of(shown)
        watch.refused(case=verb)
        watch.unchanged(verb)
    assert desk.lic.quotes.quote(Actor(TENANT, ALEX), alex_quote.id).status == "open"


# ============================================================================ malformed invokes


@pytest.mark.parametrize("value", [
    "nonsense",
    None,
    {},
    {"action": "pool.users"},
    {"action": {"type": "Action.Execute", "verb": "pool.users", "data": "pool=1"}},
    {"action": {"type": "Action.Execute", "verb": "pool.users", "data": [1, 2]}},
    {"action": {"type": "Action.Execute", "data": {"pool": 1}}},
    {"action": {"type": "Action.Execute", "verb": 42, "data": {}}},
    {"action": {"type": "Action.Execute", "verb": "", "data": {}}},
    {"action": {"type": "Action.Execute", "verb": "x" * 65, "data": {}}},
    {"action": {"type": "Action.Submit", "verb": "pools", "data": {}}},
], ids=["not-a-dict", "no-value", "no-action", "action-not-object", "data-string", "data-list", "no-verb",
        "verb-not-text", "verb-empty", "verb-too-long", "not-execute"])
async def test_malformed_invoke_gets_a_4xx_error_response(desk, value):
    alex = desk.admin()
    pools = await pools_of(alex)
    watch = Watch(desk)
    reply = await alex.invoke("adaptiveCard/action", value, message_id=pools.message_id)
    assert reply.http_status == 200  # the invoke answer itself carries the error status
    assert reply.status_code == 400 and reply.is_error, dict(reply)
    assert reply.value["code"] == "BadRequest" and reply.value["message"]
    watch.refused("card.malformed")
    watch.unchanged()
    assert alex.card_in(pools.message_id) == pools  # the card shown is left alone


async def test_unknown_verb_gets_an_error_card(desk):
    alex = desk.admin()
    pools = await pools_of(alex)
    watch = Watch(desk)
    reply = await alex.execute("pool.explode", {"pool": eco_pool_id(desk)}, message_id=pools.message_id)
    card = error_card(reply)
    assert "not one I know" in text_of(card) and has_action(card, "License pools")
    event = watch.refused("card.unknown_verb")
    assert event.target == "pool.explode"
    watch.unchanged()


async def test_missing_or_malformed_card_data_gets_an_error_card(desk):
    alex = desk.admin()
    pools = await pools_of(alex)
    eco = eco_pool_id(desk)
    adele = desk.user("Adele Vance").id
    cases = [
        ("missing pool", "pool.users", {}, "pool reference is not valid"),
        ("pool not a number", "pool.users", {"pool": "abc"}, "pool reference is not valid"),
        ("pool a boolean", "upgrade.tiers", {"pool": True, "users": str(adele)}, "pool reference is not valid"),
        ("pool negative", "pool.search", {"pool": -3, "q": "a"}, "pool reference is not valid"),
        ("pool an object", "pool.pick", {"pool": {"id": eco}}, "pool reference is not valid"),
        ("ids not numbers", "upgrade.quote", {"pool": eco, "sel": "x,y", "plan": "pro"}, "user reference"),
        ("ids an object", "upgrade.tiers", {"pool": eco, "users": {"a": 1}}, "user reference"),
        ("too many users", "upgrade.tiers", {"pool": eco, "sel": list(range(1, 300))}, "At most 250 users"),
        ("no quote", "quote.cancel", {}, "does not name a quote"),
        ("quote not text", "quote.refresh", {"quote": 12}, "does not name a quote"),
        ("unknown quote", "quote.refresh", {"quote": "0" * 32}, "does not exist"),
        ("unknown pool", "pool.users", {"pool": 987654}, "does not exist in your account"),
    ]
    for case, verb, data, message in cases:
        watch = Watch(desk)
        reply = await alex.execute(verb, data, message_id=pools.message_id)
        card = error_card(reply, case=case)
        assert message in text_of(card), f"{case}: {text_of(card)}"
        assert has_action(card, "License pools"), case
        watch.refused(case=case)
        watch.unchanged(case)


async def test_action_submit_values_go_through_the_same_checks(desk):
    """A plain Action.Submit arrives as a message with ``value``: same router, same refusals."""
    alex, lee = desk.admin(), desk.member()
    pools = await pools_of(alex)
    cases = [
        (alex, {"verb": "pool.users", "pool": "abc"}, ERROR, "pool reference is not valid", "card.pool.users"),
        (alex, {"verb": 5}, ERROR, "no verb", "card.malformed"),
        (alex, {"verb": "pool.melt"}, ERROR, "not one I know", "card.unknown_verb"),
        (lee, {"verb": "pool.users", "pool": eco_pool_id(desk)}, "Administrators only", "Only an administrator",
         "pool.users"),
    ]
    for client, value, heading, message, action in cases:
        watch = Watch(desk)
        [card] = await client.submit_value(value, message_id=pools.message_id)
        assert heading_of(card) == heading and message in text_of(card), f"{value}: {text_of(card)}"
        watch.refused(action, case=str(value))
        watch.unchanged(str(value))
    [card] = await alex.submit_value({"verb": "pool.users", "pool": str(eco_pool_id(desk))})
    assert heading_of(card) == "Eco (monthly): 24 users"  # the happy path answers as a new message


# ============================================================================ ids of another account


async def test_ids_of_another_account_are_refused(desk):
    fab = add_fabrikam(desk.lic, upgrade_quote="pro")
    alex = desk.admin()
    pools = await pools_of(alex)
    assert fab["pool"] not in {a["data"].get("pool") for a in actions_of(pools, "Action.Execute")}
    eco = eco_pool_id(desk)
    cases = [
        ("pool.users", {"pool": fab["pool"]}),
        ("pool.search", {"pool": fab["pool"], "q": "bo"}),
        ("upgrade.tiers", {"pool": fab["pool"], "sel": [fab["worker"]]}),
        ("upgrade.quote", {"pool": fab["pool"], "sel": [fab["worker"]], "plan": "pro"}),
        ("quote.refresh", {"quote": fab["quote"]}),
        ("quote.cancel", {"quote": fab["quote"]}),
        ("quote.back", {"quote": fab["quote"]}),
        ("quote.confirm", {"quote": fab["quote"]}),
    ]
    for verb, data in cases:
        watch = Watch(desk)
        reply = await alex.execute(verb, data, message_id=pools.message_id)
        card = error_card(reply, case=verb)
        assert "does not exist in your account" in text_of(card), f"{verb}: {text_of(card)}"
        assert "Fabrikam" not in text_of(card)
        event = watch.refused(case=verb)
        assert event.tenant_id == TENANT and event.detail.get("code") == "not_found"
        watch.unchanged(verb)

    # another account's user smuggled into a selection of our pool: no quote, a refreshed pool
    watch = Watch(desk)
    reply = await alex.execute("upgrade.quote", {"pool": eco, "sel": [fab["worker"]], "plan": "pro"},
                               message_id=pools.message_id)
    card = reply.expect_card()
    assert heading_of(card) == "Eco (monthly): 24 users"
    assert "1 of the selected users no longer holds a seat" in text_of(card)
    assert "Bo Fabrikam" not in text_of(card)
    watch.refused("quote.upgrade")
    watch.unchanged()

    # typeahead on another account's pool finds nobody
    users = (await alex.act(pools, pool_button(pools, "Eco", "monthly"))).expect_card()
    forged = json.loads(json.dumps(users).replace(f'"pool_users:{eco}"', f'"pool_users:{fab["pool"]}"'))
    forged = type(users)(forged, message_id=users.message_id)
    reply = await alex.search(forged, "pick", "bo")
    assert reply.http_status == 200 and reply.value == {"results": []}
    assert [r["title"] for r in (await alex.search(users, "pick", "ade")).value["results"]] == [
        "Adele Vance — adele.vance@contoso.com"]
    with desk.lic.db.read() as s:
        assert s.get(Quote, fab["quote"]).status == "open"


# ============================================================================ tiers


async def test_a_tier_that_is_not_higher_is_refused(desk):
    alex = desk.admin()
    pools = await pools_of(alex)
    users = (await alex.act(pools, pool_button(pools, "Advanced", "monthly"))).expect_card()
    first_title = choices_of(users, "users")[0][0]
    tiers = (await alex.act(users, "Choose tier", users=tick(users, "users", first_title))).expect_card()
    assert [v for _, v in choices_of(tiers, "plan")] == ["pro"]  # only higher plans are offered
    for plan, message in [("eco", "Eco is not above Advanced"), ("advanced", "Advanced is not above Advanced"),
                          ("api_pro", "not in the same family"), ("platinum", "There is no plan")]:
        watch = Watch(desk)
        card = error_card(await alex.act(tiers, "Upgrade", plan=plan), case=plan)
        assert message in text_of(card), f"{plan}: {text_of(card)}"
        watch.refused("quote.upgrade", case=plan)
        watch.unchanged(plan)
        tiers = (await alex.act(users, "Choose tier", users=tick(users, "users", first_title))).expect_card()

    # the highest tier has nowhere to go: no Upgrade button
    pools = await pools_of(alex)
    pro_users = (await alex.act(pools, pool_button(pools, "Pro", "monthly"))).expect_card()
    top = (await alex.act(pro_users, "Choose tier",
                          users=tick(pro_users, "users", choices_of(pro_users, "users")[0][0]))).expect_card()
    assert "already the highest tier" in text_of(top) and not has_action(top, "Upgrade")


# ============================================================================ selection


async def test_an_empty_selection_is_refused(desk):
    alex = desk.admin()
    pools = await pools_of(alex)
    eco = eco_pool_id(desk)
    users = (await alex.act(pools, pool_button(pools, "Eco", "monthly"))).expect_card()

    watch = Watch(desk)
    again = (await alex.act(users, "Choose tier")).expect_card()
    assert heading_of(again) == "Eco (monthly): 24 users" and "Select at least one user first." in text_of(again)
    event = watch.refused("card.upgrade.tiers")
    assert event.target == f"pool:{eco}"
    watch.unchanged()

    watch = Watch(desk)
    forged = (await alex.execute("upgrade.quote", {"pool": eco, "sel": [], "plan": "pro"},
                                 message_id=users.message_id)).expect_card()
    assert "Select at least one user first." in text_of(forged)
    watch.refused("card.upgrade.quote")
    watch.unchanged()

    # a tier card clicked without a tier: Teams would not send it (required input)...
    tiers = (await alex.act(again, "Choose tier", users=tick(again, "users", "Adele Vance"))).expect_card()
    with pytest.raises(InputRequired):
        await alex.act(tiers, "Upgrade", plan="")
    # ... and a forged one gets the tier card again, saying to choose
    watch = Watch(desk)
    data = dict(find_action(tiers, "Upgrade")["data"])
    card = (await alex.execute("upgrade.quote", data, message_id=tiers.message_id)).expect_card()
    assert heading_of(card) == "Upgrade 1 user from Eco" and "Choose the new tier first." in text_of(card)
    watch.refused("card.upgrade.quote")
    watch.unchanged()


# ============================================================================ stale cards


async def test_stale_users_card_after_the_pool_changed(desk):
    alex = desk.admin()
    pools = await pools_of(alex)
    eco = eco_pool_id(desk)
    users = (await alex.act(pools, pool_button(pools, "Eco", "monthly"))).expect_card()
    ticked = tick(users, "users", "Adele Vance", "Allan Archie")
    tiers = (await alex.act(users, "Choose tier", users=ticked)).expect_card()
    # meanwhile someone unassigns Allan
    desk.lic.seats.unassign(Actor(TENANT, ALEX), eco, [desk.user("Allan Archie").id])

    for card, title, inputs in [(users, "Choose tier", {"users": ticked}), (tiers, "Upgrade", {})]:
        watch = Watch(desk)
        fresh = (await alex.act(card, title, **inputs)).expect_card()
        assert heading_of(fresh) == "Eco (monthly): 23 users", title
        note = [t for t in text_of(fresh).splitlines() if "no longer holds a seat" in t]
        assert note == ["1 of the selected users no longer holds a seat in this pool. Here is the pool as it is now; "
                        "select again."]
        assert not any(t.startswith("Allan Archie") for t, _ in choices_of(fresh, "users"))
        watch.refused(case=title)
        watch.unchanged(title)


async def quote_card(alex, names=("Adele Vance",), plan="Pro"):
    pools = await pools_of(alex)
    users = (await alex.act(pools, pool_button(pools, "Eco", "monthly"))).expect_card()
    tiers = (await alex.act(users, "Choose tier", users=tick(users, "users", *names))).expect_card()
    return (await alex.act(tiers, "Upgrade", plan=choice_value(tiers, "plan", plan))).expect_card()


async def test_stale_quote_expired(desk, clock):
    alex = desk.admin()
    quote = await quote_card(alex)
    url = alex.open_url(quote, "Pay …")
    clock.advance(minutes=31)

    watch = Watch(desk)
    card = (await alex.act(quote, "Cancel")).expect_card()
    assert heading_of(card) == "Upgrade quote"
    assert "This quote has expired; nothing was charged." in text_of(card)
    assert "Status: Expired" in text_of(card) and not has_action(card, "Pay …")
    watch.refused("quote.cancel")
    watch.unchanged()

    watch = Watch(desk)
    card = (await alex.act(quote, "Refresh")).expect_card()
    assert "Status: Expired" in text_of(card) and has_action(card, "Prepare a new quote")
    page = await desk.get(url)
    assert page.status == 200 and "Quote expired" in page.text
    assert "Quote expired" in (await desk.post_form(url, {"action": "pay"})).text
    watch.unchanged()

    # the way forward works: a new tier card for the same users (their seats are free again)
    tiers = (await alex.act(card, "Prepare a new quote")).expect_card()
    assert heading_of(tiers) == "Upgrade 1 user from Eco"


async def test_stale_quote_paid_then_cancel_or_back(desk):
    alex = desk.admin()
    quote = await quote_card(alex)
    assert (await desk.post_form(alex.open_url(quote, "Pay …"), {"action": "pay"})).status == 200
    for title in ("Cancel", "Back"):
        watch = Watch(desk)
        card = (await alex.act(quote, title)).expect_card()
        assert heading_of(card) == "Upgrade paid", title
        assert "This quote is already paid." in text_of(card)
        watch.refused("quote.cancel", case=title)
        watch.unchanged(title)


async def test_stale_quote_cancelled(desk):
    alex = desk.admin()
    quote = await quote_card(alex)
    done = (await alex.act(quote, "Cancel")).expect_card()
    assert heading_of(done) == "Quote cancelled"
    watch = Watch(desk)
    card = (await alex.act(quote, "Cancel")).expect_card()
    assert "Status: Cancelled" in text_of(card) and "This quote was cancelled" in text_of(card)
    watch.refused("quote.cancel")
    watch.unchanged()


@pytest.mark.parametrize("locale, words", [
    ("en-US", {"pools": "licenses", "eco": "monthly", "tier": "Choose tier", "upgrade": "Upgrade",
               "open": "Open that quote", "cancel": "Cancel it", "yours": "held by your own open quote",
               "ask": "ask Alex Wilber", "quote": "Upgrade quote", "cancelled": "Quote cancelled"}),
    ("fr-FR", {"pools": "licences", "eco": "mensuel", "tier": "Choisir l'offre", "upgrade": "Mettre à niveau",
               "open": "Ouvrir ce devis", "cancel": "L'annuler", "yours": "par votre propre devis ouvert",
               "ask": "demandez à Alex Wilber", "quote": "Devis de mise à niveau", "cancelled": "Devis annulé"}),
])
async def test_own_quote_holding_the_seats_offers_to_open_or_cancel_it(desk, locale, words):
    """A caller blocked by their own quote is not told to ask themselves: the refusal offers to
    open that quote or to cancel it, and either way forward works."""
    alex = desk.admin(locale=locale)

    async def tiers_for_adele():
        [pools] = await alex.say(words["pools"])
        users = (await alex.act(pools, pool_button(pools, "Eco", words["eco"]))).expect_card()
        return (await alex.act(users, words["tier"], users=tick(users, "users", "Adele Vance"))).expect_card()

    tiers = await tiers_for_adele()
    quote = (await alex.act(tiers, words["upgrade"], plan=choice_value(tiers, "plan", "Pro"))).expect_card()
    quote_id = next(a["data"]["quote"] for a in actions_of(quote, "Action.Execute") if "quote" in a["data"])

    again = await tiers_for_adele()  # another tiers card (another key): a second quote of the same user
    watch = Watch(desk)
    refusal = (await alex.act(again, words["upgrade"], plan=choice_value(again, "plan", "Advanced"))).expect_card()
    assert words["yours"] in text_of(refusal) and words["ask"] not in text_of(refusal)
    assert find_action(refusal, words["open"])["data"] == {"quote": quote_id}
    assert find_action(refusal, words["cancel"])["data"] == {"quote": quote_id}
    watch.refused("quote.upgrade")
    watch.unchanged()

    opened = (await alex.act(refusal, words["open"])).expect_card()
    assert heading_of(opened) == words["quote"]
    assert {a["data"].get("quote") for a in actions_of(opened, "Action.Execute")} >= {quote_id}
    done = (await alex.act(refusal, words["cancel"])).expect_card()
    assert heading_of(done) == words["cancelled"]
    with desk.lic.db.read() as s:
        assert s.get(Quote, quote_id).status == "cancelled"
    after = (await alex.act(again, words["upgrade"], plan=choice_value(again, "plan", "Advanced"))).expect_card()
    assert heading_of(after) == words["quote"]


# ============================================================================ callers


async def test_a_caller_in_no_known_account(desk):
    stranger = desk.client("11111111-1111-1111-1111-111111111111", tenant_id=NOWHERE, name="Sam Stranger")
    watch = Watch(desk)
    [card] = await stranger.install()
    assert heading_of(card) == "You are not set up yet"
    assert "Your organisation has no License Desk account yet." in text_of(card)
    [card] = await stranger.say("licenses")
    assert heading_of(card) == "You are not set up yet"
    card = (await stranger.execute("pool.users", {"pool": eco_pool_id(desk)}, message_id=card.message_id)
            ).expect_card()
    assert heading_of(card) == "You are not set up yet"
    events = watch.events()
    assert events and all(e.outcome == "refused" and e.tenant_id == NOWHERE and e.account_id is None
                          for e in events)
    watch.unchanged()
    with desk.lic.db.read() as s:
        assert s.scalars(select(DeliveryAddress)).all() == []


async def test_a_person_of_the_tenant_not_in_the_account_then_added(desk):
    newcomer = desk.client("33333333-3333-3333-3333-333333333333", name="Nova Newcomer")
    watch = Watch(desk)
    [card] = await newcomer.say("licenses")
    assert heading_of(card) == "You are not set up yet"
    assert "not a user of your organisation's License Desk account yet" in text_of(card)
    watch.unchanged()
    # an admin adds them; the next message stores where to reach them
    user = desk.lic.accounts.add_user(Actor(TENANT, ALEX), newcomer.aad_object_id, "nova@contoso.com", "Nova Newcomer")
    [card] = await newcomer.say("help")
    assert heading_of(card) == "What I can do"
    with desk.lic.db.read() as s:
        address = s.get(DeliveryAddress, user.id)
    assert address is not None and conversation_of(address.address) == newcomer.conversation_id


# ============================================================================ failures


@pytest.mark.parametrize("locale, apology", [("en-US", "Sorry, something went wrong on our side."),
                                              ("fr-FR", "Désolé, un problème est survenu de notre côté.")])
async def test_a_failure_inside_the_bot_gets_an_apology_and_is_logged(desk, monkeypatch, caplog, locale, apology):
    alex = desk.admin(locale)
    pools = await pools_of(alex)
    router = desk.root.router

    def boom(*args, **kwargs):
        raise RuntimeError("kaboom")

    caplog.set_level(logging.ERROR, logger="bot")
    watch = Watch(desk)
    monkeypatch.setattr(router, "on_text", boom)
    [card] = await alex.say("licenses")
    assert apology in text_of(card)
    message_id = alex.last_activity["id"]

    monkeypatch.setattr(router, "on_action", boom)
    reply = await alex.act(pools, pool_button(pools, "Eco", "mensuel" if locale == "fr-FR" else "monthly"))
    assert reply.http_status == 200 and apology in text_of(reply.expect_card())
    invoke_id = alex.last_activity["id"]

    monkeypatch.setattr(desk.lic.pools, "pool_users", boom)  # a failure in the core, during a search
    reply = await alex.invoke("application/search", {"queryText": "ad", "dataset": f"pool_users:{eco_pool_id(desk)}",
                                                     "queryOptions": {"skip": 0, "top": 15}})
    assert reply.http_status == 200 and reply.value == {"results": []}

    failures = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert any(message_id in r.getMessage() for r in failures)
    assert any(invoke_id in r.getMessage() for r in failures)
    assert all("kaboom" in repr(r.exc_info[1]) for r in failures)
    watch.unchanged()


# ============================================================================ HTTP level


def _non_loopback_ipv4() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent
            ip = s.getsockname()[0]
    except OSError:
        return None
    address = ipaddress.ip_address(ip)
    return None if address.is_loopback or address.is_unspecified else ip


async def test_http_level_refusals(desk):
    alex = desk.admin()
    good = alex.activity("message", text="licenses")
    watch, mark = Watch(desk), desk.connector.mark()
    cases = [
        ("not json", b"{not json", "application/json", 400),
        ("not utf-8", b"\xff\xfe{", "application/json", 400),
        ("wrong content type", json.dumps(good), "text/plain", 415),
        ("a list", "[1, 2]", "application/json", 400),
        ("no type", json.dumps({"text": "hi"}), "application/json", 400),
        ("type not text", json.dumps({"type": 5}), "application/json", 400),
        ("conversation not an object", json.dumps(dict(good, conversation="abc")), "application/json", 400),
        ("bad timestamp", json.dumps(dict(good, timestamp="yesterday")), "application/json", 400),
        ("attachments not a list", json.dumps(dict(good, attachments="x")), "application/json", 400),
        ("entities not objects", json.dumps(dict(good, entities=[1])), "application/json", 400),
        # CPython refuses to parse an integer of more than 4,300 digits (int_max_str_digits): a
        # ValueError that is not a JSONDecodeError
        ("an integer of 5,000 digits", json.dumps(good)[:-1] + ', "n": ' + "7" * 5000 + "}", "application/json", 400),
        ("an unknown charset", json.dumps(good), "application/json; charset=no-such-charset", 400),
        ("not the charset it names", "{\"type\": \"é\"}".encode("utf-16"), "application/json; charset=utf-8", 400),
    ]
    for case, body, ctype, status in cases:
        res = await desk.post_raw("/api/messages", body, content_type=ctype)
        assert res.status == status, f"{case}: {res.status} {res.text[:200]}"
        assert "error" in res.json(), case
    assert desk.connector.calls[mark:] == []
    assert watch.events() == []
    watch.unchanged()


async def test_local_mode_refuses_callers_that_are_not_loopback(desk):
    ip = _non_loopback_ipv4()
    if ip is None:
        pytest.skip("no non-loopback IPv4 address to call from")
    site = web.TCPSite(desk.runner, ip, 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]
        alex = desk.admin()
        watch, mark = Watch(desk), desk.connector.mark()
        res = await desk.post_raw("/api/messages", json.dumps(alex.activity("message", text="licenses")),
                                  base=f"http://{ip}:{port}")
        assert res.status == 403 and "loopback" in res.json()["error"]
        assert desk.connector.calls[mark:] == [] and watch.events() == []
        watch.unchanged()
        health = await desk.get(f"http://{ip}:{port}/healthz")  # the rest of the app is not loopback-only
        assert health.status == 200
    finally:
        await site.stop()


async def test_an_unreadable_pay_form_is_400_and_does_nothing(desk):
    """What no browser sends (a multipart body without its boundary or with a part without a
    name, bytes that are not the charset, an unknown charset) is refused with the page as it
    is, HTTP 400: never a 500, nothing paid."""
    alex = desk.admin()
    quote = await quote_card(alex)
    url = alex.open_url(quote, "Pay …")
    path = url[len(desk.url):]
    watch = Watch(desk)
    part = b'--zz\r\nContent-Type: text/plain\r\n\r\npay\r\n--zz--\r\n'
    cases = [
        ("multipart without a boundary", b"action=pay", "multipart/form-data"),
        ("a part that is not a part", b"--zz\r\nbad", "multipart/form-data; boundary=zz"),
        ("a part without a name", part, "multipart/form-data; boundary=zz"),
        ("not the charset", b"action=pay&\xff\xfe=%ff", "application/x-www-form-urlencoded"),
        ("an unknown charset", b"action=pay", "application/x-www-form-urlencoded; charset=no-such-charset"),
    ]
    for case, body, ctype in cases:
        res = await desk.post_raw(path, body, content_type=ctype)
        assert res.status == 400, f"{case}: {res.status} {res.text[:200]}"
        assert "Review and pay" in res.text, case  # the page, in words, still payable
    assert watch.events() == []
    watch.unchanged()


UNSUPPORTED = {"en-US": "License Desk does not offer this.", "fr-FR": "License Desk ne propose pas cela."}


@pytest.mark.parametrize("locale", list(UNSUPPORTED))
async def test_invokes_the_bot_does_not_handle_get_the_documented_answer_logged_once(desk, caplog, locale):
    """botbuilder answers these 501 with a null body. Teams documents, per kind: a dialog fetch or
    submit answered with a TaskModuleResponse of type "message" (shown in a pop-up; a non-200 is
    shown as an error), a message extension with a MessagingExtensionResult of type "message",
    a bot configuration with a config response of type "message", message/submitAction with a
    bare 200; any other name (or none) gets 400. Each name is logged once, however many come."""
    caplog.set_level(logging.INFO)
    alex = desk.admin(locale)
    text = UNSUPPORTED[locale]
    watch, mark = Watch(desk), desk.connector.mark()
    cases = [
        ("task/fetch", 200, lambda b: b["task"]["type"] == "message" and b["task"]["value"].startswith(text)),
        ("task/submit", 200, lambda b: b["task"]["type"] == "message" and b["task"]["value"].startswith(text)),
        ("composeExtension/fetchTask", 200, lambda b: b["task"]["value"].startswith(text)),
        ("composeExtension/query", 200,
         lambda b: b["composeExtension"]["type"] == "message" and b["composeExtension"]["text"].startswith(text)),
        ("composeExtension/submitAction", 200, lambda b: b["composeExtension"]["text"].startswith(text)),
        ("config/fetch", 200, lambda b: b["config"]["type"] == "message" and b["config"]["value"].startswith(text)),
        ("message/submitAction", 200, lambda b: b is None),
        ("", 400, lambda b: b["statusCode"] == 400 and b["value"]["message"].startswith(text)),
        (None, 400, lambda b: b["statusCode"] == 400 and b["value"]["message"].startswith(text)),
        ("no/such-invoke", 400, lambda b: b["statusCode"] == 400 and b["value"]["message"].startswith(text)),
        ("signin/verifyState", 400, lambda b: b["statusCode"] == 400),
    ]
    log_mark = len(caplog.records)
    for _ in range(3):  # a flood
        for name, status, body_ok in cases:
            fields = {"name": name} if name is not None else {}
            activity = alex.activity("invoke", value={"commandId": "x"}, **fields)
            res = await alex.send(activity)
            assert res.status == status, (name, res.status, res.text[:200])
            body = res.json()
            assert body_ok(body), (name, body)
    logged = [r.getMessage() for r in caplog.records[log_mark:] if "unhandled invoke" in r.getMessage()]
    assert len(logged) == len(cases), logged  # once per name
    assert not [r for r in caplog.records[log_mark:] if r.levelno >= logging.ERROR]
    assert desk.connector.calls[mark:] == []
    assert watch.events() == []
    watch.unchanged()


async def test_local_mode_replies_to_and_stores_only_loopback_service_urls(desk):
    """Local mode has no token to vouch for a serviceUrl: a loopback caller naming the cloud's
    metadata service, a file, a host of the network or a URL with credentials is refused (400)
    before any turn: nothing is posted there and no delivery address is stored."""
    alex = desk.admin()
    watch, mark = Watch(desk), desk.connector.mark()
    bad = ["http://169.254.169.254/latest/meta-data/", "file:///etc/passwd", "http://10.1.2.3:3978/",
           "ftp://127.0.0.1/", "http://127.0.0.1@evil.example/", "http://localhost.evil.example/",
           "gopher://localhost:6379/_FLUSHALL", "http://0x7f000001/", "", None]
    for url in bad:
        for activity in (alex.activity("message", text="licenses", serviceUrl=url),
                         alex.activity("conversationUpdate", serviceUrl=url,
                                       membersAdded=[{"id": alex.user_id, "aadObjectId": alex.aad_object_id}]),
                         alex.activity("invoke", name="adaptiveCard/action", serviceUrl=url,
                                       value={"action": {"type": "Action.Execute", "verb": "pools"}})):
            res = await alex.send(activity)
            assert res.status == 400 and "loopback" in res.json()["error"], (url, activity["type"], res.status)
    assert desk.connector.calls[mark:] == []
    with desk.lic.db.read() as s:
        assert s.scalars(select(DeliveryAddress)).all() == []
    assert watch.events() == []
    watch.unchanged()
    # the fake connector's own loopback URL (any port) is served, and its address stored
    [card] = await alex.say("licenses")
    assert heading_of(card).startswith("License pools")
    with desk.lic.db.read() as s:
        [stored] = s.scalars(select(DeliveryAddress)).all()
    assert service_of(stored.address)[1] == desk.connector.service_url
