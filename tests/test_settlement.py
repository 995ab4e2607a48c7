"""Settlement exactly once, concurrent quotes on the same seats, the sandbox payment pages and
the Stripe webhook, through real HTTP where a person or a provider would use HTTP."""

from __future__ import annotations

import asyncio
import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bootstrap import build_server
from core.catalog import Catalog
from core.config import Settings
from core.errors import HeldByQuote, QuoteNotOpen
from core.licensing import Licensing
from core.models import AuditEvent, OutboxMessage, Payment, Pool, Quote, QuoteHold, Seat, Subscription
from core.payments import PaymentEvent
from payments.sandbox.checkout import SandboxCheckout
from payments.stripe.gateway import StripeGateway
from tests.fakes.fake_stripe import TEST_API_KEY, FakeStripe, event_payload, sign_webhook
from web.workers import billing_sync_once

WEBHOOK_SECRET = "whsec_test_settlement"


def eco_pool(lic: Licensing) -> Pool:
    with lic.db.read() as s:
        return s.scalars(select(Pool).join(Subscription, Subscription.id == Pool.subscription_id)
                         .where(Pool.plan_code == "eco", Subscription.interval == "month")).one()


def first_users(lic: Licensing, actor, pool_id: int, n: int) -> list[int]:
    return [u.id for u in lic.pools.pool_users(actor, pool_id, page_size=n).items]


def counts(lic: Licensing) -> dict:
    with lic.db.read() as s:
        return {
            "settled": s.scalar(select(func.count()).select_from(AuditEvent)
                                .where(AuditEvent.action == "quote.settled")),
            "outbox": s.scalar(select(func.count()).select_from(OutboxMessage)),
            "pools": sorted(s.execute(select(Pool.plan_code, Pool.quantity)).all()),
            "seats": sorted(s.execute(select(Seat.user_id, Seat.pool_id)).all()),
        }


def outbox_by_user(lic: Licensing, kind: str) -> dict[int, int]:
    with lic.db.read() as s:
        return dict(s.execute(select(OutboxMessage.user_id, func.count()).where(OutboxMessage.kind == kind)
                              .group_by(OutboxMessage.user_id)).all())


# ---------------------------------------------------------------------------- exactly once


def test_settling_twice_changes_nothing_the_second_time(demo, admin):
    lic = demo
    pool = eco_pool(lic)
    users = first_users(lic, admin, pool.id, 3)
    q = lic.links.payment_link(admin, lic.quotes.quote_upgrade(admin, pool.id, users, "pro").id)
    token = q.payment_url.rsplit("/", 1)[1]

    assert SandboxCheckout(lic).pay(token).state == "paid"
    after_first = counts(lic)
    assert SandboxCheckout(lic).pay(token).state == "paid"
    # the same provider event replayed, and another event for the same payment
    ev = PaymentEvent("sandbox", f"sandbox:{token}:paid", "paid", q.id, token, q.due_now, q.currency)
    assert lic.settlement.handle_payment_event(ev).result == "duplicate"
    ev2 = PaymentEvent("sandbox", "another-event", "paid", q.id, token, q.due_now, q.currency)
    assert lic.settlement.handle_payment_event(ev2).result == "already_paid"

    assert counts(lic) == after_first
    assert after_first["settled"] == 1
    assert outbox_by_user(lic, "license_upgraded") == {u: 1 for u in users}
    with lic.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Seat).join(Pool, Pool.id == Seat.pool_id)
                        .where(Seat.user_id.in_(users), Pool.plan_code == "pro")) == 3
        assert s.scalar(select(func.count()).select_from(QuoteHold)) == 0


