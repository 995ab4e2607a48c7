"""Assigning a license through real HTTP: Teams (the harness) clicks the cards, the notifier
delivers the user's card through the fake Bot Connector. Then every refusal (a clear card, one
audit event "refused", the licensing tables unchanged), and the tenant's directory through a
fake Microsoft Graph (msal against a fake token endpoint)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, update

from cards.base import size
from core.demo import TENANT
from core.models import Pool, Seat, User
from core.views import Actor
from dialogs.assign import AssignFlow
from gateways.graph_directory import GraphDirectory
from tests.cardcheck import assert_valid_cards
from tests.fakes.graph import FakeGraph, ManualClock, fake_person
from tests.harness import (
    MEGAN,
    Watch,
    add_fabrikam,
    audit_mark,
    audit_since,
    choice_value,
    choices_of,
    facts_of,
    find_action,
    has_action,
    heading_of,
    inputs_of,
    pool_button,
    pool_id,
    text_of,
)

ADA = "7c1e2f3a-0000-4000-8000-00000000ada1"
MALLORY = "7c1e2f3a-0000-4000-8000-0000000000ee"
ADELE_AAD = "7c1e2f3a-0000-4000-8000-000000ade1e0"  # given to Adele Vance, a user of the demo account


@pytest.fixture
def graph(desk):
    """The tenant's directory through a fake Graph, plugged into the running app."""
    desk.lic.db.write(lambda s: s.execute(update(User).where(User.name == "Adele Vance").values(
        aad_object_id=ADELE_AAD)))  # the demo's ids are not GUID-shaped like Azure AD's
    fake = FakeGraph(tenant=TENANT, clock=ManualClock()).start()  # fake.clock: Graph's time and the gateway's
    fake.people += [fake_person("Ada Lovelace", "Ada.Lovelace@contoso.com", oid=ADA),
                    fake_person("Mallory Evil", "mallory@fabrikam.com", oid=MALLORY),
                    fake_person("Adele Vance", "adele.vance@contoso.com", oid=ADELE_AAD)]
    flow = desk.root.router.flow(AssignFlow)  # (bootstrap gives it the directory GRAPH_ENABLED builds)
    flow.directory = GraphDirectory(fake.client_id, fake.client_secret, graph_base=fake.base_url,
                                    http_client=fake.session(), timeout=2.0, clock=fake.clock)
    yield fake
    flow.directory = None
    fake.stop()


def fill(desk, *pools: int) -> None:
    """No free seat left in these pools (quantity = assigned)."""

    def work(s):
        for pid in pools:
            n = len(s.scalars(select(Seat.id).where(Seat.pool_id == pid)).all())
            s.execute(update(Pool).where(Pool.id == pid).values(quantity=n))

    desk.lic.db.write(work)


def seats_of(desk, user_id: int) -> list[int]:
    with desk.lic.db.read() as s:
        return sorted(s.scalars(select(Seat.pool_id).where(Seat.user_id == user_id)))


def check_cards(cards) -> None:
    assert_valid_cards(cards)
    assert all(size(c) < 28 * 1024 for c in cards)


