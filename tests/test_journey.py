"""The whole upgrade journey through real HTTP: Teams (the harness) clicks the cards the bot
returns, the payment is made on the sandbox pay page, the notifier delivers through a fake
Bot Connector. Amounts are recomputed here from the pricing rules (core.pricing on the
pool's period and the discount in the database), never taken from the quote."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from babel.dates import format_date
from sqlalchemy import select, update

from cards.i18n import T
from core import pricing
from core.catalog import Catalog
from core.demo import TENANT
from core.models import Account, Discount, OutboxMessage, Pool, Quote, Seat, Subscription, User
from core.money import money
from payments.sandbox.checkout import SandboxCheckout
from tests.harness import (
    amount_rows,
    choice_value,
    choices_of,
    facts_of,
    find_action,
    heading_of,
    pool_button,
    selected,
    snapshot,
    text_of,
    tick,
)
from tests.test_outbox_faults import running, until_drained


@dataclass
class Expected:
    credit_gross: str
    charge_gross: str
    credit_discount: str  # the discount of each line (DESIGN.md applies it per line), with its sign
    charge_discount: str
    due: str
    renewal: str
    renewal_date: str
    percent: str
    due_minor: int


def expected_upgrade(desk, pool_id: int, n: int, to_plan: str, locale: str) -> Expected:
    """DESIGN.md's pricing rules applied independently: f from the pool's period and the test
    clock, d from the discount rows active now and at the period end, prices from the catalog."""
    catalog = Catalog.load()
    now = desk.lic.now()
    with desk.lic.db.read() as s:
        pool = s.get(Pool, pool_id)
        sub = s.get(Subscription, pool.subscription_id)
        currency = s.get(Account, pool.account_id).currency
        discounts = s.scalars(select(Discount).where(Discount.account_id == pool.account_id)).all()

    def active(t):
        found = [d for d in discounts if d.starts_at <= t and (d.ends_at is None or d.ends_at > t)]
        assert len(found) == 1, "the demo account has one discount, active now and at renewal"
        return found[0]

    assert sub.period_start <= now < sub.period_end
    f = pricing.remaining_fraction(sub.period_start, sub.period_end, now)
    disc = active(now)
    d = pricing.discount_rate(disc.percent_off)
    d_next = pricing.discount_rate(active(sub.period_end).percent_off)
    price_a = catalog.plan(pool.plan_code).price(sub.interval)
    price_b = catalog.plan(to_plan).price(sub.interval)
    r = pricing.round_half_up
    credit_gross, charge_gross = -r(n * price_a * f), r(n * price_b * f)
    # each line's discount is its percentage of the gross shown, to the cent (core/pricing.py)
    credit, charge = credit_gross + r(-credit_gross * d), charge_gross - r(charge_gross * d)
    due = credit + charge
    renewal = n * price_b - r(n * price_b * d_next)
    loc = locale.replace("-", "_")

    def m(amount: int) -> str:
        return money(amount, currency, loc)

    return Expected(m(credit_gross), m(charge_gross), "+" + m(credit - credit_gross), m(charge - charge_gross),
                    m(due), m(renewal),
                    format_date(sub.period_end, format="medium", locale=loc), f"{disc.percent_off.normalize():f}",
                    due)


def quote_id_of(card: dict) -> str:
    return find_action(card, "Refresh")["data"]["quote"]


def paid_at(desk, quote_id: str):
    with desk.lic.db.read() as s:
        return s.get(Quote, quote_id).closed_at


def seats_by_user(desk, user_ids) -> dict[int, int]:
    with desk.lic.db.read() as s:
        return dict(s.execute(select(Seat.user_id, Seat.pool_id)
                              .where(Seat.user_id.in_(user_ids), Seat.family == "standard")).all())


def pool_row(desk, pool_id: int) -> Pool:
    with desk.lic.db.read() as s:
        return s.get(Pool, pool_id)


def sibling_pool(desk, pool_id: int, plan_code: str) -> Pool:
    with desk.lic.db.read() as s:
        sub_id = s.get(Pool, pool_id).subscription_id
        return s.scalars(select(Pool).where(Pool.subscription_id == sub_id, Pool.plan_code == plan_code)).one()


def assigned(desk, pool_id: int) -> int:
    with desk.lic.db.read() as s:
        return len(s.scalars(select(Seat.id).where(Seat.pool_id == pool_id)).all())


async def test_upgrade_journey_by_clicking(desk):
    alex = desk.admin()
    welcome = await alex.install()
    assert welcome and heading_of(welcome[0]) == "Welcome to License Desk"

    # Two of the users to upgrade have the app (a stored address); three never talked to the bot.
    lee, isaiah = desk.member(), desk.client_named("Isaiah Langer")
    for person in (lee, isaiah):
        assert await person.install()
    adele, zoe, raul = (desk.user(n) for n in ("Adele Vance", "Zoë Patterson", "Raul Ølsen"))
    upgraded = {desk.user(n).id: desk.user(n).aad_object_id
                for n in ("Adele Vance", "Isaiah Langer", "Lee Gu", "Zoë Patterson", "Raul Ølsen")}

    [pools] = await alex.say("licenses")
    assert heading_of(pools) == "License pools of Contoso"
    eco_button = pool_button(pools, "Eco", "monthly")
    assert eco_button["title"] == "24"
    eco_id = eco_button["data"]["pool"]

    # users, page 1 of 2 (24 users): tick three
    users = (await alex.act(pools, eco_button)).expect_card()
    assert users.message_id == pools.message_id
    assert heading_of(users) == "Eco (monthly): 24 users"
    assert len(choices_of(users, "users")) == 20 and "Page 1 of 2" in text_of(users)
    page1 = tick(users, "users", "Adele Vance", "Isaiah Langer", "Lee Gu")

    # page 2: the selection travels; tick one more
    users = (await alex.act(users, "Next", users=page1)).expect_card()
    assert len(choices_of(users, "users")) == 4
    assert "Page 2 of 2 · 3 users selected" in text_of(users)
    users = (await alex.act(users, "Previous", users=tick(users, "users", "Zoë Patterson"))).expect_card()
    assert sorted(selected(users, "users")) == sorted(page1.split(","))  # still ticked on page 1
    assert "4 users selected" in text_of(users)

    # search by part of a name (accent-insensitive): "olse" finds Raul Ølsen
    users = (await alex.act(users, "Search", q="olse")).expect_card()
    assert [t for t, _ in choices_of(users, "users")] == [f"Raul Ølsen — {raul.email}"]
    assert "4 users selected" in text_of(users)
    users_card = users
    tiers = (await alex.act(users, "Choose tier", users=tick(users, "users", "Raul Ølsen"))).expect_card()

    # only the higher plans of the standard family, with their prices
    assert heading_of(tiers) == "Upgrade 5 users from Eco"
    catalog = Catalog.load()
    assert choices_of(tiers, "plan") == [
        (f"{catalog.plan(c).name}: {money(catalog.plan(c).price('month'), 'USD')} per seat per month", c)
        for c in ("advanced", "pro")]

    quote = (await alex.act(tiers, "Upgrade", plan=choice_value(tiers, "plan", "Pro"))).expect_card()
    assert heading_of(quote) == "Upgrade quote"
    assert set(facts_of(quote)["Users"].split(", ")) == {desk.user(n).name for n in (
        "Adele Vance", "Isaiah Langer", "Lee Gu", "Zoë Patterson", "Raul Ølsen")}
    assert facts_of(quote)["Change"] == "Eco → Pro (monthly)"
    exp = expected_upgrade(desk, eco_id, 5, "pro", "en-US")
    rows = amount_rows(quote)
    assert [a for _, a in rows] == [exp.credit_gross, exp.credit_discount, exp.charge_gross, exp.charge_discount,
                                    exp.due, exp.renewal]
    labels = [label for label, _ in rows]
    assert "5 × Eco" in labels[0] and "5 × Pro" in labels[2]
    assert labels[1] == labels[3] == f"Discount ({exp.percent}%): Partner discount" and labels[4] == "Due now"
    assert exp.renewal_date in labels[5]

    # the pay link: the sandbox page shows the amount; paying settles
    url = alex.open_url(quote, "Pay …")
    assert find_action(quote, "Pay …")["title"] == f"Pay {exp.due}"
    assert url.startswith(f"{desk.url}/pay/")
    page = await desk.get(url)
    assert page.status == 200 and exp.due in page.text and 'id="pay"' in page.text
    paid = await desk.post_form(url, {"action": "pay"})
    assert paid.status == 200 and "Payment received" in paid.text

    quote_id = find_action(quote, "Refresh")["data"]["quote"]
    with desk.lic.db.read() as s:
        q = s.get(Quote, quote_id)
        assert (q.status, q.due_now) == ("paid", exp.due_minor)

    # seats moved in place to the Pro pool, quantities follow
    pro = sibling_pool(desk, eco_id, "pro")
    assert seats_by_user(desk, list(upgraded)) == {uid: pro.id for uid in upgraded}
    assert (pool_row(desk, eco_id).quantity, assigned(desk, eco_id)) == (25, 19)
    assert (pro.quantity, assigned(desk, pro.id)) == (11, 9)

    # the notifier: one notice per upgraded user, in their own chat
    mark = desk.connector.mark()
    assert await desk.notify() == 6  # 5 notices + the admin's card
    per_chat = desk.connector.sent_per_conversation()
    assert per_chat == {desk.chat_of(aad): 1 for aad in upgraded.values()}
    for aad in upgraded.values():
        [activity] = desk.connector.sent(desk.chat_of(aad))
        [notice] = activity["attachments"]
        assert notice["contentType"] == "application/vnd.microsoft.card.adaptive"
        assert heading_of(notice["content"]) == "Your license was upgraded"
        assert "You now have Pro (was Eco)" in text_of(notice["content"])
    # stored addresses were used for Lee and Isaiah; the others' chats were created
    created = desk.connector.created()
    assert sorted(c.body["members"][0]["id"] for c in created) == sorted(u.aad_object_id for u in (adele, zoe, raul))
    assert {c.new_id for c in created} == {desk.chat_of(u.aad_object_id) for u in (adele, zoe, raul)}
    assert all(c.body["channelData"]["tenant"]["id"] == TENANT for c in created)
    assert len(lee.proactive_cards()) == 1 and len(isaiah.proactive_cards()) == 1

    # the admin's quote card updated in place with the paid summary
    [update] = desk.connector.updates(alex.conversation_id, quote.message_id)
    assert [c.kind for c in desk.connector.since(mark) if c.kind == "update"] == ["update"]
    summary = alex.card_in(quote.message_id)
    assert update["attachments"][0]["content"] == summary
    assert heading_of(summary) == "Upgrade paid"
    assert "5 users now hold Pro" in text_of(summary)
    # a receipt, not "Due now": what was paid, when, through what, its reference
    receipt = facts_of(summary)
    assert "Due now" not in receipt and receipt["Amount paid"] == exp.due
    assert receipt["Paid on"] == T("en-US").datetime(paid_at(desk, quote_id_of(quote)))
    assert receipt["Paid by"] == "Through the payment link of the quote prepared by Alex Wilber"
    assert receipt["Payment reference"].startswith(quote_id_of(quote)[:8])
    assert any(v == exp.renewal for v in receipt.values())
    # the users are told (their notices delivered above): the card says they were, and needs no refresh
    refreshed_now = (await alex.refresh(quote)).expect_card()
    assert "Each of them has been told in Teams." in text_of(refreshed_now) and "refresh" not in refreshed_now

    # paying again and notifying again change nothing and send nothing
    before, mark = snapshot(desk.lic), desk.connector.mark()
    again = await desk.post_form(url, {"action": "pay"})
    assert again.status == 200 and "Payment received" in again.text
    assert await desk.notify() == 0
    assert desk.connector.calls[mark:] == []
    assert snapshot(desk.lic) == before

    # Refresh on the quote card (as it was before the update) shows the paid summary
    refreshed = (await alex.act(quote, "Refresh")).expect_card()
    assert heading_of(refreshed) == "Upgrade paid" and facts_of(refreshed)["Amount paid"] == exp.due
    assert (await alex.refresh(quote)).expect_card() == refreshed  # the card's automatic refresh too
    # the old users card is stale now: its selection no longer holds Eco seats
    stale = (await alex.act(users_card, "Choose tier", users=tick(users_card, "users", "Raul Ølsen"))).expect_card()
    assert "no longer hold a seat" in text_of(stale)

    # the pools card shows the new counts
    [pools] = await alex.say("licenses")
    assert pool_button(pools, "Eco", "monthly")["title"] == "19"
    assert pool_button(pools, "Pro", "monthly")["title"] == "9"
    assert snapshot(desk.lic) == before


async def test_upgrade_journey_in_french(desk):
    megan = desk.client(desk.user("Megan Bowen").aad_object_id, locale="fr-FR")
    [welcome] = await megan.install()
    assert heading_of(welcome) == "Bienvenue dans License Desk"
    lee = desk.member(locale="fr-FR")
    await lee.install()

    [pools] = await megan.say("licences")
    assert heading_of(pools) == "Lots de licences de Contoso"
    button = pool_button(pools, "Eco", "mensuel")
    eco_id = button["data"]["pool"]
    users = (await megan.act(pools, button)).expect_card()
    assert heading_of(users) == "Eco (mensuel)\u00a0: 24 utilisateurs"
    tiers = (await megan.act(users, "Choisir l'offre", users=tick(users, "users", "Lee Gu", "Adele Vance"))
             ).expect_card()
    assert heading_of(tiers) == "Mettre à niveau 2 utilisateurs depuis Eco"
    assert choices_of(tiers, "plan") == [
        (f"Advanced\u00a0: {money(1500, 'USD', 'fr_FR')} par licence et par mois", "advanced"),
        (f"Pro\u00a0: {money(2900, 'USD', 'fr_FR')} par licence et par mois", "pro")]
    quote = (await megan.act(tiers, "Mettre à niveau", plan=choice_value(tiers, "plan", "Advanced"))
             ).expect_card()
    assert heading_of(quote) == "Devis de mise à niveau"
    assert facts_of(quote)["Changement"] == "Eco → Advanced (mensuel)"
    exp = expected_upgrade(desk, eco_id, 2, "advanced", "fr-FR")
    rows = amount_rows(quote)
    assert rows == [
        ("Avoir pour le temps non utilisé sur 2 × Eco", exp.credit_gross),
        (f"Remise ({exp.percent}\u00a0%)\u00a0: Partner discount", exp.credit_discount),
        ("Montant pour le temps restant sur 2 × Advanced", exp.charge_gross),
        (f"Remise ({exp.percent}\u00a0%)\u00a0: Partner discount", exp.charge_discount),
        ("À payer maintenant", exp.due),
        (f"Puis au prochain cycle de facturation, le {exp.renewal_date}", exp.renewal),
    ]
    assert exp.renewal_date == "1 avr. 2026"
    assert find_action(quote, "Payer …")["title"] == f"Payer {exp.due}"

    url = megan.open_url(quote, "Payer …")
    assert (await desk.post_form(url, {"action": "pay"})).status == 200
    assert await desk.notify() == 3
    [notice] = lee.proactive_cards()
    assert heading_of(notice) == "Votre licence a été mise à niveau"
    assert "Vous avez maintenant Advanced (auparavant Eco)" in text_of(notice)
    adele = desk.user("Adele Vance")
    assert len(desk.connector.sent(desk.chat_of(adele.aad_object_id))) == 1
    summary = megan.card_in(quote.message_id)
    assert heading_of(summary) == "Mise à niveau payée"
    assert facts_of(summary)["Montant payé"] == exp.due and "À payer maintenant" not in facts_of(summary)
    refreshed = (await megan.act(quote, "Actualiser")).expect_card()
    assert heading_of(refreshed) == "Mise à niveau payée"



async def test_notices_when_a_chat_is_throttled_or_blocked(desk):
    """A 429 on one chat is retried (the notice arrives once); a user who blocked the bot is
    marked unreachable and not retried; the others are told once."""
    alex = desk.admin()
    await alex.install()
    lee = desk.member()
    await lee.install()
    quote_names = ("Lee Gu", "Adele Vance", "Allan Archie")
    [pools] = await alex.say("licenses")
    users = (await alex.act(pools, pool_button(pools, "Eco", "monthly"))).expect_card()
    tiers = (await alex.act(users, "Choose tier", users=tick(users, "users", *quote_names))).expect_card()
    quote = (await alex.act(tiers, "Upgrade", plan="pro")).expect_card()
    assert (await desk.post_form(alex.open_url(quote, "Pay …"), {"action": "pay"})).status == 200

    adele, allan = desk.user("Adele Vance"), desk.user("Allan Archie")
    desk.connector.fail_next(429, conversation_id=lee.conversation_id, retry_after=0)
    desk.connector.fail_next(403, kind="create", code="ConversationBlockedByUser", sub_code="MessageWritesBlocked")
    assert await desk.notify() == 4  # one delivered, one throttled (429), one blocked, the card update
    assert desk.connector.sent_per_conversation().get(lee.conversation_id, 0) == 0
    desk.lic.clock.advance(seconds=2)  # the throttled notice is due again (Retry-After 0, plus jitter)
    assert await desk.notify() == 1
    assert await desk.notify() == 0
    sent = desk.connector.sent_per_conversation()
    assert sent[lee.conversation_id] == 1 and len(lee.proactive_cards()) == 1
    blocked = [u for u in (adele, allan) if desk.chat_of(u.aad_object_id) not in sent]
    assert len(blocked) == 1 and len(sent) == 2
    with desk.lic.db.read() as s:
        statuses = dict(s.execute(select(OutboxMessage.user_id, OutboxMessage.status)
                                  .where(OutboxMessage.kind == "license_upgraded")).all())
        assert s.get(User, blocked[0].id).unreachable
    expected = {desk.user(name).id: "sent" for name in quote_names} | {blocked[0].id: "unreachable"}
    assert statuses == expected
    assert heading_of(alex.card_in(quote.message_id)) == "Upgrade paid"


@pytest.mark.parametrize(("locale", "telling", "told"), [
    ("en-US", "Each of them will be told in Teams (0 of 2 told so far).", "Each of them has been told in Teams."),
    ("fr-FR", "Chacun sera prévenu dans Teams (0 sur 2 pour l'instant).", "Chacun a été prévenu dans Teams.")])
def test_a_paid_card_says_will_be_told_until_the_notices_are_delivered(demo, admin, locale, telling, told):
    from cards.upgrade import quote_card

    pool = next(p for p in demo.pools.list_pools(admin) if p.plan_code == "eco" and p.interval == "month")
    users = [u.id for u in demo.pools.pool_users(admin, pool.id, page_size=2).items]
    q = demo.links.payment_link(admin, demo.quotes.quote_upgrade(admin, pool.id, users, "pro").id)
    SandboxCheckout(demo).pay(q.payment_url.rsplit("/", 1)[1])
    pending = quote_card(locale, demo.quotes.quote(admin, q.id))
    assert telling in text_of(pending) and "refresh" in pending  # Teams refreshes it when it is viewed
    demo.db.write(lambda s: s.execute(update(OutboxMessage).where(OutboxMessage.kind == "license_upgraded")
                                      .values(status="sent")))
    done = quote_card(locale, demo.quotes.quote(admin, q.id))
    assert told in text_of(done) and telling not in text_of(done) and "refresh" not in done


@pytest.mark.parametrize(("locale", "says"), [
    ("en-US", "1 of 2 could not be told in Teams: License Desk cannot reach them there yet."),
    ("fr-FR", "1 sur 2 n'a pas pu être prévenu dans Teams\u00a0: License Desk ne peut pas encore le joindre.")])
def test_a_paid_card_says_who_could_not_be_told(demo, admin, locale, says):
    """A notice the notifier could not deliver (Teams refused it: the user blocked the bot) is
    marked unreachable: the paid card says so, rather than "will be told" for ever, and stops
    refreshing itself."""
    from cards.upgrade import quote_card

    pool = next(p for p in demo.pools.list_pools(admin) if p.plan_code == "eco" and p.interval == "month")
    users = [u.id for u in demo.pools.pool_users(admin, pool.id, page_size=2).items]
    q = demo.links.payment_link(admin, demo.quotes.quote_upgrade(admin, pool.id, users, "pro").id)
    SandboxCheckout(demo).pay(q.payment_url.rsplit("/", 1)[1])
    with demo.db.read() as s:
        first, second = s.scalars(select(OutboxMessage.id).where(OutboxMessage.kind == "license_upgraded")
                                  .order_by(OutboxMessage.id)).all()
    demo.db.write(lambda s: s.execute(update(OutboxMessage).where(OutboxMessage.id == first).values(status="sent")))
    one_left = quote_card(locale, demo.quotes.quote(admin, q.id))
    assert says not in text_of(one_left) and "refresh" in one_left  # still on its way to the second user
    demo.db.write(lambda s: s.execute(update(OutboxMessage).where(OutboxMessage.id == second)
                                      .values(status="unreachable")))
    paid = quote_card(locale, demo.quotes.quote(admin, q.id))
    assert says in text_of(paid) and "refresh" not in paid


async def test_double_click_on_upgrade_creates_one_quote(desk, clock):
    """Two clicks of Upgrade on one tiers card (at once, then once more later) get one quote,
    and every answer shows it; as a cart's Checkout does with its key."""
    alex = desk.admin()
    [pools] = await alex.say("licenses")
    users = (await alex.act(pools, pool_button(pools, "Eco", "monthly"))).expect_card()
    tiers = (await alex.act(users, "Choose tier", users=tick(users, "users", "Adele Vance", "Lee Gu"))).expect_card()
    plan = choice_value(tiers, "plan", "Pro")
    first, second = await asyncio.gather(alex.act(tiers, "Upgrade", plan=plan), alex.act(tiers, "Upgrade", plan=plan))
    clock.advance(seconds=20)
    later = await alex.act(tiers, "Upgrade", plan=plan)
    cards = [reply.expect_card() for reply in (first, second, later)]
    assert [heading_of(c) for c in cards] == ["Upgrade quote"] * 3, [text_of(c) for c in cards]
    ids = {find_action(c, "Refresh")["data"]["quote"] for c in cards}
    assert len(ids) == 1
    assert {alex.open_url(c, "Pay …") for c in cards} == {alex.open_url(cards[0], "Pay …")}
    assert "already quoted" in text_of(cards[2])
    with desk.lic.db.read() as s:
        quotes = s.scalars(select(Quote).where(Quote.kind == "upgrade")).all()
    assert [(q.id, q.status) for q in quotes] == [(ids.pop(), "open")]


