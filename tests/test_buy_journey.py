"""Buying licenses through real HTTP: the catalog and cart card, checkout into the shared quote
card, payment on the sandbox page, the buyer's notice and the pools afterwards; every bad
input (a clear card, one refused audit event, no change), stale cards and double clicks,
English and French. Line amounts are recomputed here from the pricing rules (core.pricing
on the subscription's period and the discounts in the database)."""

from __future__ import annotations

from babel.dates import format_date
from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select

from core import pricing
from core.catalog import Catalog
from core.demo import TENANT
from core.models import AccountTenant, Discount, OutboxMessage, Pool, Quote, Subscription
from core.money import money
from core.payments import PaymentEvent
from core.views import Actor
from tests.cardcheck import assert_card_budget, assert_valid_cards
from tests.harness import (
    ALEX,
    Watch,
    actions_of,
    add_fabrikam,
    amount_rows,
    choices_of,
    find_action,
    has_action,
    heading_of,
    inputs_of,
    pool_button,
    text_of,
    walk,
)
from tests.test_outbox_faults import running, until_drained

FAB_TENANT = "44444444-4444-4444-4444-444444444444"
FAB_ADMIN = "44444444-0000-0000-0000-000000000001"
QTY_ERROR = "The quantity must be a whole number from 1 to 10,000."


def cart_rows(card: dict) -> list[tuple[str, str, str]]:
    """The cart's lines: (label, prorated amount, detail), each with a Remove button."""
    rows = []
    for el in walk(card):
        cols = el.get("columns") or []
        if el.get("type") != "ColumnSet" or len(cols) != 3:
            continue
        if not any(a.get("title") in ("Remove", "Retirer") for a in actions_of(cols[2])):
            continue
        items = cols[0]["items"]  # the label, the line's discount when it has one, the period detail
        rows.append((items[0]["text"], cols[1]["items"][0]["text"], items[-1]["text"]))
    return rows


def cart_discounts(card: dict) -> list[tuple[str, str]]:
    """Each cart line's discount, (label, amount), as shown under its gross amount."""
    out = []
    for el in walk(card):
        cols = el.get("columns") or []
        if el.get("type") == "ColumnSet" and len(cols) == 3 and len(cols[1]["items"]) == 2:
            out.append((cols[0]["items"][1]["text"], cols[1]["items"][1]["text"]))
    return out


def remove_button(card: dict, label: str) -> dict:
    for el in walk(card):
        cols = el.get("columns") or []
        if el.get("type") == "ColumnSet" and len(cols) == 3 and cols[0]["items"][0].get("text") == label:
            [button] = actions_of(cols[2], "Action.Execute")
            return button
    raise AssertionError(f"no cart line {label!r}")


def pool_counts(pools_card: dict, plan: str, interval_label: str) -> tuple[int, int]:
    """(bought, free) of a pools card row."""
    for row in walk(pools_card):
        cols = row.get("columns") or []
        if row.get("type") != "ColumnSet" or len(cols) != 5:
            continue
        texts = [el.get("text", "") for el in walk(cols[0]) if el.get("type") == "TextBlock"]
        if len(texts) >= 2 and texts[0] == plan and texts[1].startswith(interval_label):
            return int(cols[1]["items"][0]["text"]), int(cols[3]["items"][0]["text"])
    raise AssertionError(f"no {plan} ({interval_label}) row")


def contoso_id(desk) -> int:
    return desk.user("Alex Wilber").account_id


def pool_of(desk, plan: str, interval: str, account_id: int | None = None) -> Pool | None:
    with desk.lic.db.read() as s:
        return s.scalars(select(Pool).join(Subscription, Subscription.id == Pool.subscription_id)
                         .where(Pool.account_id == (account_id or contoso_id(desk)), Pool.plan_code == plan,
                                Subscription.interval == interval)).first()


def quote_count(desk) -> int:
    with desk.lic.db.read() as s:
        return s.scalar(select(func.count()).select_from(Quote))