LABELS = {
    "en-US": dict(title="Assign a license", search="Search", next="Next", plans="Choose plan", save="Save",
                  page="Page 1 of 4", page2="Page 2 of 4", none="no license yet", eco="holds Eco",
                  adv="holds Advanced", monthly="monthly", yearly="yearly", free="free", free_one="free",
                  plans_title="Assign a license to Henrietta Narayan", done="License assigned",
                  done_body="Henrietta Narayan now holds Advanced (monthly)", left="Free seats left in this pool",
                  left_value="2 of 15", held="Already assigned", already="already holds",
                  notice="You have a new license",
                  notice_body="Alex Wilber assigned you a license: Advanced (monthly).",
                  install="install the client and activate it", only="Only people in your License Desk account",
                  command="assign"),
    "fr-FR": dict(title="Attribuer une licence", search="Rechercher", next="Suivant", plans="Choisir l'offre",
                  save="Enregistrer", page="Page 1 sur 4", page2="Page 2 sur 4", none="pas encore de licence",
                  eco="a Eco", adv="a Advanced", monthly="mensuel", yearly="annuel", free="libres",
                  free_one="libre",
                  plans_title="Attribuer une licence à Henrietta Narayan", done="Licence attribuée",
                  done_body="Henrietta Narayan a maintenant Advanced (mensuel)",
                  left="Licences libres restantes dans ce lot", left_value="2 sur 15", held="Déjà attribuée",
                  already="a déjà une licence",
                  notice="Vous avez une nouvelle licence",
                  notice_body="Alex Wilber vous a attribué une licence\u00a0: Advanced (mensuel).",
                  install="installez le client et activez-le", only="Seules les personnes de votre compte",
                  command="attribuer"),
}


# ============================================================================ the journey


@pytest.mark.parametrize("locale", ["en-US", "fr-FR"])
async def test_assign_journey_by_clicking(desk, locale):
    tr = LABELS[locale]
    alex = desk.admin(locale)
    await alex.install()
    eco, adv, pro_m = pool_id(desk, "eco", "month"), pool_id(desk, "advanced", "month"), pool_id(desk, "pro", "month")
    pro_y, api_adv, api_pro = pool_id(desk, "pro", "year"), pool_id(desk, "api_advanced", "month"), pool_id(
        desk, "api_pro", "year")
    fill(desk, pro_m)  # Pro (monthly) has no free seat left: not offered
    seen = []
    henrietta = desk.client_named("Henrietta Narayan", locale=locale)
    if locale != "en-US":  # she has the app (her chat's locale is known); in English she never talked to the bot
        await henrietta.install()

    [picker] = await alex.say(tr["command"])
    seen.append(picker)
    assert heading_of(picker) == tr["title"]
    assert len(choices_of(picker, "user")) == 15 and tr["page"] in text_of(picker)  # 60 users, 15 a page
    assert inputs_of(picker)["pick"]["choices.data"]["dataset"].startswith("directory:")
    page2 = (await alex.act(picker, tr["next"])).expect_card()
    assert tr["page2"] in text_of(page2)
    assert not set(choices_of(page2, "user")) & set(choices_of(picker, "user"))

    # search by part of a name: each result says what they hold
    found = (await alex.act(page2, tr["search"], q="henr")).expect_card()
    seen.append(found)
    narayan, gupta = desk.user("Henrietta Narayan"), desk.user("Henrietta Gupta")
    assert choices_of(found, "user") == [
        (f"Henrietta Gupta — {gupta.email} · {tr['eco']}", str(gupta.id)),
        (f"Henrietta Narayan — {narayan.email} · {tr['none']}", str(narayan.id)),
        (f"Henrietta Rodríguez — {desk.user('Henrietta Rodríguez').email} · {tr['adv']}",
         str(desk.user("Henrietta Rodríguez").id))]
    assert tr["only"] in text_of(found)  # no directory: the account's users only, and whom to ask
    typed = await alex.search(found, "pick", "henrietta n")
    assert [r["value"] for r in typed.value["results"]] == [str(narayan.id)]

    # the plans: only pools with a free seat (Pro monthly is full), the user holds nothing yet
    plans = (await alex.act(found, tr["plans"], user=choice_value(found, "user", "Henrietta Narayan"))).expect_card()
    seen.append(plans)
    assert heading_of(plans) == tr["plans_title"]
    m, y, f, f1 = tr["monthly"], tr["yearly"], tr["free"], tr["free_one"]
    assert choices_of(plans, "to_pool") == [
        (f"Eco ({m}) · 6 {f}", str(eco)), (f"Advanced ({m}) · 3 {f}", str(adv)), (f"Pro ({y}) · 2 {f}", str(pro_y)),
        (f"API Advanced ({m}) · 4 {f}", str(api_adv)), (f"API Pro ({y}) · 1 {f1}", str(api_pro))]

    mark = audit_mark(desk.lic)
    done = (await alex.act(plans, tr["save"], to_pool=str(adv))).expect_card()
    seen.append(done)
    assert heading_of(done) == tr["done"]
    assert tr["done_body"] in text_of(done)
    assert facts_of(done)[tr["left"]] == tr["left_value"]
    assert seats_of(desk, narayan.id) == [adv]
    [event] = audit_since(desk.lic, mark)
    assert (event.action, event.outcome, event.target) == ("seat.assigned", "ok", f"user:{narayan.id}")

    # the user's card, in their own chat, once
    assert await desk.notify() == 1
    [notice] = henrietta.proactive_cards()
    seen.append(notice)
    assert heading_of(notice) == tr["notice"]
    assert tr["notice_body"] in text_of(notice) and tr["install"] in text_of(notice)

    # a double click: the second Save changes nothing and says so
    watch = Watch(desk)
    again = (await alex.act(plans, tr["save"], to_pool=str(adv))).expect_card()
    seen.append(again)
    assert heading_of(again) == tr["held"] and tr["already"] in text_of(again)
    watch.refused("seat.assign")
    watch.unchanged()
    assert await desk.notify() == 0 and len(henrietta.proactive_cards()) == 1
    check_cards(seen)