async def test_back_on_a_quote_keeps_the_tiers_card_after_the_notifier_ran(desk):
    """Back shows the tiers card again; the notifier, running meanwhile, does not overwrite it with
    the cancelled quote (an in-place update never replaces a card its reader moved on from). A
    reader who stays on a quote still sees it updated in place once paid."""
    alex = desk.admin()
    [pools] = await alex.say("licenses")
    users = (await alex.act(pools, pool_button(pools, "Eco", "monthly"))).expect_card()
    tiers = (await alex.act(users, "Choose tier", users=tick(users, "users", "Adele Vance", "Lee Gu"))).expect_card()
    async with running(desk.notifier, idle=0.05):
        quote = (await alex.act(tiers, "Upgrade", plan=choice_value(tiers, "plan", "Pro"))).expect_card()
        back = (await alex.act(quote, "Back")).expect_card()
        assert heading_of(back) == "Upgrade 2 users from Eco"
        await until_drained(desk.lic)
        with desk.lic.db.read() as s:  # the cancelled quote's card update was queued, and handled
            kinds = s.scalars(select(OutboxMessage.kind).where(OutboxMessage.status != "pending")).all()
        assert "quote_card" in kinds
        assert heading_of(alex.card_in(quote.message_id)) == "Upgrade 2 users from Eco"
        assert alex.updates(quote.message_id) == []

        # the positive case: staying on the quote card, it turns into the paid summary in place
        again = (await alex.act(back, "Upgrade", plan=choice_value(back, "plan", "Advanced"))).expect_card()
        assert heading_of(again) == "Upgrade quote"
        assert (await desk.post_form(alex.open_url(again, "Pay …"), {"action": "pay"})).status == 200
        await until_drained(desk.lic, also=lambda: bool(alex.updates(again.message_id)))
    assert heading_of(alex.card_in(again.message_id)) == "Upgrade paid"