def expected_line(desk, plan: str, interval: str, n: int) -> dict:
    """DESIGN.md's purchase rule by hand: n * price * f * (1 - d), f from the subscription's
    period and the test clock, d from the discount rows active now and at the period end."""
    now = desk.lic.now()
    with desk.lic.db.read() as s:
        sub = s.scalars(select(Subscription).where(Subscription.account_id == contoso_id(desk),
                                                   Subscription.interval == interval)).one()
        discounts = s.scalars(select(Discount).where(Discount.account_id == contoso_id(desk))).all()

    def rate(t):
        found = [d for d in discounts if d.starts_at <= t and (d.ends_at is None or d.ends_at > t)]
        return pricing.discount_rate(found[0].percent_off if found else None)

    f = pricing.remaining_fraction(sub.period_start, sub.period_end, now)
    price = Catalog.load().plan(plan).price(interval)
    r = pricing.round_half_up
    return {"gross": r(n * price * f), "amount": r(n * price * f * (1 - rate(now))),
            "renewal": r(n * price * (1 - rate(sub.period_end))), "end": sub.period_end}


def make_fabrikam(desk) -> None:
    """A second account with an admin and no subscription yet (its first purchase starts one)."""
    add_fabrikam(desk.lic, tenant=FAB_TENANT, admin=FAB_ADMIN, worker=None, plan=None)


# ============================================================================ the journey