async def test_from_a_pools_card_the_plan_is_preselected_and_buy_one_when_full(desk):
    alex = desk.admin()
    [pools] = await alex.say("licenses")
    eco, api_pro = pool_id(desk, "eco", "month"), pool_id(desk, "api_pro", "year")
    users = (await alex.act(pools, pool_button(pools, "Eco", "monthly"))).expect_card()
    picker = (await alex.act(users, "Assign a license")).expect_card()
    assert heading_of(picker) == "Assign a license: Eco (monthly)"
    found = (await alex.act(picker, "Search", q="lidia")).expect_card()
    plans = (await alex.act(found, "Choose plan", user=choice_value(found, "user", "Lidia Cattaneo"))).expect_card()
    assert inputs_of(plans)["to_pool"]["value"] == str(eco)  # the pool it started from
    assert find_action(plans, "Back")["data"] == {"pool": eco, "cq": "lidia", "page": 0}

    # the API pools are full: someone without an API license gets "Buy one" for the pool's plan
    fill(desk, pool_id(desk, "api_advanced", "month"), api_pro)
    picker = (await alex.execute("assign.start", {"pool": api_pro}, message_id=pools.message_id)).expect_card()
    assert "There is no free seat in API Pro (yearly)" in text_of(picker)
    assert find_action(picker, "Buy one")["data"] == {"plan": "api_pro", "interval": "year"}
    found = (await alex.act(picker, "Search", q="grady sink")).expect_card()
    watch = Watch(desk)
    plans = (await alex.act(found, "Choose plan", user=choice_value(found, "user", "Grady Sink"))).expect_card()
    assert "to_pool" not in inputs_of(plans) and not has_action(plans, "Save")
    assert "There is no free seat for Grady Sink" in text_of(plans)
    buy = find_action(plans, "Buy one")
    assert (buy["verb"], buy["data"]) == ("buy.start", {"plan": "api_pro", "interval": "year"})
    watch.unchanged()

    # someone holding a license of every family: nothing to buy either
    found = (await alex.act(picker, "Search", q="adele vance")).expect_card()
    plans = (await alex.act(found, "Choose plan", user=choice_value(found, "user", "Adele Vance"))).expect_card()
    assert "already holds a license of every family" in text_of(plans)
    assert not has_action(plans, "Buy one") and not has_action(plans, "Save")
    check_cards([picker, found, plans, users])


# ============================================================================ refusals


