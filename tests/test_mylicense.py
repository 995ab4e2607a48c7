""""My license" through real HTTP, for any user: what they hold (plan, billing, since,
renewal, pending changes), asking for an upgrade per family, and the clear cards for people
with no seat, people not in the account, and bad or stale input (audited, nothing changed)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from babel.dates import format_date
from sqlalchemy import select

from core.demo import TENANT
from core.models import Pool, Seat, Subscription, UpgradeRequest
from core.views import Actor
from tests.cardcheck import assert_card_budget, assert_valid_cards
from tests.harness import (
    ALEX,
    audit_mark,
    audit_since,
    choice_value,
    choices_of,
    has_action,
    heading_of,
    pool_id,
    snapshot,
    text_of,
    texts_of,
)

STRANGER = "00000000-0000-0000-0000-00000000abcd"  # in Contoso's tenant, not a user of its account
NOWHERE_TENANT = "99999999-9999-9999-9999-999999999999"


def refused_once(desk, mark: int, before: dict, action: str, case: str = ""):
    events = audit_since(desk.lic, mark)
    assert [(e.action, e.outcome) for e in events] == [(action, "refused")], f"{case}: {events}"
    assert snapshot(desk.lic) == before, f"{case}: the licensing tables changed"


def seat_dates(desk, name: str, plan: str) -> tuple:
    """(since when they have the plan, renewal) of a user's seat of that plan, from the database."""
    with desk.lic.db.read() as s:
        return s.execute(select(Seat.plan_since, Subscription.period_end)
                         .join(Pool, Pool.id == Seat.pool_id)
                         .join(Subscription, Subscription.id == Pool.subscription_id)
                         .where(Seat.user_id == desk.user(name).id, Pool.plan_code == plan)).one()


def seat_facts(card: dict, plan: str) -> dict:
    """The facts of the section of the card that starts with the plan's name."""
    for el in card["body"]:
        items = el.get("items") or []
        if el.get("type") == "Container" and items and items[0].get("text") == plan:
            return {f["title"]: f["value"] for i in items if i.get("type") == "FactSet" for f in i["facts"]}
    raise AssertionError(f"no section for {plan}: {texts_of(card)}")


@pytest.mark.parametrize("locale, labels", [
    ("en-US", {"cmd": "my license", "title": "Your licenses", "billing": "Billing", "monthly": "monthly",
               "yearly": "yearly", "since": "Since", "renews": "Renews on", "pending": "Pending change",
               "moves": "Moves to API Advanced at renewal, on {date}", "top": "This is the highest plan of its family.",
               "request": "Request an upgrade", "send": "Send the request", "asked": "Upgrade request",
               "choice": "{plan} (Standard, instead of Eco)"}),
    ("fr-FR", {"cmd": "ma licence", "title": "Vos licences", "billing": "Facturation", "monthly": "mensuel",
               "yearly": "annuel", "since": "Depuis le", "renews": "Renouvellement le",
               "pending": "Changement prévu", "moves": "Passe à API Advanced au renouvellement, le {date}",
               "top": "C'est l'offre la plus haute de sa famille.", "request": "Demander une mise à niveau",
               "send": "Envoyer la demande", "asked": "Demande de mise à niveau",
               "choice": "{plan} (Standard, au lieu d'Eco)"}),
])
async def test_my_license_shows_each_seat_with_its_dates_and_pending_changes(desk, locale, labels):
    """Debra Deyoung holds Eco (monthly) and API Pro (yearly), with a downgrade of API Pro to
    API Advanced scheduled at renewal."""
    lic, loc = desk.lic, locale.replace("-", "_")
    debra = desk.client_named("Debra Deyoung", locale=locale)
    await debra.install()
    lic.downgrades.schedule_downgrade(Actor(TENANT, ALEX), pool_id(desk, "api_pro", "year"),
                                      [desk.user("Debra Deyoung").id],
                           "api_advanced")
    [mine] = await debra.say(labels["cmd"])
    assert heading_of(mine) == labels["title"]
    eco_since, eco_renews = seat_dates(desk, "Debra Deyoung", "eco")
    api_since, api_renews = seat_dates(desk, "Debra Deyoung", "api_pro")
    assert seat_facts(mine, "Eco") == {labels["billing"]: labels["monthly"],
                                       labels["since"]: format_date(eco_since, format="medium", locale=loc),
                                       labels["renews"]: format_date(eco_renews, format="medium", locale=loc)}
    renews = format_date(api_renews, format="medium", locale=loc)
    assert seat_facts(mine, "API Pro") == {labels["billing"]: labels["yearly"],
                                           labels["since"]: format_date(api_since, format="medium", locale=loc),
                                           labels["renews"]: renews,
                                           labels["pending"]: labels["moves"].format(date=renews)}
    assert labels["top"] in texts_of(mine)  # API Pro: nothing above it

    form = (await debra.act(mine, labels["request"])).expect_card()
    assert choices_of(form, "plan") == [(labels["choice"].format(plan="Advanced"), "advanced"),
                                        (labels["choice"].format(plan="Pro"), "pro")]
    sent = (await debra.act(form, labels["send"], plan=choice_value(form, "plan", "Advanced"))).expect_card()
    with lic.db.read() as s:
        [req] = s.scalars(select(UpgradeRequest)).all()
    assert (req.requester_id, req.from_plan, req.to_plan, req.reason) == (
        desk.user("Debra Deyoung").id, "eco", "advanced", None)
    [after] = await debra.say(labels["cmd"])
    assert labels["asked"] in seat_facts(after, "Eco") and labels["asked"] not in seat_facts(after, "API Pro")
    assert not has_action(after, labels["request"])  # nothing more to ask for
    cards = [mine, form, sent, after]
    for c in cards:
        assert_card_budget(c)
    assert_valid_cards(cards)