async def test_buy_journey_end_to_end(desk):
    alex = desk.admin()
    await alex.install()
    seen = []

    [card] = await alex.say("buy")
    seen.append(card)
    assert heading_of(card) == "Buy licenses"
    catalog = Catalog.load()
    body = text_of(card)
    for plan in catalog.all_plans():  # both families, both intervals
        assert plan.name in body
        assert f"{money(plan.price('month'), 'USD')} / month" in body
        assert f"{money(plan.price('year'), 'USD')} / year" in body
    assert {v for _, v in choices_of(card, "plan")} == set(catalog.plans)
    assert choices_of(card, "interval") == [("Monthly", "month"), ("Yearly", "year")]
    assert "Your cart is empty" in body and not has_action(card, "Checkout")

    # three lines (both intervals, both families), then one removed
    card = (await alex.act(card, "Add", plan="eco", interval="month", qty="3")).expect_card()
    card = (await alex.act(card, "Add", plan="api_pro", interval="year", qty="2")).expect_card()
    card = (await alex.act(card, "Add", plan="advanced", interval="month", qty="4")).expect_card()
    seen.append(card)
    assert [label for label, _, _ in cart_rows(card)] == ["3 × Eco (monthly)", "2 × API Pro (yearly)",
                                                          "4 × Advanced (monthly)"]
    # adding the same plan and billing again adds to its line
    card = (await alex.act(card, "Add", plan="eco", interval="month", qty="2")).expect_card()
    assert [label for label, _, _ in cart_rows(card)][0] == "5 × Eco (monthly)"
    card = (await alex.act(card, remove_button(card, "4 × Advanced (monthly)"))).expect_card()
    seen.append(card)
    rows = cart_rows(card)
    assert [label for label, _, _ in rows] == ["5 × Eco (monthly)", "2 × API Pro (yearly)"]

    # the Eco line by hand from the pricing rules; the whole cart against the core's pricing
    eco = expected_line(desk, "eco", "month", 5)
    assert rows[0][1] == money(eco["gross"], "USD")
    assert rows[0][2] == (f"For the rest of the current period, until {format_date(eco['end'], 'medium', 'en_US')}; "
                          f"then {money(eco['renewal'], 'USD')} per month")
    api = expected_line(desk, "api_pro", "year", 2)
    assert rows[1][1] == money(api["gross"], "USD")
    cart = [{"plan": "eco", "interval": "month", "quantity": 5}, {"plan": "api_pro", "interval": "year", "quantity": 2}]
    oracle = desk.lic.quotes.cart_preview(Actor(TENANT, ALEX), cart)
    assert [ln.amount for ln in oracle.lines] == [eco["amount"], api["amount"]]
    # each line's discount under it (applied per line, so they add up to the due amount)
    assert cart_discounts(card) == [("Discount (15%): Partner discount", money(eco["amount"] - eco["gross"], "USD")),
                                    ("Discount (15%): Partner discount", money(api["amount"] - api["gross"], "USD"))]
    totals = amount_rows(card)
    assert totals[0] == ("Due now", money(eco["amount"] + api["amount"], "USD")) == ("Due now", money(oracle.due_now,
                                                                                                      "USD"))
    # mixed intervals: each renewal date with what it bills
    assert totals[1:] == [(f"Then at the next billing cycle, {format_date(eco['end'], 'medium', 'en_US')}",
                           money(eco["renewal"], "USD")),
                          (f"Then at the next billing cycle, {format_date(api['end'], 'medium', 'en_US')}",
                           money(api["renewal"], "USD"))]
    assert quote_count(desk) == 0  # pricing a cart creates no quote

    # checkout: the shared quote card with the pay link; a second click gives the same quote
    before_quotes = quote_count(desk)
    cart_card = card
    quote = (await alex.act(card, "Checkout")).expect_card()
    seen.append(quote)
    assert heading_of(quote) == "Purchase quote"
    amounts = amount_rows(quote)
    discount = "Discount (15%): Partner discount"
    assert amounts[:5] == [("5 × Eco (monthly)", money(eco["gross"], "USD")),
                           (discount, money(eco["amount"] - eco["gross"], "USD")),
                           ("2 × API Pro (yearly)", money(api["gross"], "USD")),
                           (discount, money(api["amount"] - api["gross"], "USD")),
                           ("Due now", money(oracle.due_now, "USD"))]
    assert find_action(quote, "Pay …")["title"] == f"Pay {money(oracle.due_now, 'USD')}"
    quote_id = find_action(quote, "Refresh")["data"]["quote"]
    assert quote_id == find_action(cart_card, "Checkout")["data"]["qkey"]
    assert quote_count(desk) == before_quotes + 1
    watch = Watch(desk)
    again = (await alex.act(cart_card, "Checkout")).expect_card()
    assert find_action(again, "Refresh")["data"]["quote"] == quote_id
    assert alex.open_url(again, "Pay …") == alex.open_url(quote, "Pay …")
    watch.unchanged("double click on Checkout")

    # pay on the sandbox page
    eco_before, api_before = pool_of(desk, "eco", "month").quantity, pool_of(desk, "api_pro", "year").quantity
    url = alex.open_url(quote, "Pay …")
    paid = await desk.post_form(url, {"action": "pay"})
    assert paid.status == 200 and "Payment received" in paid.text
    assert pool_of(desk, "eco", "month").quantity == eco_before + 5
    assert pool_of(desk, "api_pro", "year").quantity == api_before + 2
    with desk.lic.db.read() as s:
        assert (s.get(Quote, quote_id).status, s.get(Quote, quote_id).due_now) == ("paid", oracle.due_now)

    # the buyer is told once; the quote card turns into the paid summary
    assert await desk.notify() == 2
    [notice] = alex.proactive_cards()
    seen.append(notice)
    assert heading_of(notice) == "Licenses added"
    assert f"Your payment of {money(oracle.due_now, 'USD')} was received" in text_of(notice)
    assert "5 × Eco (monthly)" in text_of(notice) and "2 × API Pro (yearly)" in text_of(notice)
    summary = alex.card_in(quote.message_id)
    seen.append(summary)
    assert heading_of(summary) == "Paid" and "The licenses are added to your pools." in text_of(summary)
    assert await desk.notify() == 0

    # the notice leads to the pools, which show the new seats
    pools = (await alex.act(notice, "License pools")).expect_card()
    seen.append(pools)
    assert pool_counts(pools, "Eco", "monthly") == (eco_before + 5, eco_before + 5 - 24)
    assert pool_counts(pools, "API Pro", "yearly") == (api_before + 2, api_before + 2 - 4)

    # the old cart card again: the paid quote, nothing new
    watch = Watch(desk)
    replay = (await alex.act(cart_card, "Checkout")).expect_card()
    assert heading_of(replay) == "Paid" and "already checked out" in text_of(replay)
    watch.unchanged("checkout after payment")

    assert_valid_cards(seen)
    for c in seen:
        assert_card_budget(c)