async def test_stale_cards_missing_choices_and_a_family_already_held(desk):
    alex = desk.admin()
    megan = Actor(TENANT, MEGAN)
    adv, api_pro = pool_id(desk, "advanced", "month"), pool_id(desk, "api_pro", "year")
    [picker] = await alex.say("assign")
    seen = [picker]

    # "Choose plan" with nobody chosen
    watch = Watch(desk)
    again = (await alex.act(picker, "Choose plan")).expect_card()
    assert heading_of(again) == "Assign a license" and "Choose a user first." in text_of(again)
    watch.refused("card.assign.plans")
    watch.unchanged()

    # the last API Pro seat is taken while the card is shown
    found = (await alex.act(picker, "Search", q="grady sink")).expect_card()
    grady = desk.user("Grady Sink")
    plans = (await alex.act(found, "Choose plan", user=str(grady.id))).expect_card()
    desk.lic.seats.assign(megan, desk.user("Christie Gupta").id, api_pro)
    watch = Watch(desk)
    stale = (await alex.act(plans, "Save", to_pool=str(api_pro))).expect_card()
    seen.append(stale)
    assert heading_of(stale) == "Assign a license to Grady Sink"
    assert "There is no free API Pro seat in this pool" in text_of(stale)
    assert str(api_pro) not in [v for _, v in choices_of(stale, "to_pool")]
    assert find_action(stale, "Buy one")["data"] == {"plan": "api_pro", "interval": "year"}
    watch.refused("seat.assign")
    watch.unchanged()

    # the user got a license of that family meanwhile
    found = (await alex.act(picker, "Search", q="diego lauer")).expect_card()
    diego = desk.user("Diego Lauer")
    plans = (await alex.act(found, "Choose plan", user=str(diego.id))).expect_card()
    desk.lic.seats.assign(megan, diego.id, pool_id(desk, "eco", "month"))
    watch = Watch(desk)
    held = (await alex.act(plans, "Save", to_pool=str(adv))).expect_card()
    seen.append(held)
    assert heading_of(held) == "Already assigned"
    assert "Diego Lauer already holds a Eco license (Standard family)" in text_of(held)
    watch.refused("seat.assign")
    watch.unchanged()

    # Save without a plan (Teams would not send it: required; a forged one)
    watch = Watch(desk)
    data = dict(find_action(plans, "Save")["data"])
    missing = (await alex.execute("assign.save", data, message_id=plans.message_id)).expect_card()
    assert heading_of(missing) == "Assign a license to Diego Lauer" and "Choose the license first." in text_of(missing)
    watch.refused("card.assign.save")
    watch.unchanged()
    check_cards(seen)


async def test_malformed_card_data_is_refused(desk):
    alex = desk.admin()
    [picker] = await alex.say("assign")
    eco = pool_id(desk, "eco", "month")
    adele = desk.user("Adele Vance").id
    cases = [
        ("pool not a number", "assign.start", {"pool": "abc"}, "pool reference is not valid"),
        ("user a list", "assign.plans", {"user": [1, 2]}, "Choose a user first."),
        ("user not a number", "assign.plans", {"user": "x1"}, "user reference is not valid"),
        ("two users", "assign.plans", {"user": f"{adele},{adele + 1}"}, "user reference is not valid"),
        ("unknown user", "assign.plans", {"user": 987654}, "not in your account"),
        ("directory off", "assign.plans", {"pick": f"aad:{ADA}"}, "cannot be picked here"),
        ("no user", "assign.save", {"to_pool": eco}, "user reference is not valid"),
        ("pool a boolean", "assign.save", {"user": adele, "to_pool": True}, "pool reference is not valid"),
        ("unknown pool", "assign.save", {"user": adele, "to_pool": 987654}, "does not exist in your account"),
    ]
    for case, verb, data, message in cases:
        watch = Watch(desk)
        card = (await alex.execute(verb, data, message_id=picker.message_id)).expect_card()
        assert message in text_of(card), f"{case}: {text_of(card)}"
        watch.refused(case=case)
        watch.unchanged(case)