async def test_since_is_when_the_user_got_the_plan_upgraded_or_moved_at_renewal(desk, clock):
    """"Since" is the date the user got the plan they hold: the settlement of an upgrade, the
    renewal a scheduled downgrade applied at; not when the seat was first assigned (the period
    start of the demo's pools)."""
    lic, alex = desk.lic, Actor(TENANT, ALEX)
    debra = desk.client_named("Debra Deyoung")
    uid = desk.user("Debra Deyoung").id
    assigned, renewal = seat_dates(desk, "Debra Deyoung", "eco")
    day = lambda t: format_date(t, format="medium", locale="en_US")  # noqa: E731
    clock.advance(days=2)
    upgraded = clock.now
    assert day(upgraded) != day(assigned)
    quote = lic.quotes.quote_upgrade(alex, pool_id(desk, "eco", "month"), [uid], "advanced")
    paid = await desk.post_form(lic.links.payment_link(alex, quote.id).payment_url, {"action": "pay"})
    assert paid.status == 200 and lic.quotes.quote(alex, quote.id).status == "paid"
    [mine] = await debra.say("my license")
    assert seat_facts(mine, "Advanced")["Since"] == day(upgraded)
    assert seat_facts(mine, "API Pro")["Since"] == day(seat_dates(desk, "Debra Deyoung", "api_pro")[0])

    lic.downgrades.schedule_downgrade(alex, pool_id(desk, "advanced", "month"), [uid], "eco")
    [mine] = await debra.say("my license")
    assert seat_facts(mine, "Advanced")["Since"] == day(upgraded)  # scheduled: not moved yet
    clock.now = renewal + timedelta(hours=1)
    assert lic.periods.roll_over() >= 1
    [mine] = await debra.say("my license")
    assert seat_facts(mine, "Eco")["Since"] == day(renewal)
    assert seat_dates(desk, "Debra Deyoung", "eco")[0] == renewal
    assert_valid_cards([mine])


async def test_requests_are_per_family(desk):
    """Nestor holds Eco and API Advanced: after asking for API Pro he may still ask for a
    standard upgrade, and only that."""
    nestor = desk.client_named("Nestor Wilke")
    [mine] = await nestor.say("mylicense")
    form = (await nestor.act(mine, "Request an upgrade")).expect_card()
    assert [v for _, v in choices_of(form, "plan")] == ["api_pro", "advanced", "pro"]
    assert choices_of(form, "plan")[0][0] == "API Pro (API, instead of API Advanced)"
    sent = (await nestor.act(form, "Send the request", plan="api_pro", reason="new API work")).expect_card()
    assert "from API Advanced to API Pro" in text_of(sent) and "new API work" in text_of(sent)
    [mine] = await nestor.say("mylicense")
    form = (await nestor.act(mine, "Request an upgrade")).expect_card()
    assert [v for _, v in choices_of(form, "plan")] == ["advanced", "pro"]
    assert_valid_cards([mine, form, sent])


async def test_the_top_plan_offers_no_request(desk):
    alex = desk.admin()
    [mine] = await alex.say("mylicense")
    assert heading_of(mine) == "Your licenses"
    assert seat_facts(mine, "Pro")["Billing"] == "monthly"
    assert "This is the highest plan of its family." in texts_of(mine)
    assert not has_action(mine, "Request an upgrade")
    assert "There is no upgrade to ask for" in text_of(mine)
    # a forged (or stale) form request: the card as it is now, nothing asked
    before, mark = snapshot(desk.lic), audit_mark(desk.lic)
    again = (await alex.execute("mylicense.request", {}, message_id=mine.message_id)).expect_card()
    assert heading_of(again) == "Your licenses" and "There is no upgrade to ask for" in text_of(again)
    assert snapshot(desk.lic) == before and audit_since(desk.lic, mark) == []
    assert_valid_cards([mine, again])