def _race(n: int, fn):
    """Run ``fn(i)`` in n threads released together; return results or exceptions."""
    barrier = threading.Barrier(n)
    out: list = [None] * n

    def run(i):
        barrier.wait()
        try:
            out[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - collected for the assertions
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_concurrent_settlements_settle_once(demo, admin):
    lic = demo
    pool = eco_pool(lic)
    users = first_users(lic, admin, pool.id, 5)
    q = lic.links.payment_link(admin, lic.quotes.quote_upgrade(admin, pool.id, users, "advanced").id)
    token = q.payment_url.rsplit("/", 1)[1]
    events = [PaymentEvent("sandbox", f"event-{i}", "paid", q.id, token, q.due_now, q.currency) for i in range(4)]

    results = _race(4, lambda i: lic.settlement.handle_payment_event(events[i]).result)

    assert sorted(results) == ["already_paid"] * 3 + ["settled"], results
    c = counts(lic)
    assert c["settled"] == 1
    assert outbox_by_user(lic, "license_upgraded") == {u: 1 for u in users}
    assert ("advanced", 15 + 5) in c["pools"] and ("eco", 30 - 5) in c["pools"]


def test_two_admins_quoting_the_same_seats_at_once_one_wins(demo, admin, admin2):
    lic = demo
    pool = eco_pool(lic)
    users = first_users(lic, admin, pool.id, 4)
    actors = [admin, admin2]

    results = _race(2, lambda i: lic.quotes.quote_upgrade(actors[i], pool.id, users, "pro"))

    wins = [r for r in results if not isinstance(r, Exception)]
    losses = [r for r in results if isinstance(r, Exception)]
    assert len(wins) == 1 and len(losses) == 1, results
    assert isinstance(losses[0], HeldByQuote)
    winner = wins[0].created_by_name
    assert winner in ("Alex Wilber", "Megan Bowen")
    assert winner in losses[0].message and "UTC" in losses[0].message
    with lic.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Quote)) == 1
        assert s.scalar(select(func.count()).select_from(QuoteHold)) == 4
        refused = s.scalars(select(AuditEvent).where(AuditEvent.outcome == "refused")).all()
    assert [e.action for e in refused] == ["quote.upgrade"]


def test_a_quote_after_expiry_frees_the_seats(demo, admin, admin2, clock):
    lic = demo
    pool = eco_pool(lic)
    users = first_users(lic, admin, pool.id, 2)
    first = lic.quotes.quote_upgrade(admin, pool.id, users, "pro")
    with pytest.raises(HeldByQuote):
        lic.quotes.quote_upgrade(admin2, pool.id, users, "pro")
    clock.advance(minutes=31)
    second = lic.quotes.quote_upgrade(admin2, pool.id, users, "pro")
    assert second.id != first.id
    assert lic.quotes.quote(admin, first.id).status == "expired"
    with pytest.raises(QuoteNotOpen):
        lic.links.payment_link(admin, first.id)


# ---------------------------------------------------------------------------- sandbox pages over HTTP


@pytest.fixture
async def web_client(demo, db_url, aiohttp_client):
    settings = Settings(DATABASE_URL=db_url, PUBLIC_BASE_URL="http://127.0.0.1")
    return await aiohttp_client(build_server(settings, demo).app)


async def _quote_token(lic, admin, n=2, plan="pro"):
    pool = eco_pool(lic)
    users = first_users(lic, admin, pool.id, n)
    q = await asyncio.to_thread(lambda: lic.links.payment_link(admin, lic.quotes.quote_upgrade(admin, pool.id, users,
                                                                                               plan).id))
    return q, q.payment_url.rsplit("/", 1)[1], users


async def test_pay_page_pay_then_pay_again(web_client, demo, admin):
    q, token, users = await _quote_token(demo, admin)
    page = await web_client.get(f"/pay/{token}")
    html = await page.text()
    assert page.status == 200
    assert f"${q.due_now / 100:,.2f}" in html.replace("US$", "$")
    assert 'data-state="' not in html or "payable" in html
    assert 'id="pay"' in html

    paid = await web_client.post(f"/pay/{token}", data={"action": "pay"})
    assert paid.status == 200
    assert 'data-state="paid"' in await paid.text()
    before = await asyncio.to_thread(counts, demo)
    again = await web_client.post(f"/pay/{token}", data={"action": "pay"})
    assert 'data-state="paid"' in await again.text()
    assert 'id="pay"' not in await again.text()
    assert await asyncio.to_thread(counts, demo) == before
    assert before["settled"] == 1


async def test_pay_page_cancel_releases_the_seats(web_client, demo, admin):
    q, token, users = await _quote_token(demo, admin)
    resp = await web_client.post(f"/pay/{token}", data={"action": "cancel"})
    assert 'data-state="cancelled"' in await resp.text()
    assert demo.quotes.quote(admin, q.id).status == "cancelled"
    with demo.db.read() as s:
        assert s.scalar(select(func.count()).select_from(QuoteHold)) == 0
    paid = await web_client.post(f"/pay/{token}", data={"action": "pay"})
    assert 'data-state="cancelled"' in await paid.text()
    assert (await asyncio.to_thread(counts, demo))["settled"] == 0