async def test_a_member_cannot_assign(desk):
    lee = desk.member()
    eco = pool_id(desk, "eco", "month")
    adele = desk.user("Adele Vance").id
    watch = Watch(desk)
    [card] = await lee.say("assign")
    assert heading_of(card) == "Administrators only" and "Ask Alex Wilber or Megan Bowen" in text_of(card)
    watch.refused()
    for verb, data in [("assign.start", {}), ("assign.start", {"pool": eco}), ("assign.search", {"q": "ad"}),
                       ("assign.plans", {"user": adele}), ("assign.plans", {"pick": f"aad:{ADA}"}),
                       ("assign.save", {"user": adele, "to_pool": eco}),
                       ("assign.save", {"user": desk.user("Lee Gu").id, "to_pool": pool_id(desk, "api_pro", "year")})]:
        watch = Watch(desk)
        reply = (await lee.execute(verb, data, message_id=card.message_id)).expect_card()
        assert heading_of(reply) == "Administrators only", verb
        watch.refused(case=verb)
        watch.unchanged(verb)
    typed = await lee.invoke("application/search", {"queryText": "ad", "dataset": "directory:1",
                                                    "queryOptions": {"skip": 0, "top": 15}})
    assert typed.value == {"results": []}


async def test_another_accounts_ids_and_strangers_are_refused(desk):
    fab = add_fabrikam(desk.lic, admin=None, worker=str(uuid.uuid4()), seats=())
    alex = desk.admin()
    [picker] = await alex.say("assign")
    eco = pool_id(desk, "eco", "month")
    diego = desk.user("Diego Lauer").id
    cases = [
        ("assign.start", {"pool": fab["pool"]}, "does not exist in your account"),
        ("assign.search", {"pool": fab["pool"], "q": "bo"}, "does not exist in your account"),
        ("assign.plans", {"user": fab["worker"]}, "not in your account"),
        ("assign.plans", {"user": diego, "pool": fab["pool"]}, "does not exist in your account"),
        ("assign.save", {"user": fab["worker"], "to_pool": eco}, "not in your account"),
        ("assign.save", {"user": diego, "to_pool": fab["pool"]}, "does not exist in your account"),
    ]
    for verb, data, message in cases:
        watch = Watch(desk)
        card = (await alex.execute(verb, data, message_id=picker.message_id)).expect_card()
        assert message in text_of(card) and "Fabrikam" not in text_of(card), f"{verb} {data}: {text_of(card)}"
        watch.refused(case=verb)
        watch.unchanged(verb)
    # the typeahead of another account's dataset, and a search for its user, find nobody
    assert (await alex.invoke("application/search", {"queryText": "bo", "dataset": f"directory:{fab['account']}",
                                                     "queryOptions": {"skip": 0, "top": 15}})).value == {"results": []}
    found = (await alex.act(picker, "Search", q="bo fabrikam")).expect_card()
    assert "user" not in inputs_of(found) and "Nobody matches." in text_of(found)

    # someone of the tenant who is not a user of the account is told whom to ask
    stranger = desk.client(str(uuid.uuid4()), name="Sam Stranger")
    watch = Watch(desk)
    [card] = await stranger.say("assign")
    assert heading_of(card) == "You are not set up yet"
    assert "Ask Alex Wilber or Megan Bowen to add you." in text_of(card)
    watch.unchanged()
    with desk.lic.db.read() as s:
        assert s.scalar(select(User.id).where(User.name == "Sam Stranger")) is None


# ============================================================================ the directory (Graph)


