"""Upgrade requests through real HTTP: a member asks from "My license", every admin receives
the request card (proactively, through the outbox and the fake Bot Connector), the first
decision wins even when two admins click at once, every admin's card is updated in place,
the requester is told either way; and every bad click is a clear card, audited, changing
nothing."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from core.demo import TENANT
from core.models import OutboxMessage, PostedCard, Quote, Seat, UpgradeRequest
from core.views import Actor
from tests.cardcheck import assert_card_budget, assert_valid_cards
from tests.harness import (
    ALEX,
    FAB_ADMIN,
    FAB_TENANT,
    LEE,
    MEGAN,
    Watch,
    actions_of,
    add_fabrikam,
    add_pool_users,
    audit_mark,
    audit_since,
    choice_value,
    choices_of,
    facts_of,
    has_action,
    heading_of,
    pool_id,
    text_of,
)

REQUEST_TITLE = "Upgrade request from Lee Gu"


class Seen(list):
    """Every card a test saw, validated in one batch at the end (and each within budget)."""

    def add(self, *cards):
        for c in cards:
            assert c is not None
            assert_card_budget(c)
            self.append(c)
        return cards[0] if len(cards) == 1 else cards

    def check(self):
        assert_valid_cards(self)


async def installed(desk, *aads, locale="en-US"):
    clients = [desk.client(aad, locale=locale) for aad in aads]
    for c in clients:
        assert await c.install()
    return clients


def requests_of(desk) -> list[UpgradeRequest]:
    with desk.lic.db.read() as s:
        return list(s.scalars(select(UpgradeRequest).order_by(UpgradeRequest.id)))


def quotes_of(desk, request_id: int) -> list[Quote]:
    with desk.lic.db.read() as s:
        return list(s.scalars(select(Quote).where(Quote.request_id == request_id)))


def outbox_kinds(desk) -> list[str]:
    with desk.lic.db.read() as s:
        return sorted(s.scalars(select(OutboxMessage.kind)))


async def ask(lee, plan_title: str, reason: str | None, seen: Seen, *, labels=None):
    """Lee: "mylicense" → Request an upgrade → choose a plan, give a reason → Send."""
    labels = labels or {"cmd": "mylicense", "request": "Request an upgrade", "send": "Send the request"}
    [mine] = await lee.say(labels["cmd"])
    form = (await lee.act(mine, labels["request"])).expect_card()
    inputs = {"plan": choice_value(form, "plan", plan_title)}
    if reason is not None:
        inputs["reason"] = reason
    sent = (await lee.act(form, labels["send"], **inputs)).expect_card()
    seen.add(mine, form, sent)
    return mine, form, sent


# ============================================================================ the approval race


async def test_request_reaches_every_admin_and_the_first_of_two_simultaneous_approvals_wins(desk):
    seen = Seen()
    lee, alex = await installed(desk, LEE, ALEX)
    megan = desk.client(MEGAN)  # never talked to the bot: her 1:1 chat is created for the request card

    mine, form, sent = await ask(lee, "Pro", "  I design the\x00 new product line  ", seen)
    assert heading_of(mine) == "Your licenses"
    assert choices_of(form, "plan") == [("Advanced (Standard, instead of Eco)", "advanced"),
                                        ("Pro (Standard, instead of Eco)", "pro")]
    assert heading_of(sent) == "Request sent"
    assert "asked to move you from Eco to Pro" in text_of(sent)
    [req] = requests_of(desk)
    assert (req.status, req.from_plan, req.to_plan, req.reason) == (
        "pending", "eco", "pro", "I design the new product line")  # control characters cleaned
    assert outbox_kinds(desk) == ["request_created", "request_created"]

    # My license now shows the pending request, and there is nothing more to ask for
    [mine] = await lee.say("my license")
    assert "You asked for Pro on" in facts_of(mine)["Upgrade request"]
    assert not has_action(mine, "Request an upgrade")
    seen.add(mine)

    # the notifier: one request card per admin, in their own chat; the requester gets nothing
    assert await desk.notify() == 2
    [card_a], [card_m] = alex.proactive_cards(), megan.proactive_cards()
    assert lee.proactive_cards() == []
    assert [c.new_id for c in desk.connector.created()] == [megan.conversation_id]
    for c in (card_a, card_m):
        assert heading_of(c) == REQUEST_TITLE
        assert facts_of(c)["Change"] == "Eco → Pro"
        assert facts_of(c)["Reason"] == "I design the new product line"
        assert "lee.gu@contoso.com" in facts_of(c)["Requested by"]
        assert "Waiting for a decision." in text_of(c)
        assert c["refresh"]["action"]["verb"] == "request.refresh"
        assert c["refresh"]["action"]["data"] == {"request": req.id}
    with desk.lic.db.read() as s:
        posted = s.scalars(select(PostedCard).where(PostedCard.subject == "request")).all()
    assert sorted((p.subject_id, p.message_ref) for p in posted) == sorted(
        (str(req.id), c.message_id) for c in (card_a, card_m))
    assert (await alex.refresh(card_a)).expect_card() == card_a  # the live status: still pending
    seen.add(card_a, card_m)

    # both admins click Approve at the same moment
    mark = audit_mark(desk.lic)
    reply_a, reply_m = await asyncio.gather(alex.act(card_a, "Approve"), megan.act(card_m, "Approve"))
    shown = {"Alex Wilber": reply_a.expect_card(), "Megan Bowen": reply_m.expect_card()}
    [quote] = quotes_of(desk, req.id)
    winner = "Alex Wilber" if quote.created_by == desk.user("Alex Wilber").id else "Megan Bowen"
    loser = "Megan Bowen" if winner == "Alex Wilber" else "Alex Wilber"
    clients = {"Alex Wilber": alex, "Megan Bowen": megan}
    cards = {"Alex Wilber": card_a, "Megan Bowen": card_m}
    [req] = requests_of(desk)
    assert (req.status, req.decided_by, req.quote_id) == ("approved", desk.user(winner).id, quote.id)

    won = shown[winner]
    assert heading_of(won) == "Upgrade quote"
    assert facts_of(won)["Users"] == "Lee Gu" and facts_of(won)["Change"] == "Eco → Pro (monthly)"
    pay_url = clients[winner].open_url(won, "Pay …")
    lost = shown[loser]
    assert heading_of(lost) == REQUEST_TITLE
    assert f"This request was already approved by {winner}" in text_of(lost)
    assert f"Approved by {winner}" in text_of(lost) and not has_action(lost, "Approve")
    events = audit_since(desk.lic, mark)
    assert sorted((e.action, e.outcome) for e in events if e.action.startswith("request.")) == [
        ("request.approve", "refused"), ("request.approved", "ok")]
    seen.add(won, lost)

    # the next notifier run: both admins' cards updated in place, the requester told once
    mark = desk.connector.mark()
    assert await desk.notify() == 3  # 2 card updates + 1 notice
    for name in (winner, loser):
        c = clients[name]
        [update] = c.updates(cards[name].message_id)
        assert update["attachments"][0]["content"] == c.card_in(cards[name].message_id)
    after_loser = clients[loser].card_in(cards[loser].message_id)
    assert heading_of(after_loser) == REQUEST_TITLE
    assert f"Approved by {winner} on" in text_of(after_loser)
    assert f"The upgrade quote was sent to {winner}." in text_of(after_loser)
    assert "refresh" not in after_loser and not has_action(after_loser, "Approve")
    # the approver's message became the quote card: it keeps its payment link
    after_winner = clients[winner].card_in(cards[winner].message_id)
    assert heading_of(after_winner) == "Upgrade quote" and clients[winner].open_url(after_winner, "Pay …") == pay_url
    [notice] = lee.proactive_cards()
    assert heading_of(notice) == "Your upgrade request was approved"
    assert f"{winner} approved your request for Pro" in text_of(notice)
    assert len([c for c in desk.connector.since(mark) if c.kind == "update"]) == 2
    assert await desk.notify() == 0
    seen.add(after_loser, after_winner, notice)

    # the other admin can open the quote from the decided card: the same quote, the same link
    opened = (await clients[loser].act(after_loser, "Open the quote")).expect_card()
    assert heading_of(opened) == "Upgrade quote" and clients[loser].open_url(opened, "Pay …") == pay_url
    # Lee sees the approval in "My license"
    [mine] = await lee.say("mylicense")
    assert facts_of(mine)["Upgrade request"] == f"Pro approved by {winner}; it applies as soon as the payment is made"
    seen.add(opened, mine)

    # paying upgrades Lee, who is told; the request shows no more in "My license"
    assert (await desk.post_form(pay_url, {"action": "pay"})).status == 200
    await desk.notify()
    assert [heading_of(c) for c in lee.proactive_cards()] == ["Your upgrade request was approved",
                                                              "Your license was upgraded"]
    [mine] = await lee.say("mylicense")
    assert "Pro" in text_of(mine) and "Upgrade request" not in facts_of(mine)
    with desk.lic.db.read() as s:
        assert s.scalar(select(Seat.pool_id).where(Seat.user_id == req.requester_id)) == pool_id(desk, "pro", "month")
    seen.add(mine)
    seen.check()


# ============================================================================ decline, stale cards


async def test_decline_with_a_reason_tells_the_requester_and_every_admin(desk):
    seen = Seen()
    [lee] = await installed(desk, LEE, locale="fr-FR")
    [megan] = await installed(desk, MEGAN, locale="fr-FR")
    [alex] = await installed(desk, ALEX)
    labels = {"cmd": "ma licence", "request": "Demander une mise à niveau", "send": "Envoyer la demande"}
    mine, form, sent = await ask(lee, "Advanced", None, seen, labels=labels)
    assert heading_of(mine) == "Vos licences" and heading_of(sent) == "Demande envoyée"
    assert await desk.notify() == 2
    [card_m], [card_a] = megan.proactive_cards(), alex.proactive_cards()
    assert heading_of(card_m) == "Demande de mise à niveau de Lee Gu"
    assert heading_of(card_a) == REQUEST_TITLE  # each admin in their own language
    [req] = requests_of(desk)

    # Megan: Refuser → the form → a reason → Refuser
    decline = (await megan.act(card_m, "Refuser")).expect_card()
    assert heading_of(decline) == "Refuser la demande de Lee Gu"
    back = (await megan.act(decline, "Retour")).expect_card()
    assert heading_of(back) == heading_of(card_m) and has_action(back, "Approuver")
    decline = (await megan.act(back, "Refuser")).expect_card()
    done = (await megan.act(decline, "Refuser", reason="Pas ce trimestre")).expect_card()
    assert "Refusée par Megan Bowen le" in text_of(done) and "Motif donné\u00a0: Pas ce trimestre" in text_of(done)
    [req] = requests_of(desk)
    assert (req.status, req.decline_reason, req.quote_id) == ("declined", "Pas ce trimestre", None)
    seen.add(card_m, card_a, decline, back, done)

    # a double click on the form's Refuser: the decided card, audited, nothing changed
    watch = Watch(desk, unchanged_on_refusal=True)
    again = (await megan.act(decline, "Refuser", reason="encore")).expect_card()
    assert "Cette demande a déjà été refusée par Megan Bowen" in text_of(again)
    watch.refused("request.decline")
    seen.add(again)

    # the requester is told (with the reason); Alex's card shows the decision. Megan's message is
    # not updated in place: she had moved on to the decline form (another step) when she declined,
    # and her own answers show the decision already
    assert await desk.notify() == 2
    assert megan.updates(card_m.message_id) == [] and megan.card_in(card_m.message_id) == again
    [notice] = lee.proactive_cards()
    assert heading_of(notice) == "Votre demande de mise à niveau a été refusée"
    assert "Megan Bowen a refusé votre demande pour Advanced." in text_of(notice)
    assert "Motif\u00a0: Pas ce trimestre" in text_of(notice)
    now_a = alex.card_in(card_a.message_id)
    assert "Declined by Megan Bowen on" in text_of(now_a) and "Reason given: Pas ce trimestre" in text_of(now_a)
    assert not has_action(now_a, "Approve") and "refresh" not in now_a
    seen.add(notice, now_a)

    # Alex's stale card (as it was before the update): Approve and Decline are refused clearly
    for title, action in (("Approve", "request.approve"), ("Decline", "card.request.decline")):
        watch = Watch(desk, unchanged_on_refusal=True)
        stale = (await alex.act(card_a, title)).expect_card()
        assert heading_of(stale) == REQUEST_TITLE, title
        assert "This request was already declined by Megan Bowen" in text_of(stale), title
        watch.refused(action, case=title)
        seen.add(stale)
    assert quotes_of(desk, req.id) == []

    # Lee may ask again (the decided request no longer blocks)
    [mine] = await lee.say("mylicense")
    assert has_action(mine, "Demander une mise à niveau")
    seen.add(mine)
    seen.check()


async def test_double_request_is_refused_clearly(desk):
    seen = Seen()
    [lee] = await installed(desk, LEE)
    mine, form, sent = await ask(lee, "Pro", "faster renders", seen)
    # the same form sent again (a double click): refused, told, nothing changed
    watch = Watch(desk, unchanged_on_refusal=True)
    again = (await lee.act(form, "Send the request", plan="pro", reason="faster renders")).expect_card()
    assert heading_of(again) == "Your licenses"
    assert "You already asked for Pro on" in text_of(again) and "Nothing else was sent." in text_of(again)
    watch.refused("request.create")
    # another plan of the same family: refused too
    watch = Watch(desk, unchanged_on_refusal=True)
    other = (await lee.act(form, "Send the request", plan="advanced")).expect_card()
    assert "You already asked for Pro on" in text_of(other)
    watch.refused("request.create")
    assert len(requests_of(desk)) == 1 and outbox_kinds(desk) == ["request_created", "request_created"]
    seen.add(again, other)
    seen.check()


async def test_two_simultaneous_sends_make_one_request(desk):
    [lee] = await installed(desk, LEE)
    [mine] = await lee.say("mylicense")
    form = (await lee.act(mine, "Request an upgrade")).expect_card()
    mark = audit_mark(desk.lic)
    one, two = await asyncio.gather(lee.act(form, "Send the request", plan="pro"),
                                    lee.act(form, "Send the request", plan="pro"))
    headings = sorted(heading_of(r.expect_card()) for r in (one, two))
    assert headings == ["Request sent", "Your licenses"]
    assert len(requests_of(desk)) == 1
    assert outbox_kinds(desk) == ["request_created", "request_created"]
    events = [(e.action, e.outcome) for e in audit_since(desk.lic, mark) if e.action.startswith("request.")]
    assert sorted(events) == [("request.create", "refused"), ("request.created", "ok")]


# ============================================================================ the requests list


async def test_requests_lists_pending_requests_paged_with_approve_and_decline(desk):
    seen = Seen()
    [alex] = await installed(desk, ALEX)
    [empty] = await alex.say("requests")
    assert heading_of(empty) == "Pending upgrade requests (0)"
    assert "No upgrade request is waiting for a decision." in text_of(empty)
    seen.add(empty)

    lic = desk.lic
    eco = pool_id(desk, "eco", "month")
    bulk = add_pool_users(lic, eco, [(f"Bulk Person {i:02d}", f"bulk{i:02d}@contoso.com") for i in range(24)])
    for i in range(24):
        lic.requests.request_upgrade(Actor(TENANT, f"bulk-{i:08d}"), "advanced", "x" * 500 if i == 0 else None)
    lic.requests.request_upgrade(Actor(TENANT, LEE), "pro", "for the demo")
    [page1] = await alex.say("requests")
    assert heading_of(page1) == "Pending upgrade requests (25)"
    assert len([a for a in actions_of(page1) if a.get("title") == "Approve"]) == 20
    assert "Page 1 of 2" in text_of(page1)
    assert "“" + "x" * 100 in text_of(page1) and "x" * 200 not in text_of(page1)  # long reasons are cut
    page2 = (await alex.act(page1, "Next")).expect_card()
    assert "Page 2 of 2" in text_of(page2)
    assert "Lee Gu: Eco → Pro" in text_of(page2)
    seen.add(page1, page2)

    # Approve Lee's from the list: the quote card
    lee_id = desk.user("Lee Gu").id
    approve = next(a for a in actions_of(page2) if a.get("title") == "Approve"
                   and a["data"]["request"] == next(r.id for r in requests_of(desk) if r.requester_id == lee_id))
    quote = (await alex.act(page2, approve)).expect_card()
    assert heading_of(quote) == "Upgrade quote" and facts_of(quote)["Users"] == "Lee Gu"

    # Decline one from the list: the form, Back to the list, then declined: the list again, shorter
    [page1] = await alex.say("requests")
    assert heading_of(page1) == "Pending upgrade requests (24)"
    decline = next(a for a in actions_of(page1) if a.get("title") == "Decline")
    target = decline["data"]["request"]
    form = (await alex.act(page1, decline)).expect_card()
    back = (await alex.act(form, "Back")).expect_card()
    assert heading_of(back) == "Pending upgrade requests (24)"
    decline = next(a for a in actions_of(back) if a.get("title") == "Decline" and a["data"]["request"] == target)
    form = (await alex.act(back, decline)).expect_card()
    listed = (await alex.act(form, "Decline", reason="budget")).expect_card()
    assert heading_of(listed) == "Pending upgrade requests (23)"
    assert "Declined by Alex Wilber on" in text_of(listed)
    statuses = {r.id: r.status for r in requests_of(desk)}
    assert statuses[target] == "declined" and list(statuses.values()).count("pending") == 23
    assert set(bulk) >= {r.requester_id for r in requests_of(desk) if r.status == "pending"}
    seen.add(quote, form, back, listed)
    seen.check()


# ============================================================================ refusals


async def test_member_forging_admin_actions_is_refused(desk):
    [lee] = await installed(desk, LEE)
    req = desk.lic.requests.request_upgrade(Actor(TENANT, LEE), "pro")
    [mine] = await lee.say("mylicense")
    seen = Seen()
    watch = Watch(desk, unchanged_on_refusal=True)
    [card] = await lee.say("requests")
    assert heading_of(card) == "Administrators only"
    watch.refused("requests.list")
    seen.add(card)
    for verb, data, action in (
            ("request.approve", {"request": req.id}, "request.approve"),
            ("request.decline", {"request": req.id}, "request.decline"),
            ("request.decline_confirm", {"request": req.id, "reason": "mine"}, "request.decline"),
            ("request.refresh", {"request": req.id}, "request.view"),
            ("requests", {}, "requests.list")):
        watch = Watch(desk, unchanged_on_refusal=True)
        shown = (await lee.execute(verb, data, message_id=mine.message_id)).expect_card()
        assert heading_of(shown) == "Administrators only", verb
        assert "Only an administrator" in text_of(shown), verb
        watch.refused(action, case=verb)
        seen.add(shown)
    assert requests_of(desk)[0].status == "pending" and quotes_of(desk, req.id) == []
    seen.check()


async def test_wrong_account_and_malformed_references_are_refused(desk):
    add_fabrikam(desk.lic, upgrade_quote="pro")
    req = desk.lic.requests.request_upgrade(Actor(TENANT, LEE), "pro")
    ada = desk.client(FAB_ADMIN, tenant_id=FAB_TENANT, name="Ada Fabrikam")
    alex = desk.admin()
    [pools] = await alex.say("licenses")
    cases = [
        (ada, "request.approve", {"request": req.id}, "does not exist in your account", "request.approve"),
        (ada, "request.decline", {"request": req.id}, "does not exist in your account", "request.view"),
        (ada, "request.decline_confirm", {"request": req.id}, "does not exist in your account", "request.decline"),
        (alex, "request.approve", {"request": "abc"}, "request reference is not valid", "card.request.approve"),
        (alex, "request.approve", {}, "request reference is not valid", "card.request.approve"),
        (alex, "request.decline", {"request": True}, "request reference is not valid", "card.request.decline"),
        (alex, "request.approve", {"request": 987654}, "does not exist in your account", "request.approve"),
    ]
    seen = Seen()
    for who, verb, data, message, action in cases:
        watch = Watch(desk, unchanged_on_refusal=True)
        shown = (await who.execute(verb, data, message_id=pools.message_id)).expect_card()
        assert heading_of(shown) == "That didn't work", (verb, data)
        assert message in text_of(shown), (verb, data, text_of(shown))
        watch.refused(action, case=f"{verb} {data}")
        seen.add(shown)
    # a reason over 500 characters (forged past the input's limit): the form again, with the reason kept
    watch = Watch(desk, unchanged_on_refusal=True)
    shown = (await alex.execute("request.decline_confirm", {"request": req.id, "reason": "y" * 501},
                                message_id=pools.message_id)).expect_card()
    assert heading_of(shown) == "Decline the request of Lee Gu" and "too long" in text_of(shown)
    watch.refused("request.decline")
    seen.add(shown)
    assert requests_of(desk)[0].status == "pending"
    seen.check()


async def test_request_card_is_not_sent_once_decided_and_only_admins_get_it(desk):
    lic = desk.lic
    alex, megan = await installed(desk, ALEX, MEGAN)
    req = lic.requests.request_upgrade(Actor(TENANT, LEE), "pro")
    lic.requests.decline_request(Actor(TENANT, MEGAN), req.id, "no")  # decided before the notifier ran
    await desk.notify()
    assert alex.proactive_cards() == [] and megan.proactive_cards() == []
    with lic.db.read() as s:
        assert s.scalar(select(func.count()).select_from(PostedCard)) == 0
        statuses = s.scalars(select(OutboxMessage.status).where(OutboxMessage.kind == "request_created")).all()
    assert statuses == ["sent", "sent"]  # handled: nothing to show any more
