"""A pool's administration through real HTTP: removing free seats at renewal (and cancelling),
unassigning users (who are told), scheduling a downgrade at renewal for selected users or a
whole pool, cancelling it, and its effect once the period rolls over (users told each time);
every refusal (a clear card, one refused audit event, no change), stale cards and double
clicks, wrong role and wrong account, English and French."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from core.demo import TENANT
from core.models import OutboxMessage, Pool, Seat
from core.money import money
from core.views import Actor
from tests.cardcheck import assert_card_budget, assert_valid_cards
from tests.harness import (
    ALEX,
    InputRequired,
    Watch,
    add_fabrikam,
    add_pool_users,
    choices_of,
    facts_of,
    find_action,
    has_action,
    heading_of,
    pool_button,
    pool_id,
    text_of,
    tick,
)

FAB_TENANT = "55555555-5555-5555-5555-555555555555"
FAB_ADMIN = "55555555-0000-0000-0000-000000000001"
FAB_WORKER = "55555555-0000-0000-0000-000000000002"
QTY_ERROR = "The quantity must be a whole number from 1 to 10,000."
RENEWAL = "Apr 1, 2026"  # the demo's monthly period ends then (test clock: 2026-03-10)


def pool_row(desk, pid: int) -> Pool:
    with desk.lic.db.read() as s:
        return s.get(Pool, pid)


def seat_of(desk, name: str, family: str = "standard") -> Seat | None:
    with desk.lic.db.read() as s:
        return s.scalars(select(Seat).where(Seat.user_id == desk.user(name).id, Seat.family == family)).first()


def outbox_kinds(desk, kind: str) -> list[int]:
    with desk.lic.db.read() as s:
        return sorted(s.scalars(select(OutboxMessage.user_id).where(OutboxMessage.kind == kind)))


async def users_card(client, plan: str, interval: str):
    [pools] = await client.say("licenses")
    return (await client.act(pools, pool_button(pools, plan, interval))).expect_card()


# ============================================================================ removing seats


async def test_remove_free_seats_journey(desk, clock):
    alex = desk.admin()
    eco = pool_id(desk, "eco", "month")
    seen = []
    users = await users_card(alex, "Eco", "monthly")
    form = (await alex.act(users, "Remove free seats")).expect_card()
    seen.append(form)
    assert heading_of(form) == "Remove seats from Eco (monthly)"
    f = facts_of(form)
    # 30 bought, 24 assigned; renewal: n x $8.00 x (1 - 15 %)
    assert (f["Bought"], f["Assigned"], f["Free to remove"], f["Next renewal"]) == ("30", "24", "6", RENEWAL)
    assert f["Renewal now: 30 seats"] == money(30 * 680, "USD")
    assert f["After removing 1: 29 seats"] == money(29 * 680, "USD")

    form = (await alex.act(form, "Update amounts", qty="2")).expect_card()
    assert facts_of(form)["After removing 2: 28 seats"] == money(28 * 680, "USD")

    # every invalid quantity: the form again, saying why; nothing changes
    for qty in ["0", "-1", "10001", "2.5", "abc", ""]:
        watch = Watch(desk)
        refused = (await alex.act(form, "Remove at renewal", qty=qty)).expect_card()
        assert heading_of(refused) == "Remove seats from Eco (monthly)" and QTY_ERROR in text_of(refused), qty
        watch.refused("seats.remove", qty)
        watch.unchanged(qty)
    watch = Watch(desk)
    refused = (await alex.act(form, "Update amounts", qty="abc")).expect_card()
    assert QTY_ERROR in text_of(refused)
    watch.refused("seats.remove_preview")
    watch.unchanged()
    # more than the free seats: unassign first
    watch = Watch(desk)
    refused = (await alex.act(form, "Remove at renewal", qty="7")).expect_card()
    seen.append(refused)
    assert "Only 6 seats of this pool are free. Unassign users first, then remove their seats." in text_of(refused)
    watch.refused("seats.remove")
    watch.unchanged()

    done = (await alex.act(form, "Remove at renewal", qty="2")).expect_card()
    seen.append(done)
    assert heading_of(done) == "Seats removed at renewal"
    assert f"2 seats of Eco (monthly) leave on {RENEWAL}. Nothing is refunded." in text_of(done)
    assert facts_of(done)["Already leaving at renewal"] == "2"
    assert facts_of(done)["Renewal from then: 28 seats"] == money(28 * 680, "USD")
    assert (pool_row(desk, eco).quantity, pool_row(desk, eco).removal_scheduled) == (30, 2)
    [pools] = await alex.say("licenses")
    assert "2 seats leave at renewal" in text_of(pools)

    # a double click on the form: nothing more is removed
    watch = Watch(desk)
    again = (await alex.act(form, "Remove at renewal", qty="2")).expect_card()
    assert "changed since this card was shown: 2 now leave at renewal" in text_of(again)
    assert facts_of(again)["Already leaving at renewal"] == "2" and facts_of(again)["Free to remove"] == "4"
    watch.refused("seats.remove")
    watch.unchanged()

    # cancel the removal; a second cancel has nothing to cancel
    cancelled = (await alex.act(done, "Cancel the removal")).expect_card()
    seen.append(cancelled)
    assert heading_of(cancelled) == "Removal cancelled"
    assert facts_of(cancelled)["Renewal from then: 30 seats"] == money(30 * 680, "USD")
    assert pool_row(desk, eco).removal_scheduled == 0
    watch = Watch(desk)
    replay = (await alex.act(done, "Cancel the removal")).expect_card()
    assert "nothing to cancel" in text_of(replay)
    watch.refused("card.seats.remove.cancel")
    watch.unchanged()

    # remove again, then the period ends: the pool renews with fewer seats
    form = (await alex.act(cancelled, "Remove free seats")).expect_card()
    done = (await alex.act(form, "Remove at renewal", qty="3")).expect_card()
    assert facts_of(done)["Renewal from then: 27 seats"] == money(27 * 680, "USD")
    clock.now = desk.lic.pools.pool(Actor(TENANT, ALEX), eco).renewal_date + timedelta(minutes=1)
    assert desk.lic.periods.roll_over() >= 1
    assert (pool_row(desk, eco).quantity, pool_row(desk, eco).removal_scheduled) == (27, 0)
    assert_valid_cards(seen)
    for c in seen:
        assert_card_budget(c)


async def test_no_free_seat_means_unassign_first(desk):
    alex = desk.admin()
    pro = pool_id(desk, "pro", "month")  # 6 bought, 4 assigned
    desk.lic.seats.remove_seats(Actor(TENANT, ALEX), pro, 2)
    users = await users_card(alex, "Pro", "monthly")
    form = (await alex.act(users, "Remove free seats")).expect_card()
    assert "No seat of this pool is free: unassign users first" in text_of(form)
    assert not has_action(form, "Remove at renewal") and has_action(form, "Cancel the removal")
    watch = Watch(desk)
    forged = (await alex.execute("seats.remove.confirm", {"pool": pro, "scheduled": 2, "qty": "1"},
                                 message_id=form.message_id)).expect_card()
    assert "Only 0 seats of this pool are free. Unassign users first" in text_of(forged)
    watch.refused("seats.remove")
    watch.unchanged()
    for data in ({"pool": pro, "qty": "1"}, {"pool": pro, "scheduled": "x", "qty": "1"},
                 {"pool": pro, "scheduled": -1, "qty": "1"}):
        watch = Watch(desk)
        bad = (await alex.execute("seats.remove.confirm", data)).expect_card()
        assert heading_of(bad) == "That didn't work" and "This card is not valid" in text_of(bad)
        watch.refused("card.seats.remove.confirm")
        watch.unchanged()
    assert_valid_cards([form])


# ============================================================================ unassigning


async def test_unassign_from_the_users_card(desk):
    alex = desk.admin()
    lee = desk.member(locale="fr-FR")
    await lee.install()
    eco = pool_id(desk, "eco", "month")
    users = await users_card(alex, "Eco", "monthly")

    # nobody ticked: the users card again, saying so
    watch = Watch(desk)
    again = (await alex.act(users, "Unassign")).expect_card()
    assert heading_of(again) == "Eco (monthly): 24 users" and "Select at least one user first." in text_of(again)
    watch.refused("card.pool.unassign")
    watch.unchanged()

    confirm = (await alex.act(users, "Unassign", users=tick(users, "users", "Adele Vance", "Lee Gu"))).expect_card()
    assert heading_of(confirm) == "Unassign 2 users from Eco (monthly)"
    assert set(text_of(confirm).splitlines()[1].split(", ")) == {"Adele Vance", "Lee Gu"}
    assert seat_of(desk, "Adele Vance") is not None  # nothing happens before confirming
    done = (await alex.act(confirm, "Unassign 2 users")).expect_card()
    assert heading_of(done) == "2 users unassigned"
    assert "8 seats of Eco (monthly) are free now." in text_of(done)
    assert seat_of(desk, "Adele Vance") is None and seat_of(desk, "Lee Gu") is None
    assert pool_row(desk, eco).quantity == 30  # the seats stay, free

    # the users are told, each in their own language
    assert await desk.notify() == 2
    [notice] = lee.proactive_cards()
    assert heading_of(notice) == "Votre licence a été retirée"
    assert "Alex Wilber a retiré votre licence Eco." in text_of(notice)
    [activity] = desk.connector.sent(desk.chat_of(desk.user("Adele Vance").aad_object_id))
    adele_notice = activity["attachments"][0]["content"]
    assert heading_of(adele_notice) == "Your license was removed"
    assert "Alex Wilber removed your Eco license." in text_of(adele_notice)

    # a double click: the users card as it is now, nothing changed, nobody told twice
    watch = Watch(desk)
    stale = (await alex.act(confirm, "Unassign 2 users")).expect_card()
    assert heading_of(stale) == "Eco (monthly): 22 users" and "no longer hold a seat" in text_of(stale)
    watch.refused("seat.unassign")
    watch.unchanged()
    assert await desk.notify() == 0

    # a selection gone stale before the confirmation card
    users = (await alex.act(done, "Users of this pool")).expect_card()
    ticked = tick(users, "users", "Allan Archie")
    desk.lic.seats.unassign(Actor(TENANT, ALEX), eco, [desk.user("Allan Archie").id])
    watch = Watch(desk)
    stale = (await alex.act(users, "Unassign", users=ticked)).expect_card()
    assert heading_of(stale) == "Eco (monthly): 21 users" and "1 of the selected users no longer holds" in text_of(
        stale)
    watch.refused("card.pool.unassign")
    watch.unchanged()
    assert_valid_cards([confirm, done, notice, adele_notice, stale])


# ============================================================================ downgrades


async def test_downgrade_schedule_cancel_and_apply(desk, clock):
    alex = desk.admin()
    pro = pool_id(desk, "pro", "month")  # Alex + 3 users
    users = await users_card(alex, "Pro", "monthly")
    names = [title.split(" — ")[0] for title, _ in choices_of(users, "users") if not title.startswith("Alex")]
    a, b = names[:2]
    for name in (a, b):
        await desk.client_named(name).install()
    seen = []
    card = (await alex.act(users, "Downgrade at renewal", users=tick(users, "users", a, b))).expect_card()
    seen.append(card)
    assert heading_of(card) == "Downgrade at renewal from Pro (monthly)"
    assert choices_of(card, "plan") == [(f"Eco: {money(800, 'USD')} per seat per month", "eco"),
                                        (f"Advanced: {money(1500, 'USD')} per seat per month", "advanced")]
    assert [v for _, v in choices_of(card, "who")] == ["sel", "pool"]
    assert choices_of(card, "who")[1][0] == "Everyone in this pool (4 users)"
    assert f"keep Pro until {RENEWAL}" in text_of(card)

    # refusals: a plan that is not lower, another family, no such plan, no plan, nobody
    for plan, message, action in [("pro", "Pro is not below Pro", "downgrade.schedule"),
                                  ("api_advanced", "not in the same family", "downgrade.schedule"),
                                  ("platinum", "There is no plan", "downgrade.schedule")]:
        watch = Watch(desk)
        refused = (await alex.act(card, "Schedule", plan=plan)).expect_card()
        assert message in text_of(refused), (plan, text_of(refused))
        watch.refused(action, plan)
        watch.unchanged(plan)
    with pytest.raises(InputRequired):
        await alex.act(card, "Schedule", plan="")
    data = find_action(card, "Schedule")["data"]
    watch = Watch(desk)
    refused = (await alex.execute("downgrade.schedule", dict(data, who="sel"))).expect_card()
    assert heading_of(refused) == "Downgrade at renewal from Pro (monthly)"
    assert "Choose the new plan first." in text_of(refused)
    watch.refused("card.downgrade.schedule")
    watch.unchanged()
    watch = Watch(desk)
    refused = (await alex.execute("downgrade.schedule", dict(data, who="everyone", plan="eco"))).expect_card()
    assert "Choose whom to downgrade" in text_of(refused)
    watch.refused("card.downgrade.schedule")
    watch.unchanged()

    # schedule: the users keep Pro until the renewal and are told the date
    done = (await alex.act(card, "Schedule", plan="eco", who="sel")).expect_card()
    seen.append(done)
    assert heading_of(done) == "Downgrade scheduled"
    assert f"2 users move from Pro to Eco on {RENEWAL}. They keep Pro until then" in text_of(done)
    assert facts_of(done)["Renewal from then: 4 seats"] == money(4 * 2465, "USD")  # 6 - 2 Pro seats renew
    assert (seat_of(desk, a).downgrade_to, seat_of(desk, b).downgrade_to) == ("eco", "eco")
    assert seat_of(desk, a).pool_id == pro
    watch = Watch(desk)
    twice = (await alex.act(card, "Schedule", plan="eco", who="sel")).expect_card()
    assert "already scheduled" in text_of(twice)
    watch.refused("downgrade.schedule")
    watch.unchanged()
    assert await desk.notify() == 2
    for name in (a, b):
        [notice] = desk.client_named(name).proactive_cards()
        assert heading_of(notice) == "Your license changes at renewal"
        assert f"You keep Pro until {RENEWAL}, then you will have Eco." in text_of(notice)
    seen.append(notice)

    # the users card shows it; choosing them again offers to cancel
    users = (await alex.act(done, "Users of this pool")).expect_card()
    assert any("downgrade to Eco scheduled" in title for title, _ in choices_of(users, "users"))
    card = (await alex.act(users, "Downgrade at renewal", users=tick(users, "users", a, b))).expect_card()
    assert "2 of the selected users already have a downgrade scheduled." in text_of(card)
    clock.advance(seconds=30)
    cancelled = (await alex.act(card, "Cancel their downgrade")).expect_card()
    seen.append(cancelled)
    assert heading_of(cancelled) == "Downgrade cancelled"
    assert f"2 users keep Pro after {RENEWAL}" in text_of(cancelled)
    assert seat_of(desk, a).downgrade_to is None and seat_of(desk, b).downgrade_to is None
    watch = Watch(desk)
    again = (await alex.act(done, "Cancel this downgrade")).expect_card()
    assert "None of these users has a downgrade scheduled." in text_of(again)
    watch.refused("downgrade.cancel")
    watch.unchanged()
    assert await desk.notify() == 2
    notice = desk.client_named(a).proactive_cards()[-1]
    assert heading_of(notice) == "Your license change was cancelled"
    assert "You keep Pro" in text_of(notice)

    # schedule one to Advanced; past the period end the roll-over applies it and tells them
    clock.advance(seconds=30)  # (a notice is queued once per seat and second)
    users = (await alex.act(cancelled, "Users of this pool")).expect_card()
    card = (await alex.act(users, "Downgrade at renewal", users=tick(users, "users", a))).expect_card()
    (await alex.act(card, "Schedule", plan="advanced", who="sel")).expect_card()
    assert await desk.notify() == 1
    advanced = pool_id(desk, "advanced", "month")
    before = (pool_row(desk, pro).quantity, pool_row(desk, advanced).quantity)
    clock.now = desk.lic.pools.pool(Actor(TENANT, ALEX), pro).renewal_date + timedelta(minutes=1)
    assert desk.lic.periods.roll_over() >= 1
    assert seat_of(desk, a).pool_id == advanced and seat_of(desk, a).downgrade_to is None
    assert seat_of(desk, b).pool_id == pro
    assert (pool_row(desk, pro).quantity, pool_row(desk, advanced).quantity) == (before[0] - 1, before[1] + 1)
    assert await desk.notify() == 1
    notice = desk.client_named(a).proactive_cards()[-1]
    seen.append(notice)
    assert heading_of(notice) == "Your license changed"
    assert f"You now have Advanced (was Pro), since {RENEWAL}." in text_of(notice)
    assert outbox_kinds(desk, "downgrade_applied") == [desk.user(a).id]
    assert_valid_cards(seen)


async def test_downgrade_a_whole_pool_and_the_limits(desk):
    alex = desk.admin()
    # a small pool, nobody selected: the whole pool
    users = await users_card(alex, "API Pro", "yearly")  # 5 bought, 4 assigned
    card = (await alex.act(users, "Downgrade at renewal")).expect_card()
    assert choices_of(card, "who") == [("Everyone in this pool (4 users)", "pool")]
    assert [v for _, v in choices_of(card, "plan")] == ["api_advanced"]
    done = (await alex.act(card, "Schedule")).expect_card()
    assert "4 users move from API Pro to API Advanced" in text_of(done)
    with desk.lic.db.read() as s:
        pid = pool_id(desk, "api_pro", "year")
        assert set(s.scalars(select(Seat.downgrade_to).where(Seat.pool_id == pid))) == {"api_advanced"}
    assert len(outbox_kinds(desk, "downgrade_scheduled")) == 4

    # the lowest tier has nothing below
    users = await users_card(alex, "Eco", "monthly")
    low = (await alex.act(users, "Downgrade at renewal", users=tick(users, "users", "Adele Vance"))).expect_card()
    assert "Eco is the lowest tier of its family" in text_of(low) and not has_action(low, "Schedule")

    # a pool over the 250 cap: no whole-pool choice, and a forged one is refused
    adv = pool_id(desk, "advanced", "month")
    add_pool_users(desk.lic, adv, [(f"Bulk User {i:03d}", f"bulk{i:03d}@contoso.com") for i in range(300)])
    users = await users_card(alex, "Advanced", "monthly")
    watch = Watch(desk)
    refused = (await alex.act(users, "Downgrade at renewal")).expect_card()
    assert "Select at least one user first." in text_of(refused)
    watch.refused("card.downgrade.choose")
    watch.unchanged()
    first = choices_of(users, "users")[0][0]
    big = (await alex.act(users, "Downgrade at renewal", users=tick(users, "users", first))).expect_card()
    assert [v for _, v in choices_of(big, "who")] == ["sel"]
    assert "This pool has 312 users: at most 250 can be downgraded at once" in text_of(big)
    watch = Watch(desk)
    forged = (await alex.execute("downgrade.schedule", dict(find_action(big, "Schedule")["data"], who="pool",
                                                             plan="eco"))).expect_card()
    assert "at most 250 can be downgraded at once" in text_of(forged)
    watch.refused("card.downgrade.schedule")
    watch.unchanged()
    assert_valid_cards([card, done, low, big])
    assert_card_budget(big)


async def test_downgrade_and_removal_in_french(desk):
    megan = desk.client(desk.user("Megan Bowen").aad_object_id, locale="fr-FR")
    lee = desk.member(locale="fr-FR")
    await lee.install()
    [pools] = await megan.say("licences")
    users = (await megan.act(pools, pool_button(pools, "Eco", "mensuel"))).expect_card()
    form = (await megan.act(users, "Supprimer des licences libres")).expect_card()
    assert heading_of(form) == "Supprimer des licences d'Eco (mensuel)"
    assert facts_of(form)["Libres à supprimer"] == "6"
    done = (await megan.act(form, "Supprimer au renouvellement", qty="1")).expect_card()
    assert heading_of(done) == "Licences supprimées au renouvellement"
    assert "1 licence d'Eco (mensuel) part le 1 avr. 2026." in text_of(done)

    # Lee (in French) moves from Eco to Advanced, then is downgraded at renewal
    lee_id = desk.user("Lee Gu").id
    desk.lic.seats.unassign(Actor(TENANT, ALEX), pool_id(desk, "eco", "month"), [lee_id])
    desk.lic.seats.assign(Actor(TENANT, ALEX), lee_id, pool_id(desk, "advanced", "month"))
    await desk.notify()
    [pools] = await megan.say("licences")
    users = (await megan.act(pools, pool_button(pools, "Advanced", "mensuel"))).expect_card()
    users = (await megan.act(users, "Rechercher", q="Lee")).expect_card()
    card = (await megan.act(users, "Rétrograder au renouvellement", users=tick(users, "users", "Lee Gu"))
            ).expect_card()
    assert heading_of(card) == "Rétrograder au renouvellement depuis Advanced (mensuel)"
    done = (await megan.act(card, "Planifier", plan="eco", who="sel")).expect_card()
    assert heading_of(done) == "Rétrogradation planifiée"
    assert await desk.notify() == 1
    notice = lee.proactive_cards()[-1]
    assert heading_of(notice) == "Votre licence change au renouvellement"
    assert "Vous gardez Advanced jusqu'au 1 avr. 2026, puis vous aurez Eco." in text_of(notice)
    assert_valid_cards([form, done, card, notice])


# ============================================================================ role and account


VERBS = ["seats.remove", "seats.remove.confirm", "seats.remove.cancel", "pool.unassign", "pool.unassign.confirm",
         "downgrade.choose", "downgrade.schedule", "downgrade.cancel"]


async def test_wrong_role_and_wrong_account(desk):
    fab = add_fabrikam(desk.lic, tenant=FAB_TENANT, admin=FAB_ADMIN, worker=FAB_WORKER, plan="pro",
                       removal_scheduled=1, downgrades={"worker": "eco"})
    lee, alex = desk.member(), desk.admin()
    eco = pool_id(desk, "eco", "month")
    adele = desk.user("Adele Vance").id
    for verb in VERBS:
        data = {"pool": eco, "sel": [adele], "users": str(adele), "ids": [adele], "scheduled": 0, "qty": "1",
                "plan": "eco", "who": "sel"}
        watch = Watch(desk)
        shown = (await lee.execute(verb, data)).expect_card()
        assert heading_of(shown) == "Administrators only" and "Only an administrator" in text_of(shown), verb
        watch.refused(case=verb)
        watch.unchanged(verb)

        data = dict(data, pool=fab["pool"], sel=[fab["worker"]], users=str(fab["worker"]), ids=[fab["worker"]],
                    scheduled=1)
        watch = Watch(desk)
        shown = (await alex.execute(verb, data)).expect_card()
        assert "does not exist in your account" in text_of(shown), (verb, text_of(shown))
        assert "Fabrikam" not in text_of(shown)
        event = watch.refused(case=verb)
        assert event.tenant_id == TENANT and event.detail.get("code") == "not_found", verb
        watch.unchanged(verb)


async def test_malformed_pool_references(desk):
    alex = desk.admin()
    for verb in VERBS:
        for pool in (None, "abc", True):
            watch = Watch(desk)
            shown = (await alex.execute(verb, {"pool": pool, "sel": [1], "qty": "1", "scheduled": 0})).expect_card()
            assert "pool reference is not valid" in text_of(shown), (verb, pool, text_of(shown))
            watch.refused(f"card.{verb}", f"{verb} {pool}")
            watch.unchanged(verb)
