"""The life of a quote's payment with Stripe, through real HTTP (Teams cards, Stripe webhooks, the
fake Stripe of tests/fakes/fake_stripe.py): a dead link is replaced, closing a quote closes its
link, and a payment outside what was quoted (closed quote, other period) is refunded, never applied."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from core.models import Quote
from gateways.stripe_gateway import StripeGateway
from tests.fakes.fake_stripe import TEST_API_KEY, FakeStripe, event_payload, sign_webhook
from tests.harness import choice_value, find_action, has_action, heading_of, pool_button, running_desk, text_of, tick

WEBHOOK_SECRET = "whsec_test_lifecycle"


@pytest.fixture
def fake_stripe():
    server = FakeStripe().start()
    yield server
    server.stop()


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