async def test_back_from_the_quote_returns_to_the_cart_and_a_stale_checkout_changes_nothing(desk):
    alex = desk.admin()
    [card] = await alex.say("buy")
    card = (await alex.act(card, "Add", plan="pro", interval="year", qty="7")).expect_card()
    quote = (await alex.act(card, "Checkout")).expect_card()
    quote_id = find_action(quote, "Refresh")["data"]["quote"]
    # the quote card's Back (verb quote.back) cancels the quote and returns to the cart
    back = (await alex.execute("quote.back", {"quote": quote_id}, message_id=quote.message_id)).expect_card()
    assert heading_of(back) == "Buy licenses"
    assert [label for label, _, _ in cart_rows(back)] == ["7 × Pro (yearly)"]
    assert find_action(back, "Checkout")["data"]["qkey"] != quote_id  # a new checkout makes a new quote
    with desk.lic.db.read() as s:
        assert s.get(Quote, quote_id).status == "cancelled"

    # the old cart card's Checkout: its quote was cancelled; shown as such, nothing created
    watch = Watch(desk)
    stale = (await alex.act(card, "Checkout")).expect_card()
    assert "Status: Cancelled" in text_of(stale) and "already checked out" in text_of(stale)
    assert not has_action(stale, "Pay …")
    watch.unchanged("stale checkout")

    fresh = (await alex.act(back, "Checkout")).expect_card()
    assert heading_of(fresh) == "Purchase quote" and has_action(fresh, "Pay …")
    assert_valid_cards([back, stale, fresh])


async def test_back_on_a_purchase_quote_keeps_the_cart_after_the_notifier_ran(desk):
    """Back on the purchase quote shows the cart, and it is still the cart once the notifier has
    handled the cancelled quote's card update (the message moved on: it is not overwritten).
    A Checkout from there, paid, still turns its quote card into the paid summary in place."""
    alex = desk.admin()
    [card] = await alex.say("buy")
    card = (await alex.act(card, "Add", plan="pro", interval="year", qty="7")).expect_card()
    card = (await alex.act(card, "Add", plan="eco", interval="month", qty="2")).expect_card()
    lines = [label for label, _, _ in cart_rows(card)]
    async with running(desk.notifier, idle=0.05):
        quote = (await alex.act(card, "Checkout")).expect_card()
        back = (await alex.act(quote, "Back")).expect_card()
        assert heading_of(back) == "Buy licenses" and [label for label, _, _ in cart_rows(back)] == lines
        await until_drained(desk.lic)
        with desk.lic.db.read() as s:  # the cancelled quote's card update was queued, and handled
            assert s.scalars(select(OutboxMessage.status).where(OutboxMessage.kind == "quote_card")).all() == ["sent"]
        shown = alex.card_in(quote.message_id)
        assert heading_of(shown) == "Buy licenses" and [label for label, _, _ in cart_rows(shown)] == lines
        assert alex.updates(quote.message_id) == []

        fresh = (await alex.act(back, "Checkout")).expect_card()
        assert (await desk.post_form(alex.open_url(fresh, "Pay …"), {"action": "pay"})).status == 200
        await until_drained(desk.lic, also=lambda: bool(alex.updates(fresh.message_id)))
    assert heading_of(alex.card_in(fresh.message_id)) == "Paid"