async def test_pay_page_expired_quote_cannot_be_paid(web_client, demo, admin, clock):
    q, token, users = await _quote_token(demo, admin)
    clock.advance(minutes=45)
    page = await web_client.get(f"/pay/{token}")
    assert 'data-state="expired"' in await page.text()
    resp = await web_client.post(f"/pay/{token}", data={"action": "pay"})
    text = await resp.text()
    assert 'data-state="expired"' in text and "Nothing was charged" in text
    assert (await asyncio.to_thread(counts, demo))["settled"] == 0


@pytest.mark.parametrize("token", ["nope", "x" * 30, "%3Cscript%3E" * 3, "%00" * 10])
async def test_pay_page_unknown_token_is_a_clear_page(web_client, token):
    resp = await web_client.get(f"/pay/{token}")
    text = await resp.text()
    assert resp.status == 404
    assert "Link not found" in text and "Traceback" not in text
    post = await web_client.post(f"/pay/{token}", data={"action": "pay"})
    assert post.status == 404 and "Link not found" in await post.text()


async def test_healthz(web_client):
    resp = await web_client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"


# ---------------------------------------------------------------------------- Stripe webhook


@pytest.fixture
def stripe_lic(db, clock, fake_stripe):
    clock.now = datetime.now(UTC).replace(microsecond=0)  # Stripe checks expiries against real time
    from core.demo import load_demo

    gateway = StripeGateway(TEST_API_KEY, WEBHOOK_SECRET, api_base=fake_stripe.base_url, timeout_seconds=3,
                            max_network_retries=0)
    lic = Licensing(db, Catalog.load(), gateway, clock=clock, quote_ttl=timedelta(minutes=30))
    load_demo(lic)
    return lic


@pytest.fixture
async def stripe_client(stripe_lic, db_url, aiohttp_client):
    settings = Settings(DATABASE_URL=db_url, PAYMENTS="stripe", STRIPE_API_KEY=TEST_API_KEY,
                        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET)
    return await aiohttp_client(build_server(settings, stripe_lic).app)


def _post_event(client, event_type, session, *, event_id=None, secret=WEBHOOK_SECRET, timestamp=None):
    payload = event_payload(event_type, session, event_id=event_id)
    headers = {"Stripe-Signature": sign_webhook(payload, secret, timestamp), "Content-Type": "application/json"}
    return client.post("/api/stripe/webhook", data=payload, headers=headers)


async def _stripe_quote(lic, admin, n=3):
    pool = eco_pool(lic)
    users = first_users(lic, admin, pool.id, n)
    q = await asyncio.to_thread(lambda: lic.links.payment_link(admin, lic.quotes.quote_upgrade(admin, pool.id, users,
                                                                                               "pro").id))
    return q, users


async def test_signed_webhook_settles_once(stripe_client, stripe_lic, fake_stripe, admin):
    q, users = await _stripe_quote(stripe_lic, admin)
    assert q.payment_provider == "stripe" and q.payment_url.startswith("http")
    (session_id,) = fake_stripe.sessions
    created = fake_stripe.sessions[session_id]
    assert created["amount_total"] == q.due_now and created["metadata"]["quote_id"] == q.id
    session = fake_stripe.complete_session(session_id)

    resp = await _post_event(stripe_client, "checkout.session.completed", session, event_id="evt_1")
    assert resp.status == 200 and (await resp.json())["result"] == "settled"
    replay = await _post_event(stripe_client, "checkout.session.completed", session, event_id="evt_1")
    assert (await replay.json())["result"] == "duplicate"
    other = await _post_event(stripe_client, "checkout.session.async_payment_succeeded", session, event_id="evt_2")
    assert (await other.json())["result"] == "already_paid"

    assert stripe_lic.quotes.quote(admin, q.id).status == "paid"
    assert outbox_by_user(stripe_lic, "license_upgraded") == {u: 1 for u in users}
    assert (await asyncio.to_thread(counts, stripe_lic))["settled"] == 1