@pytest.mark.parametrize("locale, heading, none, ask, refused", [
    ("en-US", "Your licenses", "You do not hold any license yet.",
     "Ask an administrator of your account to assign one to you: Alex Wilber, Megan Bowen.",
     "You hold no Standard license yet"),
    ("fr-FR", "Vos licences", "Vous n'avez encore aucune licence.",
     "Demandez à un administrateur de votre compte de vous en attribuer une\u00a0: Alex Wilber, Megan Bowen.",
     "Vous n'avez encore aucune licence de la famille Standard"),
])
async def test_a_member_with_no_seat_is_told_whom_to_ask(desk, locale, heading, none, ask, refused):
    christie = desk.client_named("Christie Gupta", locale=locale)
    [mine] = await christie.say("mylicense")
    assert heading_of(mine) == heading
    assert none in texts_of(mine) and ask in texts_of(mine)
    assert [a["verb"] for a in mine.get("actions", [])] == ["mylicense"]  # only Refresh
    # asking anyway (a forged send): refused by the core, said plainly, nothing changed
    before, mark = snapshot(desk.lic), audit_mark(desk.lic)
    forged = (await christie.execute("mylicense.send", {"plan": "pro"}, message_id=mine.message_id)).expect_card()
    assert heading_of(forged) == heading and refused in text_of(forged)
    refused_once(desk, mark, before, "request.create")
    assert_valid_cards([mine, forged])


@pytest.mark.parametrize("locale, heading, names", [
    ("en-US", "You are not set up yet", "Ask one of its administrators to add you: Alex Wilber, Megan Bowen."),
    ("fr-FR", "Vous n'êtes pas encore inscrit",
     "Demandez à l'un de ses administrateurs de vous ajouter\u00a0: Alex Wilber, Megan Bowen."),
])
async def test_someone_not_in_the_account_is_told_whom_to_ask(desk, locale, heading, names):
    stranger = desk.client(STRANGER, locale=locale, name="Sam Stranger")
    cards = []
    for say in ("mylicense", "my licence"):
        before, mark = snapshot(desk.lic), audit_mark(desk.lic)
        [card] = await stranger.say(say)
        assert heading_of(card) == heading and names in text_of(card), say
        refused_once(desk, mark, before, "my_license", say)
        cards.append(card)
    for verb, data, action in (("mylicense.request", {}, "my_license"),
                               ("mylicense.send", {"plan": "pro"}, "request.create")):
        before, mark = snapshot(desk.lic), audit_mark(desk.lic)
        card = (await stranger.execute(verb, data)).expect_card()
        assert heading_of(card) == heading and names in text_of(card), verb
        refused_once(desk, mark, before, action, verb)
        cards.append(card)
    # a tenant with no account at all: told so, no names to give
    [card] = await desk.client(STRANGER, tenant_id=NOWHERE_TENANT).say("mylicense")
    assert "Your organisation has no License Desk account yet" in text_of(card)
    assert "Alex Wilber" not in text_of(card)
    assert_valid_cards(cards + [card])


async def test_bad_or_stale_request_input_gets_the_form_again(desk):
    lee = desk.member()
    [mine] = await lee.say("mylicense")
    form = (await lee.act(mine, "Request an upgrade")).expect_card()
    cases = [
        ("not above", {"plan": "eco"}, "That plan is not above the one you hold now"),
        ("unknown plan", {"plan": "platinum"}, "That plan does not exist"),
        ("no plan", {"reason": "please"}, "Choose the plan you would like."),
        ("plan not text", {"plan": 7}, "Choose the plan you would like."),
        ("reason too long", {"plan": "pro", "reason": "z" * 501}, "The reason is too long (501 characters"),
        ("reason not text", {"plan": "pro", "reason": ["a"]}, "The reason must be text."),
    ]
    cards = [mine, form]
    for case, data, message in cases:
        before, mark = snapshot(desk.lic), audit_mark(desk.lic)
        card = (await lee.execute("mylicense.send", data, message_id=form.message_id)).expect_card()
        assert heading_of(card) == "Request an upgrade", case
        assert message in text_of(card), (case, text_of(card))
        refused_once(desk, mark, before, "request.create", case)
        cards.append(card)
    kept = cards[-2]
    reason = next(el for el in kept["body"] if el.get("id") == "reason")
    assert reason["value"] == "z" * 500 and reason["maxLength"] == 500  # what was typed is kept (within limit)
    assert_valid_cards(cards)


async def test_members_see_the_command_in_help(desk):
    lee = desk.member()
    [help_card] = await lee.say("help")
    assert "my license: see your license and ask for an upgrade" in texts_of(help_card)
    assert not any(t.startswith("requests:") for t in texts_of(help_card))
    [help_card] = await desk.admin().say("help")
    assert "requests: see pending upgrade requests" in texts_of(help_card)