async def test_back_holds_the_update_its_own_cancel_queued_until_it_has_answered(desk, clock, monkeypatch):
    """Back's race with a notifier in another process: the cancel commits the quote card's update,
    and the notifier takes it before the action has answered. The update waits for the answer (the
    card is being answered), and the answer showing the tiers, it is then dropped: the tiers stay."""
    alex = desk.admin()
    [pools] = await alex.say("licenses")
    users = (await alex.act(pools, pool_button(pools, "Eco", "monthly"))).expect_card()
    tiers = (await alex.act(users, "Choose tier", users=tick(users, "users", "Adele Vance"))).expect_card()
    quote = (await alex.act(tiers, "Upgrade", plan=choice_value(tiers, "plan", "Pro"))).expect_card()
    loop, cancel, handled = asyncio.get_running_loop(), desk.lic.quotes.cancel_quote, []

    def cancel_then_deliver(actor, quote_id):
        view = cancel(actor, quote_id)  # committed: its card update is due now
        handled.append(asyncio.run_coroutine_threadsafe(desk.notify(), loop).result(timeout=30))
        return view

    monkeypatch.setattr(desk.lic.quotes, "cancel_quote", cancel_then_deliver)
    back = (await alex.act(quote, "Back")).expect_card()
    assert heading_of(back) == heading_of(tiers) and handled == [1]  # the notifier did take the update
    clock.advance(seconds=1)
    await desk.notify()
    with desk.lic.db.read() as s:
        assert s.scalars(select(OutboxMessage.status).where(OutboxMessage.kind == "quote_card")).all() == ["sent"]
    assert heading_of(alex.card_in(quote.message_id)) == heading_of(tiers)
    assert alex.updates(quote.message_id) == []