@pytest.mark.parametrize("problem", ["bad_signature", "stale_timestamp", "not_json"])
async def test_unauthentic_webhooks_change_nothing(stripe_client, stripe_lic, fake_stripe, admin, problem):
    q, _ = await _stripe_quote(stripe_lic, admin)
    session = fake_stripe.complete_session(next(iter(fake_stripe.sessions)))
    before = await asyncio.to_thread(counts, stripe_lic)
    if problem == "bad_signature":
        resp = await _post_event(stripe_client, "checkout.session.completed", session, secret="whsec_wrong")
    elif problem == "stale_timestamp":
        old = int(datetime.now(UTC).timestamp()) - 301
        resp = await _post_event(stripe_client, "checkout.session.completed", session, timestamp=old)
    else:
        payload = b"{not json"
        resp = await stripe_client.post("/api/stripe/webhook", data=payload,
                                        headers={"Stripe-Signature": sign_webhook(payload, WEBHOOK_SECRET)})
    assert resp.status == 400
    assert await asyncio.to_thread(counts, stripe_lic) == before
    assert stripe_lic.quotes.quote(admin, q.id).status == "open"


async def test_payment_after_seats_changed_is_recorded_for_refund(stripe_client, stripe_lic, fake_stripe, admin,
                                                                  clock):
    q, users = await _stripe_quote(stripe_lic, admin)
    clock.advance(minutes=31)  # the quote expired; meanwhile a user lost their seat
    await asyncio.to_thread(stripe_lic.seats.unassign, admin, q.pool_id, [users[0]])
    session = fake_stripe.complete_session(next(iter(fake_stripe.sessions)))
    resp = await _post_event(stripe_client, "checkout.session.completed", session, event_id="evt_late")
    assert (await resp.json())["result"] == "refund_needed"
    view = stripe_lic.quotes.quote(admin, q.id)
    assert view.status == "refund_needed" and view.note
    assert (await asyncio.to_thread(counts, stripe_lic))["settled"] == 0
    assert outbox_by_user(stripe_lic, "refund_needed") == {view.created_by: 1}


async def test_a_payment_after_the_quote_expired_is_refunded_never_applied(stripe_client, stripe_lic, fake_stripe,
                                                                          admin, clock):
    # (It used to be applied when the seats were unchanged: the quote is an offer until its expiry.)
    q, users = await _stripe_quote(stripe_lic, admin)
    clock.advance(minutes=31)
    session = fake_stripe.complete_session(next(iter(fake_stripe.sessions)))
    resp = await _post_event(stripe_client, "checkout.session.completed", session, event_id="evt_late")
    assert (await resp.json())["result"] == "refund_needed"
    assert outbox_by_user(stripe_lic, "license_upgraded") == {}
    assert (await asyncio.to_thread(counts, stripe_lic))["settled"] == 0
    assert outbox_by_user(stripe_lic, "refund_needed") == {stripe_lic.quotes.quote(admin, q.id).created_by: 1}


async def test_amount_mismatch_is_never_settled(stripe_client, stripe_lic, fake_stripe, admin):
    q, _ = await _stripe_quote(stripe_lic, admin)
    session = dict(fake_stripe.complete_session(next(iter(fake_stripe.sessions))), amount_total=q.due_now - 1)
    resp = await _post_event(stripe_client, "checkout.session.completed", session)
    assert (await resp.json())["result"] == "refund_needed"
    assert (await asyncio.to_thread(counts, stripe_lic))["settled"] == 0


async def test_failed_and_expired_sessions_are_marked(stripe_client, stripe_lic, fake_stripe, admin):
    q, _ = await _stripe_quote(stripe_lic, admin)
    session = fake_stripe.sessions[next(iter(fake_stripe.sessions))]
    resp = await _post_event(stripe_client, "checkout.session.async_payment_failed", session)
    assert (await resp.json())["result"] == "failed"
    with stripe_lic.db.read() as s:  # that link is dead: the quote, still open, gets a new one on request
        assert s.scalar(select(func.count()).select_from(Payment)) == 0
        assert s.get(Quote, q.id).payment_lapsed == "failed"
    resp = await _post_event(stripe_client, "checkout.session.expired", session)
    assert (await resp.json())["result"] == "expired"
    view = stripe_lic.quotes.quote(admin, q.id)
    assert view.status == "open" and view.payment_lapsed == "failed" and view.payment_url is None