async def test_buy_more_preselects_and_a_first_purchase_starts_a_period(desk, clock):
    alex = desk.admin()
    [pools] = await alex.say("licenses")
    users = (await alex.act(pools, pool_button(pools, "Eco", "monthly"))).expect_card()
    card = (await alex.act(users, "Buy more")).expect_card()
    assert inputs_of(card)["plan"]["value"] == "eco" and inputs_of(card)["interval"]["value"] == "month"

    # an account with no subscription: its first purchase starts a period now (f = 1)
    make_fabrikam(desk)
    ada = desk.client(FAB_ADMIN, tenant_id=FAB_TENANT, name="Ada Fabrikam")
    card = (await ada.execute("buy.start", {"plan": "api_advanced", "interval": "year"})).expect_card()
    assert inputs_of(card)["plan"]["value"] == "api_advanced" and inputs_of(card)["interval"]["value"] == "year"
    card = (await ada.act(card, "Add", qty="3")).expect_card()
    end = clock.now + relativedelta(years=1)
    [(label, amount, detail)] = cart_rows(card)
    assert (label, amount) == ("3 × API Advanced (yearly)", money(3 * 49000, "USD"))
    assert detail == (f"A new yearly subscription starts today; then {money(3 * 49000, 'USD')} per year from "
                      f"{format_date(end, 'medium', 'en_US')}")
    assert amount_rows(card)[-1] == (f"Then at the next billing cycle, {format_date(end, 'medium', 'en_US')}",
                                     money(3 * 49000, "USD"))
    quote = (await ada.act(card, "Checkout")).expect_card()
    assert (await desk.post_form(ada.open_url(quote, "Pay …"), {"action": "pay"})).status == 200
    with desk.lic.db.read() as s:
        account_id = s.scalar(select(AccountTenant.account_id).where(AccountTenant.tenant_id == FAB_TENANT))
        sub = s.scalars(select(Subscription).where(Subscription.account_id == account_id)).one()
    assert (sub.interval, sub.period_start, sub.period_end) == ("year", clock.now, end)
    assert pool_of(desk, "api_advanced", "year", account_id).quantity == 3
    assert_valid_cards([card, quote])


async def test_buy_in_french(desk):
    megan = desk.client(desk.user("Megan Bowen").aad_object_id, locale="fr-FR")
    await megan.install()
    [card] = await megan.say("acheter")
    assert heading_of(card) == "Acheter des licences"
    assert f"{money(800, 'USD', 'fr_FR')} / mois" in text_of(card)
    assert choices_of(card, "interval") == [("Mensuelle", "month"), ("Annuelle", "year")]
    card = (await megan.act(card, "Ajouter", plan="advanced", interval="month", qty="2")).expect_card()
    adv = expected_line(desk, "advanced", "month", 2)
    [(label, amount, detail)] = cart_rows(card)
    assert (label, amount) == ("2 × Advanced (mensuel)", money(adv["gross"], "USD", "fr_FR"))
    end = format_date(adv["end"], "medium", "fr_FR")
    assert detail.startswith(f"Pour le reste de la période en cours, jusqu'au {end}")
    assert dict(amount_rows(card))["À payer maintenant"] == money(adv["amount"], "USD", "fr_FR")
    bad = (await megan.act(card, "Ajouter", plan="advanced", interval="month", qty="0")).expect_card()
    assert "Cette ligne n'a pas été ajoutée" in text_of(bad)
    quote = (await megan.act(card, "Commander")).expect_card()
    assert heading_of(quote) == "Devis d'achat"
    assert (await desk.post_form(megan.open_url(quote, "Payer …"), {"action": "pay"})).status == 200
    assert await desk.notify() == 2
    [notice] = megan.proactive_cards()
    assert heading_of(notice) == "Licences ajoutées"
    assert f"Votre paiement de {money(adv['amount'], 'USD', 'fr_FR')} a été reçu" in text_of(notice)
    assert has_action(notice, "Lots de licences")
    assert_valid_cards([card, bad, quote, notice])


# ============================================================================ refusals


