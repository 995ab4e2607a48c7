"""The life of a quote's payment with Stripe, through real HTTP (Teams cards, Stripe webhooks, the
fake Stripe of tests/fakes/fake_stripe.py): a dead link is replaced, closing a quote closes its
link, and a payment outside what was quoted (closed quote, other period) is refunded, never applied."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from core.models import Quote
from payments.stripe.gateway import StripeGateway
from tests.fakes.fake_stripe import TEST_API_KEY, FakeStripe, event_payload, sign_webhook
from tests.harness import (
    choice_value,
    facts_of,
    find_action,
    has_action,
    heading_of,
    pool_button,
    running_desk,
    text_of,
    tick,
)

WEBHOOK_SECRET = "whsec_test_lifecycle"


@pytest.fixture
async def desk(db, clock, fake_stripe):
    """The app with Stripe payments (the fake), on the real clock: Stripe checks expiries against it."""
    clock.now = datetime.now(UTC).replace(microsecond=0)
    gateway = StripeGateway(TEST_API_KEY, WEBHOOK_SECRET, api_base=fake_stripe.base_url, timeout_seconds=3,
                            max_network_retries=0)
    async with running_desk(db=db, clock=clock, gateway=gateway) as d:
        yield d


async def upgrade_quote(desk, alex, *names: str) -> dict:
    """The upgrade quote card for ``names`` of the Eco monthly pool to Pro, as Alex gets it."""
    [pools] = await alex.say("licenses")
    users = (await alex.act(pools, pool_button(pools, "Eco", "monthly"))).expect_card()
    tiers = (await alex.act(users, "Choose tier", users=tick(users, "users", *names))).expect_card()
    quote = (await alex.act(tiers, "Upgrade", plan=choice_value(tiers, "plan", "Pro"))).expect_card()
    assert heading_of(quote) == "Upgrade quote"
    return quote


async def stripe_event(desk, event_type: str, session: dict, event_id: str | None = None) -> str:
    payload = event_payload(event_type, session, event_id=event_id)
    resp = await desk.post_raw("/api/stripe/webhook", payload,
                               headers={"Stripe-Signature": sign_webhook(payload, WEBHOOK_SECRET)})
    assert resp.status == 200, resp.text
    return resp.json()["result"]


def session_of(fake: FakeStripe, url: str) -> dict:
    [session] = [s for s in fake.sessions.values() if s["url"] == url]
    return session


def quote_row(desk, quote_card: dict) -> Quote:
    with desk.lic.db.read() as s:
        return s.get(Quote, find_action(quote_card, "Refresh")["data"]["quote"])


@pytest.mark.parametrize(("event_type", "says"), [
    ("checkout.session.expired", "The previous payment link expired unpaid."),
    ("checkout.session.async_payment_failed", "The previous payment failed; nothing was charged."),
])
async def test_after_a_dead_link_refresh_and_pay_give_a_new_working_one(desk, fake_stripe, event_type, says):
    alex = desk.admin()
    quote = await upgrade_quote(desk, alex, "Adele Vance")
    first_url = alex.open_url(quote, "Pay …")
    first = session_of(fake_stripe, first_url)
    if event_type == "checkout.session.expired":
        dead = fake_stripe.expire_session(first["id"])  # Stripe expires it (its expires_at passed)
    else:
        dead = fake_stripe.complete_session(first["id"], payment_status="unpaid")  # a bank debit then fails
    assert await stripe_event(desk, event_type, dead) in ("expired", "failed")

    # The card shown earlier is updated in place: it says what happened and offers a new link.
    await desk.notify()
    updated = alex.card_in(quote.message_id)
    assert says in text_of(updated) and not has_action(updated, "Pay …")
    fresh = (await alex.act(updated, "Get a new payment link")).expect_card()
    second_url = alex.open_url(fresh, "Pay …")
    assert second_url != first_url and says in text_of(fresh)
    second = session_of(fake_stripe, second_url)
    assert second["status"] == "open" and second["amount_total"] == first["amount_total"]
    # Refresh on any copy of the card gives that same link (one live link per quote).
    again = (await alex.act(quote, "Refresh")).expect_card()
    assert alex.open_url(again, "Pay …") == second_url
    keys = [r.idempotency_key for r in fake_stripe.requests_to("POST", "/v1/checkout/sessions")]
    q = quote_row(desk, quote)
    assert keys == [f"quote-{q.id}-link", f"quote-{q.id}-link-1"]

    paid = fake_stripe.complete_session(second["id"])
    assert await stripe_event(desk, "checkout.session.completed", paid) == "settled"
    assert quote_row(desk, quote).status == "paid"


async def test_the_lapse_is_said_in_french(desk, fake_stripe):
    megan = desk.client_named("Megan Bowen", locale="fr-FR")
    [pools] = await megan.say("licences")
    users = (await megan.act(pools, pool_button(pools, "Eco", "mensuel"))).expect_card()
    tiers = (await megan.act(users, "Choisir l'offre", users=tick(users, "users", "Lee Gu"))).expect_card()
    quote = (await megan.act(tiers, "Mettre à niveau", plan=choice_value(tiers, "plan", "Pro"))).expect_card()
    session = session_of(fake_stripe, megan.open_url(quote, "Payer …"))
    await stripe_event(desk, "checkout.session.expired", fake_stripe.expire_session(session["id"]))
    refreshed = (await megan.act(quote, "Actualiser")).expect_card()
    assert "Le lien de paiement précédent a expiré sans paiement." in text_of(refreshed)
    assert megan.open_url(refreshed, "Payer …") != session["url"]


async def test_an_event_about_an_older_link_leaves_the_live_one(desk, fake_stripe):
    alex = desk.admin()
    quote = await upgrade_quote(desk, alex, "Adele Vance")
    live = session_of(fake_stripe, alex.open_url(quote, "Pay …"))
    stranger = dict(live, id="cs_test_an_older_session", status="expired")
    assert await stripe_event(desk, "checkout.session.expired", stranger) == "expired"
    refreshed = (await alex.act(quote, "Refresh")).expect_card()
    assert alex.open_url(refreshed, "Pay …") == live["url"]
    assert "expired" not in text_of(refreshed)
    with desk.lic.db.read() as s:
        assert s.scalars(select(Quote.payment_lapsed)).all() == [None]


# ---------------------------------------------------------------------------- closing a quote closes its link


async def billing(desk) -> int:
    from web.workers import billing_sync_once

    return await billing_sync_once(desk.lic, "test-billing")


def pools(desk) -> list[tuple[str, int]]:
    from core.models import Pool

    with desk.lic.db.read() as s:
        return sorted(s.execute(select(Pool.plan_code, Pool.quantity)).all())


async def test_cancel_expires_the_stripe_session_and_the_card_tells_the_truth_meanwhile(desk, fake_stripe, clock):
    alex = desk.admin()
    quote = await upgrade_quote(desk, alex, "Adele Vance")
    session = session_of(fake_stripe, alex.open_url(quote, "Pay …"))

    fake_stripe.fail_next(status=500)  # Stripe fails the first expiry: retried through the billing outbox
    cancelled = (await alex.act(quote, "Cancel")).expect_card()
    assert "The payment link is being closed: if a payment goes through meanwhile, it will be refunded" in \
        text_of(cancelled)
    assert "Nothing was charged" not in text_of(cancelled)
    shown = (await alex.act(quote, "Refresh")).expect_card()  # the quote card while Stripe has not confirmed
    assert "The payment link is being closed." in text_of(shown)
    assert await billing(desk) == 1 and session["status"] == "open" == fake_stripe.sessions[session["id"]]["status"]
    clock.advance(minutes=10)
    assert await billing(desk) == 1
    assert fake_stripe.sessions[session["id"]]["status"] == "expired"  # nobody can pay it any more
    assert [r.path for r in fake_stripe.requests if r.path.endswith("/expire")] == [
        f"/v1/checkout/sessions/{session['id']}/expire"] * 2

    shown = (await alex.act(quote, "Refresh")).expect_card()
    assert "Nothing was charged." in text_of(shown) and "being closed" not in text_of(shown)
    await desk.notify()
    assert "Nothing was charged." in text_of(alex.card_in(quote.message_id))  # updated in place too
    # Stripe's own checkout.session.expired for it changes nothing more
    assert await stripe_event(desk, "checkout.session.expired", fake_stripe.sessions[session["id"]]) == "expired"
    assert quote_row(desk, quote).status == "cancelled"


async def test_a_payment_that_went_through_before_the_link_closed_is_refunded_never_applied(desk, fake_stripe):
    alex = desk.admin()
    quote = await upgrade_quote(desk, alex, "Adele Vance")
    session = session_of(fake_stripe, alex.open_url(quote, "Pay …"))
    before = pools(desk)
    paid = fake_stripe.complete_session(session["id"])  # paid while Alex clicks Back (which cancels)
    back = (await alex.act(quote, "Back")).expect_card()
    assert heading_of(back).startswith("Upgrade 1 user")
    assert await billing(desk) == 1  # Stripe refuses to expire a complete session: the webhook will come
    assert quote_row(desk, quote).status == "cancelled"
    shown = (await alex.act(quote, "Refresh")).expect_card()
    assert "payment goes through meanwhile, it will be refunded" in text_of(shown)

    assert await stripe_event(desk, "checkout.session.completed", paid) == "refund_needed"
    assert pools(desk) == before and quote_row(desk, quote).status == "refund_needed"


async def test_a_paid_event_for_a_cancelled_purchase_is_refunded_never_applied(desk, fake_stripe):
    alex = desk.admin()
    [buy] = await alex.say("buy")
    cart = (await alex.act(buy, "Add", plan=choice_value(buy, "plan", "Pro (Standard)"), qty="3")
            ).expect_card()
    quote = (await alex.act(cart, "Checkout")).expect_card()
    session = session_of(fake_stripe, alex.open_url(quote, "Pay …"))
    before = pools(desk)
    await alex.act(quote, "Cancel")
    paid = fake_stripe.complete_session(session["id"])  # (before the expiry reached Stripe)
    assert await stripe_event(desk, "checkout.session.completed", paid) == "refund_needed"
    assert pools(desk) == before


async def test_a_quote_that_runs_out_of_time_is_closed_with_its_stripe_session(desk, fake_stripe, clock):
    from web.workers import rollover_loop

    alex = desk.admin()
    quote = await upgrade_quote(desk, alex, "Adele Vance")
    session = session_of(fake_stripe, alex.open_url(quote, "Pay …"))
    clock.advance(minutes=31)
    import asyncio
    import contextlib

    task = asyncio.create_task(rollover_loop(desk.lic, every=3600))  # the background job's first round
    for _ in range(100):
        if quote_row(desk, quote).status != "open":
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert quote_row(desk, quote).status == "expired"
    assert await billing(desk) == 1
    assert fake_stripe.sessions[session["id"]]["status"] == "expired"
    await desk.notify()
    updated = alex.card_in(quote.message_id)
    assert "Status: Expired" in text_of(updated) and "Nothing was charged." in text_of(updated)


# ---------------------------------------------------------------------------- the billing period


def _to_period_end(desk, clock, before) -> datetime:
    from core.models import Pool, Subscription

    with desk.lic.db.read() as s:
        end = s.scalars(select(Subscription.period_end).join(Pool, Pool.subscription_id == Subscription.id)
                        .where(Pool.plan_code == "eco", Subscription.interval == "month")).one()
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    clock.now = end - before
    return end


async def test_a_quote_never_expires_after_the_end_of_its_billing_period(desk, clock):
    from datetime import timedelta

    from core.views import Actor
    from tests.harness import ALEX, TENANT

    end = _to_period_end(desk, clock, timedelta(minutes=10))
    alex = Actor(TENANT, ALEX)
    pool = desk.lic.pools.list_pools(alex)
    eco = next(p for p in pool if p.plan_code == "eco" and p.interval == "month")
    users = [u.id for u in desk.lic.pools.pool_users(alex, eco.id, page_size=1).items]
    upgrade = desk.lic.quotes.quote_upgrade(alex, eco.id, users, "pro")
    purchase = desk.lic.quotes.quote_purchase(alex, [{"plan": "pro", "interval": "month", "quantity": 1}])
    assert (upgrade.expires_at, purchase.expires_at) == (end, end)


async def test_an_upgrade_paid_after_its_period_rolled_over_is_refunded_with_a_new_quote_button(desk, fake_stripe,
                                                                                                clock):
    from datetime import timedelta

    end = _to_period_end(desk, clock, timedelta(days=5))  # (enough left for a card payment)
    alex = desk.admin()
    assert await alex.install()
    quote = await upgrade_quote(desk, alex, "Adele Vance", "Lee Gu")
    session = session_of(fake_stripe, alex.open_url(quote, "Pay …"))
    before = pools(desk)
    clock.now = end + timedelta(minutes=1)  # the period rolled over; a few cents would buy a whole month

    result = await stripe_event(desk, "checkout.session.completed", fake_stripe.complete_session(session["id"]))
    assert result == "refund_needed" and pools(desk) == before
    await desk.notify()
    [notice] = [c for c in alex.proactive_cards() if heading_of(c) == "Your payment will be refunded"]
    assert "billing period the quote was priced in had ended" in text_of(notice)
    tiers = (await alex.act(notice, "Prepare a new quote")).expect_card()
    assert heading_of(tiers) == "Upgrade 2 users from Eco"
    again = (await alex.act(tiers, "Upgrade", plan=choice_value(tiers, "plan", "Pro"))).expect_card()
    assert heading_of(again) == "Upgrade quote"
    assert quote_row(desk, again).lines[0]["period_start"] == end.isoformat()  # priced in the new period


async def test_a_purchase_paid_after_its_period_rolled_over_is_refunded_with_its_cart(desk, fake_stripe, clock):
    from datetime import timedelta

    end = _to_period_end(desk, clock, timedelta(days=5))
    alex = desk.admin()
    assert await alex.install()
    [buy] = await alex.say("buy")
    cart = (await alex.act(buy, "Add", plan=choice_value(buy, "plan", "Pro (Standard)"), qty="4")
            ).expect_card()
    quote = (await alex.act(cart, "Checkout")).expect_card()
    session = session_of(fake_stripe, alex.open_url(quote, "Pay …"))
    before = pools(desk)
    clock.now = end + timedelta(minutes=1)

    result = await stripe_event(desk, "checkout.session.completed", fake_stripe.complete_session(session["id"]))
    assert result == "refund_needed" and pools(desk) == before
    await desk.notify()
    [notice] = [c for c in alex.proactive_cards() if heading_of(c) == "Your payment will be refunded"]
    assert "billing period the quote was priced in had ended" in text_of(notice)
    cart_again = (await alex.act(notice, "Prepare a new quote")).expect_card()
    assert find_action(cart_again, "Checkout")["data"]["cart"] == [{"plan": "pro", "interval": "month",
                                                                     "quantity": 4}]


# ---------------------------------------------------------------------------- approved requests


async def test_an_approved_request_whose_quote_is_cancelled_waits_again_and_the_requester_is_told(desk,
                                                                                                   fake_stripe):
    from core.models import UpgradeRequest
    from tests.harness import ALEX, LEE

    lee, alex = desk.client(LEE), desk.client(ALEX)
    for person in (lee, alex):
        assert await person.install()
    [mine] = await lee.say("mylicense")
    form = (await lee.act(mine, "Request an upgrade")).expect_card()
    await lee.act(form, "Send the request", plan=choice_value(form, "plan", "Pro"))
    await desk.notify()
    [request_card] = [c for c in alex.proactive_cards() if heading_of(c) == "Upgrade request from Lee Gu"]
    quote = (await alex.act(request_card, "Approve")).expect_card()
    assert heading_of(quote) == "Upgrade quote"
    await desk.notify()
    told = len(lee.proactive_cards())

    await alex.act(quote, "Cancel")
    with desk.lic.db.read() as s:
        req = s.scalars(select(UpgradeRequest)).one()
        assert (req.status, req.quote_id, req.decided_by) == ("pending", None, None)
    await desk.notify()
    [notice] = lee.proactive_cards()[told:]
    assert heading_of(notice) == "Your upgrade request is waiting again"
    assert "was cancelled before it was paid; nothing was charged" in text_of(notice)
    # the other admins' request cards are updated in place: Approve / Decline again
    megan_cards = [c for c in desk.client_named("Megan Bowen").proactive_cards()
                   if heading_of(c) == "Upgrade request from Lee Gu"]
    assert megan_cards and has_action(desk.client_named("Megan Bowen").card_in(megan_cards[0].message_id),
                                      "Approve")
    again = (await alex.act(request_card, "Approve")).expect_card()  # and it can be approved again
    assert heading_of(again) == "Upgrade quote"


async def test_an_approved_request_whose_quote_expires_waits_again(desk, fake_stripe, clock):
    from core.models import UpgradeRequest
    from tests.harness import ALEX, LEE

    lee, alex = desk.client(LEE, locale="fr-FR"), desk.client(ALEX)
    for person in (lee, alex):
        assert await person.install()
    req = desk.lic.requests.request_upgrade(_actor(LEE), "pro")
    desk.lic.requests.approve_request(_actor(ALEX), req.id)
    await desk.notify()
    told = len(lee.proactive_cards())
    clock.advance(minutes=31)
    assert desk.lic.quotes.expire_quotes() == 1
    with desk.lic.db.read() as s:
        assert s.scalars(select(UpgradeRequest.status)).one() == "pending"
    await desk.notify()
    [notice] = lee.proactive_cards()[told:]
    assert "a expiré avant d'être payé" in text_of(notice)


def _actor(aad: str):
    from core.demo import TENANT
    from core.views import Actor

    return Actor(TENANT, aad)


async def test_a_card_paid_through_stripe_is_a_receipt_naming_the_payer(desk, fake_stripe):
    """Stripe fills the Checkout Session's ``customer_details.email`` from the Checkout form when
    the customer pays: the paid card names that payer and the session as the payment reference."""
    alex = desk.admin()
    quote = await upgrade_quote(desk, alex, "Adele Vance")
    session = session_of(fake_stripe, alex.open_url(quote, "Pay …"))
    paid = fake_stripe.complete_session(session["id"], email="ap@contoso.example")
    assert await stripe_event(desk, "checkout.session.completed", paid) == "settled"
    receipt = (await alex.act(quote, "Refresh")).expect_card()
    facts = facts_of(receipt)
    assert heading_of(receipt) == "Upgrade paid"
    assert facts["Paid by"] == r"ap@contoso.example" and facts["Payment reference"] == session["id"]
    assert "Due now" not in facts