async def test_stripe_down_gives_a_clear_try_again(stripe_lic, fake_stripe, admin):
    pool = eco_pool(stripe_lic)
    users = first_users(stripe_lic, admin, pool.id, 1)
    q = stripe_lic.quotes.quote_upgrade(admin, pool.id, users, "pro")
    fake_stripe.fail_next(status=500, count=1)
    from core.errors import PaymentUnavailable

    with pytest.raises(PaymentUnavailable, match="try again"):
        stripe_lic.links.payment_link(admin, q.id)
    with stripe_lic.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == 0
    again = stripe_lic.links.payment_link(admin, q.id)  # Stripe is back: the same quote gets its link
    assert again.payment_url and len(fake_stripe.sessions) == 1


def _stripe_licensing(lic: Licensing, fake: FakeStripe, clock, **gateway_options) -> Licensing:
    """Another process on the same database (or this one after a restart)."""
    options = {"timeout_seconds": 3, "max_network_retries": 0, **gateway_options}
    gateway = StripeGateway(TEST_API_KEY, WEBHOOK_SECRET, api_base=fake.base_url, **options)
    return Licensing(lic.db, Catalog.load(), gateway, clock=clock, quote_ttl=timedelta(minutes=30))


async def test_a_500_never_blocks_the_quotes_link_the_next_attempt_has_its_own_key(stripe_lic, fake_stripe, admin,
                                                                                   clock):
    # Stripe replays the first answer to a key for 24 h, 500s included (docs: idempotent requests).
    pool = eco_pool(stripe_lic)
    q = stripe_lic.quotes.quote_upgrade(admin, pool.id, first_users(stripe_lic, admin, pool.id, 1), "pro")
    fake_stripe.fail_next(status=500, count=1)
    from core.errors import PaymentUnavailable

    with pytest.raises(PaymentUnavailable, match="try again"):
        stripe_lic.links.payment_link(admin, q.id)
    with stripe_lic.db.read() as s:
        assert s.get(Quote, q.id).link_attempt == 1  # recorded: survives a restart, seen by every process
    other = _stripe_licensing(stripe_lic, fake_stripe, clock)  # the next click lands on another process
    again = other.links.payment_link(admin, q.id)
    assert again.payment_url and len(fake_stripe.sessions) == 1
    assert [r.idempotency_key for r in fake_stripe.requests_to("POST", "/v1/checkout/sessions")] == [
        f"quote-{q.id}-link", f"quote-{q.id}-link-1"]
    assert stripe_lic.links.payment_link(admin, q.id).payment_url == again.payment_url  # one link per quote


async def test_a_request_that_got_no_answer_is_retried_with_its_key(stripe_lic, fake_stripe, admin, clock):
    pool = eco_pool(stripe_lic)
    q = stripe_lic.quotes.quote_upgrade(admin, pool.id, first_users(stripe_lic, admin, pool.id, 1), "pro")
    impatient = _stripe_licensing(stripe_lic, fake_stripe, clock, timeout_seconds=0.3)
    fake_stripe.delay_next(1.0)  # Stripe creates the session, but the answer comes too late
    from core.errors import PaymentUnavailable

    with pytest.raises(PaymentUnavailable, match="did not answer"):
        await asyncio.to_thread(impatient.links.payment_link, admin, q.id)
    for _ in range(100):
        if fake_stripe.sessions:
            break
        await asyncio.sleep(0.05)
    [created] = fake_stripe.sessions
    again = stripe_lic.links.payment_link(admin, q.id)
    assert again.payment_url == fake_stripe.sessions[created]["url"] and len(fake_stripe.sessions) == 1
    assert {r.idempotency_key for r in fake_stripe.requests_to("POST", "/v1/checkout/sessions")} == {
        f"quote-{q.id}-link"}


async def test_a_permanent_refusal_is_said_as_such_not_try_again(stripe_lic, fake_stripe, admin):
    from core.errors import PaymentRefused

    _link_customer(stripe_lic, "gone-customer")  # a billing profile Stripe does not know
    pool = eco_pool(stripe_lic)
    q = stripe_lic.quotes.quote_upgrade(admin, pool.id, first_users(stripe_lic, admin, pool.id, 3), "pro")
    with pytest.raises(PaymentRefused) as raised:
        stripe_lic.links.payment_link(admin, q.id)
    assert "try again in a minute" not in str(raised.value.message)
    assert "billing profile" in str(raised.value.message)
    from cards.i18n import T

    assert "profil de facturation" in T("fr-FR").say(raised.value.message)
    with stripe_lic.db.read() as s:
        refused = s.scalars(select(AuditEvent).where(AuditEvent.action == "payment.link")).one()
        assert refused.outcome == "refused" and refused.detail == {"code": "payment_refused",
                                                                  "message": raised.value.message.to_json()}
        assert s.scalar(select(func.count()).select_from(Payment)) == 0