async def test_every_invalid_quantity_is_refused_and_the_cart_kept(desk):
    alex = desk.admin()
    [card] = await alex.say("buy")
    card = (await alex.act(card, "Add", plan="eco", interval="month", qty="2")).expect_card()
    shown = []
    for qty in ["0", "-1", "10001", "2.5", "abc", ""]:
        watch = Watch(desk)
        refused = (await alex.act(card, "Add", plan="pro", interval="year", qty=qty)).expect_card()
        assert heading_of(refused) == "Buy licenses"
        assert f"That line was not added: {QTY_ERROR}" in text_of(refused), (qty, text_of(refused))
        assert cart_rows(refused) == cart_rows(card)
        # the form keeps what was chosen, so the quantity can be corrected
        assert inputs_of(refused)["plan"]["value"] == "pro" and inputs_of(refused)["interval"]["value"] == "year"
        watch.refused("cart.preview", qty)
        watch.unchanged(qty)
        shown.append(refused)
    assert_valid_cards(shown[-1:])


async def test_bad_plans_intervals_and_carts_are_refused(desk):
    alex = desk.admin()
    [card] = await alex.say("buy")
    card = (await alex.act(card, "Add", plan="eco", interval="month", qty="9000")).expect_card()
    cases = [
        ({"plan": "platinum", "interval": "month", "qty": "1"}, "There is no plan “platinum”."),
        ({"plan": "", "interval": "month", "qty": "1"}, "Choose a plan for each line."),
        ({"plan": "eco", "interval": "week", "qty": "1"}, "Choose monthly or yearly billing for each line."),
        ({"plan": "eco", "interval": "", "qty": "1"}, "Choose monthly or yearly billing for each line."),
        ({"plan": "eco", "interval": "month", "qty": "1001"}, QTY_ERROR),  # 9,000 + 1,001 > 10,000
    ]
    for inputs, message in cases:
        watch = Watch(desk)
        refused = (await alex.act(card, "Add", **inputs)).expect_card()
        assert f"That line was not added: {message}" in text_of(refused), (inputs, text_of(refused))
        assert cart_rows(refused) == cart_rows(card)
        watch.refused("cart.preview", str(inputs))
        watch.unchanged(str(inputs))

    # forged carts
    forged = [
        ("buy.cart", {"cart": "eco"}, "This cart is not valid", "card.buy.cart"),
        ("buy.add", {"cart": [1, 2], "plan": "eco", "interval": "month", "qty": "1"}, "This cart is not valid",
         "card.buy.add"),
        ("buy.cart", {"cart": [{"plan": "eco", "interval": "month", "quantity": 1}] * 21}, "at most 20 lines",
         "card.buy.cart"),
        ("buy.checkout", {"cart": [{"plan": "eco", "interval": "month", "quantity": 1}]}, "not valid",
         "card.buy.checkout"),
        ("buy.checkout", {"cart": [], "qkey": "0" * 32}, "cart is empty", "card.buy.checkout"),
        ("buy.checkout", {"cart": [{"plan": "eco", "interval": "month", "quantity": 1}], "qkey": "nope"},
         "This cart card is not valid", "quote.purchase"),
    ]
    for verb, data, message, action in forged:
        watch = Watch(desk)
        shown = (await alex.execute(verb, data, message_id=card.message_id)).expect_card()
        assert heading_of(shown) == "That didn't work" and message in text_of(shown), (verb, text_of(shown))
        watch.refused(action, verb)
        watch.unchanged(verb)

    # a cart whose content the core refuses is emptied, saying why (audited once)
    watch = Watch(desk)
    shown = (await alex.execute("buy.cart", {"cart": [{"plan": "eco", "interval": "month", "quantity": "abc"}]},
                                message_id=card.message_id)).expect_card()
    assert heading_of(shown) == "Buy licenses" and "could not be read, so it was emptied" in text_of(shown)
    assert cart_rows(shown) == [] and not has_action(shown, "Checkout")
    watch.refused("cart.preview")
    watch.unchanged()
    assert quote_count(desk) == 0