async def test_a_card_dropped_then_another_on_the_same_message_is_updated_for_its_own_quote(desk):
    """Back drops the message's posted card of the cancelled quote; the next quote shown there is
    recorded again (SQLite may give it the dropped row's id). The cancelled quote's pending
    update must not land on the new quote's card, and the new quote's own later update (cancelled
    from another card's "Cancel it") must still be queued and delivered."""
    alex = desk.admin()
    [pools] = await alex.say("licenses")
    users = (await alex.act(pools, pool_button(pools, "Eco", "monthly"))).expect_card()
    tiers = (await alex.act(users, "Choose tier", users=tick(users, "users", "Adele Vance"))).expect_card()
    first = (await alex.act(tiers, "Upgrade", plan=choice_value(tiers, "plan", "Pro"))).expect_card()
    back = (await alex.act(first, "Back")).expect_card()  # the notifier has not run yet
    second = (await alex.act(back, "Upgrade", plan=choice_value(back, "plan", "Pro"))).expect_card()
    second_id = find_action(second, "Refresh")["data"]["quote"]
    await desk.notify()
    shown = alex.card_in(second.message_id)
    assert find_action(shown, "Refresh")["data"]["quote"] == second_id and "Status" not in text_of(shown)

    [pools] = await alex.say("licenses")  # another card, another message: the same user again
    users = (await alex.act(pools, pool_button(pools, "Eco", "monthly"))).expect_card()
    again = (await alex.act(users, "Choose tier", users=tick(users, "users", "Adele Vance"))).expect_card()
    refusal = (await alex.act(again, "Upgrade", plan=choice_value(again, "plan", "Advanced"))).expect_card()
    assert heading_of((await alex.act(refusal, "Cancel it")).expect_card()) == "Quote cancelled"
    await desk.notify()
    shown = alex.card_in(second.message_id)  # the second quote's card, updated in place: cancelled
    assert shown["refresh"]["action"]["data"]["quote"] == second_id and "Status: Cancelled" in text_of(shown)