async def test_settlement_updates_the_linked_stripe_subscription(stripe_client, stripe_lic, fake_stripe, admin):
    eco = fake_stripe.add_price(product="license-desk-eco", unit_amount=800, currency="usd", interval="month",
                                metadata={"plan_code": "eco"})
    sub_ref = fake_stripe.seed_subscription([{"price": eco, "quantity": 30, "metadata": {"plan_code": "eco"}}])

    def link(s):
        sub = s.scalars(select(Subscription).where(Subscription.interval == "month")).one()
        sub.external_ref = sub_ref

    stripe_lic.db.write(link)
    q, users = await _stripe_quote(stripe_lic, admin, n=3)
    session = fake_stripe.complete_session(next(iter(fake_stripe.sessions)))
    resp = await _post_event(stripe_client, "checkout.session.completed", session)
    assert (await resp.json())["result"] == "settled"

    assert await billing_sync_once(stripe_lic, "test-worker") == 1
    items = {i["metadata"].get("plan_code") or i["price"]["metadata"].get("plan_code"): i["quantity"]
             for i in fake_stripe.subscriptions[sub_ref]["items"]}
    assert items == {"eco": 27, "advanced": 15, "pro": 9, "api_advanced": 10}
    assert fake_stripe.prorations == []
    updates = [r for r in fake_stripe.requests if r.method == "POST" and re.search(r"/v1/subscriptions/", r.path)]
    assert updates and all(r.params.get("proration_behavior") == "none" for r in updates)
    assert await billing_sync_once(stripe_lic, "test-worker") == 0


# ---------------------------------------------------------------------------- under Stripe's minimum charge


def _near_period_end(lic: Licensing, clock, before: timedelta) -> None:
    """Move the clock to ``before`` the end of the Eco monthly pool's period."""
    with lic.db.read() as s:
        end = s.get(Subscription, eco_pool(lic).subscription_id).period_end
    clock.now = (end if end.tzinfo else end.replace(tzinfo=UTC)) - before


def _link_customer(lic: Licensing, customer: str | None) -> None:
    from core.models import Account

    def work(s):
        for account in s.scalars(select(Account)):
            account.billing_ref = customer

    lic.db.write(work)


async def test_an_amount_under_stripes_minimum_is_added_to_the_next_invoice_once(stripe_lic, fake_stripe, admin,
                                                                                 clock):
    customer = fake_stripe.add_customer()
    _link_customer(stripe_lic, customer)
    _near_period_end(stripe_lic, clock, timedelta(hours=12))  # one user's upgrade costs a few cents now
    pool = eco_pool(stripe_lic)
    [user] = first_users(stripe_lic, admin, pool.id, 1)
    q = stripe_lic.quotes.quote_upgrade(admin, pool.id, [user], "pro")
    owed = sum(ln.amount for ln in q.lines)
    assert 0 < owed < 50  # below Stripe's 0.50 USD
    assert (q.due_now, q.carried) == (0, owed) and q.gross + q.discount == owed

    from cards.i18n import Reader
    from cards.upgrade import paid_card, quote_card
    from tests.cardcheck import assert_valid_cards
    from tests.harness import amount_rows, find_action, text_of

    card = quote_card(Reader("en-US"), q)
    assert ("Added to your next invoice (below the minimum card payment)", f"-${owed / 100:.2f}") in [
        (label, amount.replace("−", "-")) for label, amount in amount_rows(card)]
    assert ("Due now", "$0.00") in amount_rows(card)
    assert f"Nothing is charged now: ${owed / 100:.2f} is too small for a card payment" in text_of(card)
    find_action(card, "Confirm")

    done = stripe_lic.quotes.confirm_without_payment(admin, q.id)
    assert done.status == "paid" and fake_stripe.sessions == {}  # no Checkout for a few cents
    with stripe_lic.db.read() as s:
        held = s.scalars(select(Pool.plan_code).join(Seat, Seat.pool_id == Pool.id).where(Seat.user_id == user)).all()
    assert "pro" in held and "eco" not in held
    assert f"${owed / 100:.2f}" in text_of(paid_card(Reader("en-US"), done))
    assert_valid_cards([card, paid_card(Reader("en-US"), done), quote_card(Reader("fr-FR"), q)])

    assert await billing_sync_once(stripe_lic, "test-worker") == 1
    [txn] = fake_stripe.balance_transactions
    assert (txn["customer"], txn["amount"], txn["currency"]) == (customer, owed, "usd")
    assert txn["metadata"] == {"quote_id": q.id} and "Eco → Pro" in txn["description"]
    assert fake_stripe.customers[customer]["balance"] == owed  # owed on the next invoice
    [post] = fake_stripe.requests_to("POST", f"/v1/customers/{customer}/balance_transactions")
    assert post.idempotency_key == f"quote-{q.id}-carry"
    assert await billing_sync_once(stripe_lic, "test-worker") == 0
    with pytest.raises(QuoteNotOpen):  # confirmed once: never carried twice
        stripe_lic.quotes.confirm_without_payment(admin, q.id)
    assert len(fake_stripe.balance_transactions) == 1