async def test_wrong_role_and_wrong_account(desk):
    lee = desk.member()
    cart = [{"plan": "eco", "interval": "month", "quantity": 1}]
    watch = Watch(desk)
    [card] = await lee.say("buy")
    assert heading_of(card) == "Administrators only"
    watch.refused("buy.start")
    for verb, data in [("buy.start", {}), ("buy.cart", {"cart": cart}),
                       ("buy.add", {"cart": cart, "plan": "eco", "interval": "month", "qty": "1"}),
                       ("buy.checkout", {"cart": cart, "qkey": "a" * 32})]:
        watch = Watch(desk)
        shown = (await lee.execute(verb, data, message_id=card.message_id)).expect_card()
        assert heading_of(shown) == "Administrators only" and "Only an administrator" in text_of(shown), verb
        watch.refused(case=verb)
        watch.unchanged(verb)

    # a checkout key naming another account's quote
    make_fabrikam(desk)
    ada = desk.client(FAB_ADMIN, tenant_id=FAB_TENANT, name="Ada Fabrikam")
    [fab_card] = await ada.say("buy")
    fab_card = (await ada.act(fab_card, "Add", plan="eco", interval="month", qty="1")).expect_card()
    fab_quote = (await ada.act(fab_card, "Checkout")).expect_card()
    fab_id = find_action(fab_quote, "Refresh")["data"]["quote"]
    alex = desk.admin()
    watch = Watch(desk)
    shown = (await alex.execute("buy.checkout", {"cart": cart, "qkey": fab_id})).expect_card()
    assert "does not exist in your account" in text_of(shown) and "Fabrikam" not in text_of(shown)
    event = watch.refused("quote.purchase")
    assert event.tenant_id == TENANT
    watch.unchanged()


async def test_a_payment_that_cannot_be_applied_tells_the_buyer_it_will_be_refunded(desk):
    alex = desk.admin()
    [card] = await alex.say("buy")
    card = (await alex.act(card, "Add", plan="eco", interval="year", qty="1")).expect_card()
    quote = (await alex.act(card, "Checkout")).expect_card()
    quote_id = find_action(quote, "Refresh")["data"]["quote"]
    token = alex.open_url(quote, "Pay …").rsplit("/", 1)[1]
    q = desk.lic.quotes.quote_snapshot(quote_id)
    result = desk.lic.settlement.handle_payment_event(PaymentEvent(
        provider="sandbox", event_id="evt-wrong-amount", kind="paid", quote_id=quote_id, external_id=token,
        amount=q.due_now + 100, currency="USD"))
    assert result.result == "refund_needed"
    assert await desk.notify() == 2  # the notice and the quote card
    [notice] = alex.proactive_cards()
    assert heading_of(notice) == "Your payment will be refunded"
    assert "The amount paid differs from the quoted amount." in text_of(notice)
    assert money(q.due_now, "USD") in text_of(notice)
    assert "Status: Payment to be refunded" in text_of(alex.card_in(quote.message_id))
    with desk.lic.db.read() as s:
        kinds = s.scalars(select(OutboxMessage.kind).where(OutboxMessage.user_id == desk.user("Alex Wilber").id))
        assert sorted(kinds) == ["refund_needed"]
    assert pool_of(desk, "eco", "year") is None  # nothing was added
    assert_valid_cards([notice])


async def test_a_quote_expires_before_payment(desk, clock):
    alex = desk.admin()
    [card] = await alex.say("buy")
    card = (await alex.act(card, "Add", plan="eco", interval="month", qty="1")).expect_card()
    quote = (await alex.act(card, "Checkout")).expect_card()
    clock.advance(minutes=31)
    url = alex.open_url(quote, "Pay …")
    assert "Quote expired" in (await desk.post_form(url, {"action": "pay"})).text
    watch = Watch(desk)
    stale = (await alex.act(card, "Checkout")).expect_card()
    assert "Status: Expired" in text_of(stale)
    watch.unchanged()
    # the cart itself is still good: priced again at today's time
    card = (await alex.execute("buy.cart", find_action(card, "Checkout")["data"])).expect_card()
    assert cart_rows(card)[0][0] == "1 × Eco (monthly)" and has_action(card, "Checkout")
