"""Cards that refresh themselves (Universal Actions ``refresh``) are refreshed automatically
only for the administrators who may act on them: Teams refreshes a card without ``userIds``
for every viewer of a chat of up to 60 people (the harness's ``TeamsClient.view`` models that
rule), so a member looking at an admin's quote in a group chat would get "Administrators only"
and write a refused audit event each time."""

from __future__ import annotations

from tests.harness import (
    ALEX,
    LEE,
    MEGAN,
    audit_mark,
    audit_since,
    choice_value,
    heading_of,
    pool_button,
    text_of,
    tick,
)
from tests.test_requests_journey import Seen, ask, installed


async def test_an_admin_card_in_a_group_chat_refreshes_for_the_admins_only(desk):
    alex, megan, lee = await installed(desk, ALEX, MEGAN, LEE)
    alex_g, megan_g, lee_g = desk.group_chat(alex, megan, lee)

    # Alex prepares an upgrade quote in the group chat, where Lee (a member) sees it too
    [pools] = await alex_g.say("licenses")
    users = (await alex_g.act(pools, pool_button(pools, "Eco", "monthly"))).expect_card()
    tiers = (await alex_g.act(users, "Choose tier", users=tick(users, "users", "Adele Vance"))).expect_card()
    quote = (await alex_g.act(tiers, "Upgrade", plan=choice_value(tiers, "plan", "Pro"))).expect_card()
    assert heading_of(quote) == "Upgrade quote"

    mark = audit_mark(desk.lic)
    calls = desk.connector.mark()
    assert await lee_g.view(quote) is None  # no refresh invoke for the member
    assert audit_since(desk.lic, mark) == []  # so no refused "Administrators only" either
    assert sorted(quote["refresh"]["userIds"]) == sorted([alex.user_id, megan.user_id])
    for admin in (alex_g, megan_g):  # each admin's view is live
        live = (await admin.view(quote)).expect_card()
        assert heading_of(live) == "Upgrade quote" and "Administrators only" not in text_of(live)
    assert [e for e in audit_since(desk.lic, mark) if e.outcome != "ok"] == []
    assert desk.connector.since(calls) == []  # (a refresh is answered in the invoke, nothing posted)


async def test_request_cards_refresh_for_the_admins_who_told_their_teams_id(desk):
    seen = Seen()
    lee, alex, megan = await installed(desk, LEE, ALEX, MEGAN)
    await ask(lee, "Pro", "for the new line", seen)
    assert await desk.notify() == 2
    [card_a], [card_m] = alex.proactive_cards(), megan.proactive_cards()
    for c in (card_a, card_m):
        assert c["refresh"]["action"]["verb"] == "request.refresh"
        assert sorted(c["refresh"]["userIds"]) == sorted([alex.user_id, megan.user_id])
    # in a group chat with Lee, the forwarded request card is not refreshed for him
    _, lee_g = desk.group_chat(alex, lee)
    mark = audit_mark(desk.lic)
    assert await lee_g.view(card_a) is None
    assert audit_since(desk.lic, mark) == []
    assert "Waiting for a decision." in text_of((await alex.view(card_a)).expect_card())


async def test_the_harness_refreshes_a_card_without_user_ids_as_teams_does(desk):
    """Teams: no ``userIds`` → automatic refresh for every viewer of a chat of at most 60
    members, for nobody in a larger one; ``userIds: []`` → for nobody."""
    alex, lee = await installed(desk, ALEX, LEE)
    card = {"type": "AdaptiveCard", "refresh": {"action": {"type": "Action.Execute", "verb": "help", "data": {}}}}
    small = desk.group_chat(alex, lee, size=60)
    large = desk.group_chat(alex, lee, size=61)
    assert heading_of((await small[1].view(card)).expect_card())
    assert await large[1].view(card) is None
    assert await small[1].view({**card, "refresh": {**card["refresh"], "userIds": []}}) is None
    assert heading_of((await small[0].view({**card, "refresh": {**card["refresh"],
                                                                 "userIds": [alex.user_id]}})).expect_card())