async def test_a_person_from_the_directory_is_added_then_assigned(desk, graph):
    alex = desk.admin()
    await alex.install()
    eco = pool_id(desk, "eco", "month")
    [picker] = await alex.say("assign")
    assert "Search to also find people of your organisation" in text_of(picker)
    assert graph.graph_requests == []  # no search text: the directory is not asked

    found = (await alex.act(picker, "Search", q="ad")).expect_card()
    titles = [t for t, _ in choices_of(found, "user")]
    assert titles[:3] == [f"{n} — {desk.user(n).email} · {h}" for n, h in (
        ("Adele Cline", "holds Pro"), ("Adele Deyoung", "holds Advanced"), ("Adele Vance", "holds API Advanced, Eco"))]
    assert titles[3:] == ["Ada Lovelace — ada.lovelace@contoso.com · from your organisation's directory, not in "
                          "License Desk yet"]  # Adele Vance, already a user, is not listed twice
    assert choice_value(found, "user", "Ada Lovelace") == f"aad:{ADA}"
    typed = await alex.search(found, "pick", "ada")
    assert [(r["title"].split(" — ")[0], r["value"]) for r in typed.value["results"]] == [("Ada Lovelace",
                                                                                           f"aad:{ADA}")]
    search = graph.graph_requests[0]
    assert search.query["$search"] == '"displayName:ad" OR "mail:ad"'
    assert search.headers["ConsistencyLevel"] == "eventual"

    mark = audit_mark(desk.lic)
    plans = (await alex.act(found, "Choose plan", user=f"aad:{ADA}")).expect_card()
    assert heading_of(plans) == "Assign a license to Ada Lovelace" and facts_of(plans)["Holds"] == "no license yet"
    ada = desk.user("Ada Lovelace")
    assert (ada.aad_object_id, ada.email, ada.role) == (ADA, "ada.lovelace@contoso.com", "member")
    assert [(e.action, e.outcome) for e in audit_since(desk.lic, mark)] == [("user.added", "ok")]
    done = (await alex.act(plans, "Save", to_pool=str(eco))).expect_card()
    assert heading_of(done) == "License assigned" and seats_of(desk, ada.id) == [eco]

    # picking again (a stale picker): the same user, not a second one
    again = (await alex.act(found, "Choose plan", user=f"aad:{ADA}")).expect_card()
    assert facts_of(again)["Holds"] == "Eco"
    with desk.lic.db.read() as s:
        assert len(s.scalars(select(User.id).where(User.aad_object_id == ADA)).all()) == 1

    assert await desk.notify() == 1
    [notice] = desk.client(ADA, name="Ada Lovelace").proactive_cards()
    assert "Alex Wilber assigned you a license: Eco (monthly)." in text_of(notice)
    assert graph.token_hits == 1  # one app token for every search and lookup
    assert len(graph.graph_requests) == 4
    check_cards([picker, found, plans, done, again, notice])


async def test_directory_refusals_and_outages(desk, graph):
    alex = desk.admin()
    [picker] = await alex.say("assign")

    # an unapproved e-mail domain: not added
    found = (await alex.act(picker, "Search", q="mall")).expect_card()
    watch = Watch(desk)
    refused = (await alex.act(found, "Choose plan", user=f"aad:{MALLORY}")).expect_card()
    assert heading_of(refused) == "Assign a license"
    assert "mallory@fabrikam.com is not on an approved e-mail domain" in text_of(refused)
    watch.refused("user.add")
    watch.unchanged()

    # a person no longer in the directory, or a forged id
    for value, message in [(f"aad:{uuid.uuid4()}", "not in your organisation's directory"),
                           ("aad:../../users", "cannot be picked here")]:
        watch = Watch(desk)
        card = (await alex.execute("assign.plans", {"pick": value}, message_id=picker.message_id)).expect_card()
        assert message in text_of(card), text_of(card)
        watch.refused(case=value)
        watch.unchanged(value)

    # Graph down: the account's users, and a note
    graph.fail_graph(503)
    down = (await alex.act(picker, "Search", q="henr")).expect_card()
    assert [t.split(" — ")[0] for t, _ in choices_of(down, "user")] == [
        "Henrietta Gupta", "Henrietta Narayan", "Henrietta Rodríguez"]
    assert "directory could not be searched just now" in text_of(down)
    typed = await alex.search(down, "pick", "henrietta g")
    assert [r["title"].split(" — ")[0] for r in typed.value["results"]] == ["Henrietta Gupta"]  # Graph back up

    # ... also when reading the picked person: nothing added (throttled: Graph's Retry-After is told)
    graph.fail_graph(429)
    watch = Watch(desk)
    card = (await alex.act(found, "Choose plan", user=f"aad:{MALLORY}")).expect_card()
    assert "directory is busy: it can be searched again in 2 seconds" in text_of(card)
    watch.refused("card.assign.plans")
    watch.unchanged()
    graph.clock.advance(2)

    # in French
    graph.fail_graph(500)
    fr = desk.admin("fr-FR")
    [picker_fr] = await fr.say("attribuer")
    down_fr = (await fr.act(picker_fr, "Rechercher", q="henr")).expect_card()
    assert "L'annuaire de votre organisation n'a pas pu être consulté" in text_of(down_fr)
    assert len(choices_of(down_fr, "user")) == 3
    check_cards([refused, down, card, down_fr])