async def test_carrying_forward_is_retried_while_stripe_is_down_and_made_once(stripe_lic, fake_stripe, admin, clock):
    customer = fake_stripe.add_customer()
    _link_customer(stripe_lic, customer)
    _near_period_end(stripe_lic, clock, timedelta(hours=12))
    pool = eco_pool(stripe_lic)
    q = stripe_lic.quotes.quote_upgrade(admin, pool.id, first_users(stripe_lic, admin, pool.id, 1), "pro")
    stripe_lic.quotes.confirm_without_payment(admin, q.id)
    fake_stripe.fail_next(status=500, count=1)
    assert await billing_sync_once(stripe_lic, "test-worker") == 1  # failed: retried later
    assert fake_stripe.balance_transactions == []
    clock.advance(minutes=5)
    assert await billing_sync_once(stripe_lic, "test-worker") == 1  # (Stripe replays the 500 to the first key)
    assert [t["amount"] for t in fake_stripe.balance_transactions] == [q.carried]
    posts = fake_stripe.requests_to("POST", f"/v1/customers/{customer}/balance_transactions")
    keys = [r.idempotency_key for r in posts]
    assert keys == [f"quote-{q.id}-carry", f"quote-{q.id}-carry-1"]
    clock.advance(minutes=5)
    assert await billing_sync_once(stripe_lic, "test-worker") == 0  # done: carried once


async def test_carrying_forward_refused_by_stripe_stops_with_why(stripe_lic, fake_stripe, admin, clock):
    _link_customer(stripe_lic, "cus_deleted_at_stripe")  # Stripe answers "No such customer"
    _near_period_end(stripe_lic, clock, timedelta(hours=12))
    pool = eco_pool(stripe_lic)
    q = stripe_lic.quotes.quote_upgrade(admin, pool.id, first_users(stripe_lic, admin, pool.id, 1), "pro")
    stripe_lic.quotes.confirm_without_payment(admin, q.id)
    assert await billing_sync_once(stripe_lic, "test-worker") == 1
    with stripe_lic.db.read() as s:
        message = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "carry_forward")).one()
        assert message.status == "failed" and "refused" in message.last_error  # not retried 25 times
    clock.advance(hours=1)
    assert await billing_sync_once(stripe_lic, "test-worker") == 0


async def test_under_the_minimum_without_a_billing_profile_the_link_says_why(stripe_lic, fake_stripe, admin, clock):
    from core.errors import PaymentUnavailable

    _link_customer(stripe_lic, None)
    _near_period_end(stripe_lic, clock, timedelta(hours=12))
    pool = eco_pool(stripe_lic)
    q = stripe_lic.quotes.quote_upgrade(admin, pool.id, first_users(stripe_lic, admin, pool.id, 1), "pro")
    assert 0 < q.due_now < 50 and q.carried == 0
    with pytest.raises(PaymentUnavailable, match="below the smallest card payment"):
        stripe_lic.links.payment_link(admin, q.id)
    assert fake_stripe.requests == []  # refused before asking Stripe