async def test_a_throttled_directory_is_not_asked_again_before_its_retry_after(desk, graph):
    """Graph throttling guidance: a 429 comes with Retry-After, and every request sent before it
    has passed is throttled too. The picker stops asking Graph for the tenant until then, says
    for how long, and lists the account's users meanwhile."""
    graph.throttle(limit=2, window=10.0)  # 2 directory requests per tenant per 10 s
    alex = desk.admin()
    [picker] = await alex.say("assign")
    found = (await alex.act(picker, "Search", q="ada")).expect_card()
    assert any("Ada Lovelace" in t for t, _ in choices_of(found, "user"))
    await alex.act(picker, "Search", q="mall")
    busy = (await alex.act(picker, "Search", q="henr")).expect_card()  # the 3rd: throttled, Retry-After 10
    assert len(graph.graph_requests) == 3 and len(graph.throttled) == 1
    assert "directory is busy: it can be searched again in 10 seconds" in text_of(busy)
    assert [t.split(" — ")[0] for t, _ in choices_of(busy, "user")] == [
        "Henrietta Gupta", "Henrietta Narayan", "Henrietta Rodríguez"]  # the account's users meanwhile

    # while throttled: searches, typeahead and lookups are answered without asking Graph
    graph.clock.advance(4)
    again = (await alex.act(busy, "Search", q="ada")).expect_card()
    assert "can be searched again in 6 seconds" in text_of(again)
    assert "Ada Lovelace" not in str(again)  # (nobody of the account matches "ada")
    typed = await alex.search(again, "pick", "henrietta g")
    assert [r["title"].split(" — ")[0] for r in typed.value["results"]] == ["Henrietta Gupta"]
    looked_up = (await alex.act(found, "Choose plan", user=f"aad:{ADA}")).expect_card()
    assert "can be searched again in 6 seconds" in text_of(looked_up)
    fr = desk.admin("fr-FR")
    [picker_fr] = await fr.say("attribuer")
    busy_fr = (await fr.act(picker_fr, "Rechercher", q="ada")).expect_card()
    busy_text = ("L'annuaire de votre organisation est surchargé\u00a0: il pourra de nouveau être consulté "
                 "dans 6\u00a0secondes")
    assert busy_text in text_of(busy_fr)
    assert len(graph.graph_requests) == 3  # none of those reached Graph

    # once the Retry-After has passed, Graph is asked again
    graph.clock.advance(6)
    back = (await alex.act(busy, "Search", q="ada")).expect_card()
    assert any("Ada Lovelace" in t for t, _ in choices_of(back, "user")) and "busy" not in text_of(back)
    assert len(graph.graph_requests) == 4 and len(graph.throttled) == 1
    check_cards([busy, again, looked_up, busy_fr, back])
