"""StripeGateway through real HTTP, with the real stripe SDK, against tests/fakes/fake_stripe.py."""

from __future__ import annotations

import json
import logging
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest
import stripe
from stripe._request_options import RequestOptions
from stripe.params import _customer_balance_transaction_create_params as balance_create
from stripe.params import _product_create_params as product_create
from stripe.params import _subscription_item_list_params as item_list
from stripe.params import _subscription_update_params as sub_update
from stripe.params.checkout import _session_create_params as session_create

from core.payments import (
    CarryForward,
    PaymentLine,
    PaymentProviderError,
    PaymentRequest,
    SubscriptionItemChange,
    SubscriptionSync,
)
from payments.stripe.gateway import StripeGateway, WebhookSignatureError
from tests.fakes import fake_stripe
from tests.fakes.fake_stripe import TEST_API_KEY, FakeStripe, event_payload, sign_webhook

WEBHOOK_SECRET = "whsec_test_license_desk_secret"


@pytest.fixture
def fake(fake_stripe):
    return fake_stripe


def make_gateway(fake: FakeStripe, **kwargs) -> StripeGateway:
    options = {"timeout_seconds": 2, "max_network_retries": 0, **kwargs}
    return StripeGateway(TEST_API_KEY, WEBHOOK_SECRET, api_base=fake.base_url, **options)


@pytest.fixture
def gateway(fake):
    return make_gateway(fake)


def quote(quote_id: str = "Q-1001", *, expires_in: timedelta = timedelta(hours=2), **overrides) -> PaymentRequest:
    fields = {
        "quote_id": quote_id,
        "account_id": 42,
        "account_name": "Contoso",
        "currency": "USD",
        "amount": 4350,
        "description": "License Desk: upgrade to Pro",
        "lines": (
            PaymentLine("Pro monthly x3, prorated", 5000),
            PaymentLine("Credit for unused Eco", -650),
        ),
        "expires_at": datetime.now(UTC) + expires_in,
        "customer_ref": None,
        "metadata": {"requested_by": "user-7"},
    }
    fields.update(overrides)
    return PaymentRequest(**fields)


def session_posts(fake: FakeStripe):
    return fake.requests_to("POST", "/v1/checkout/sessions")


# ---------------------------------------------------------------------------- create_link


def test_link_is_a_checkout_session_for_exactly_the_quoted_amount(fake, gateway):
    request = quote(customer_ref="cus_contoso")

    link = gateway.create_link(request)

    assert link.provider == "stripe"
    session = fake.sessions[link.external_id]
    assert link.url == session["url"]
    assert session["mode"] == "payment"
    assert session["amount_total"] == 4350
    assert session["currency"] == "usd"
    assert session["metadata"] == {"quote_id": "Q-1001", "account_id": "42", "requested_by": "user-7"}
    assert session["client_reference_id"] == "Q-1001"
    assert session["customer"] == "cus_contoso"
    assert session["expires_at"] == int(request.expires_at.timestamp())
    [sent] = session_posts(fake)
    assert sent.idempotency_key == "quote-Q-1001-link"
    assert sent.authorization == f"Bearer {TEST_API_KEY}"
    assert sent.content_type.startswith("application/x-www-form-urlencoded")
    [item] = fake.line_items[link.external_id]
    assert item["quantity"] == 1
    assert item["price_data"]["unit_amount"] == 4350
    assert item["price_data"]["currency"] == "usd"
    assert item["price_data"]["product_data"] == {
        "name": "License Desk: upgrade to Pro",
        "description": "Pro monthly x3, prorated: 50.00 USD; Credit for unused Eco: -6.50 USD",
    }


def test_core_metadata_cannot_be_overridden_by_request_metadata(fake, gateway):
    link = gateway.create_link(quote(metadata={"quote_id": "spoofed", "note": "x"}))

    assert fake.sessions[link.external_id]["metadata"]["quote_id"] == "Q-1001"
    assert fake.sessions[link.external_id]["metadata"]["note"] == "x"


def test_zero_decimal_currency_breakdown_uses_integer_amounts(fake, gateway):
    request = quote(currency="JPY", amount=1200, lines=(PaymentLine("Pro", 1500), PaymentLine("Credit", -300)))

    link = gateway.create_link(request)

    [item] = fake.line_items[link.external_id]
    assert item["price_data"]["product_data"]["description"] == "Pro: 1500 JPY; Credit: -300 JPY"
    assert fake.sessions[link.external_id]["currency"] == "jpy"


def test_long_breakdown_is_cut_short(fake, gateway):
    lines = tuple(PaymentLine(f"Seat change number {i} for a long plan name", 100) for i in range(40))
    link = gateway.create_link(quote(amount=4000, lines=lines))

    description = fake.line_items[link.external_id][0]["price_data"]["product_data"]["description"]
    assert len(description) <= 500
    assert description.startswith("Seat change number 0 for a long plan name: 1.00 USD; ")
    assert description.endswith(" more")


def test_two_calls_for_one_quote_return_the_same_session(fake, gateway):
    request = quote()

    first = gateway.create_link(request)
    second = gateway.create_link(request)

    assert second == first
    assert len(fake.sessions) == 1
    assert [r.idempotency_key for r in session_posts(fake)] == ["quote-Q-1001-link"] * 2


def test_different_quotes_get_different_sessions(fake, gateway):
    first = gateway.create_link(quote("Q-1"))
    second = gateway.create_link(quote("Q-2"))

    assert first.external_id != second.external_id
    assert len(fake.sessions) == 2


def test_quote_expiring_within_30_minutes_gets_the_shortest_link_stripe_allows(fake, gateway):
    started = datetime.now(UTC).replace(microsecond=0)
    request = quote(expires_in=timedelta(minutes=10), attempt_at=started)

    link = gateway.create_link(request)

    # Stripe refuses less than 30 min after creation: the link lives 30 min + 2 min of margin from
    # the attempt's start (not from the quote's expiry: it outlives the quote by no more than that).
    # Computed from the recorded start, not from "now", so that a retry sends identical parameters.
    assert fake.sessions[link.external_id]["expires_at"] == int(started.timestamp()) + 32 * 60


def test_quote_outliving_24_hours_gets_stripes_default_24_hour_link(fake, gateway):
    link = gateway.create_link(quote(expires_in=timedelta(days=3)))

    [sent] = session_posts(fake)
    assert "expires_at" not in sent.params
    assert abs(fake.sessions[link.external_id]["expires_at"] - (time.time() + 24 * 3600)) < 60


def test_retry_after_crossing_the_30_minute_boundary_returns_the_first_session(fake, gateway):
    started = datetime.now(UTC)
    request = quote(expires_in=timedelta(minutes=40), attempt_at=started, idempotency_key="quote-Q-1001-link-3")
    first = gateway.create_link(request)  # within range: expires_at = quote expiry
    # A retry of the same attempt 15 minutes later (its answer was lost) sends the same parameters,
    # computed from the attempt's recorded start: Stripe replays the session it created.
    later = make_gateway(fake, clock=lambda: datetime.now(UTC) + timedelta(minutes=15))

    second = later.create_link(request)

    assert second == first
    assert len(fake.sessions) == 1
    exact = str(int(request.expires_at.timestamp()))
    assert [(r.idempotency_key, r.params.get("expires_at")) for r in session_posts(fake)] == [
        ("quote-Q-1001-link-3", exact)] * 2


def test_retry_of_an_attempt_that_never_reached_stripe_gets_a_valid_expiry(fake, gateway):
    # The attempt began 20 minutes ago and its request never reached Stripe (nothing saved for the
    # key): its expiry would now be less than 30 minutes ahead. Stripe refuses that before running
    # the endpoint (a validation error is not saved), so the same key is sent with the shortest
    # expiry from now.
    request = quote(expires_in=timedelta(minutes=5), attempt_at=datetime.now(UTC) - timedelta(minutes=20))

    link = gateway.create_link(request)

    assert fake.sessions[link.external_id]["expires_at"] >= time.time() + 30 * 60
    assert [r.idempotency_key for r in session_posts(fake)] == ["quote-Q-1001-link"] * 2


def test_expired_quote_gets_no_link(fake, gateway):
    with pytest.raises(ValueError):
        gateway.create_link(quote(expires_in=timedelta(seconds=-1)))

    assert fake.requests == []


def test_provider_500s_raise_payment_provider_error(fake, caplog):
    fake.fail_next(status=500, count=3)
    gateway = make_gateway(fake, max_network_retries=2)

    with caplog.at_level(logging.DEBUG), pytest.raises(PaymentProviderError) as raised:
        gateway.create_link(quote())

    assert len(session_posts(fake)) == 3  # the SDK retried twice with the same key
    assert {r.idempotency_key for r in session_posts(fake)} == {"quote-Q-1001-link"}
    assert fake.sessions == {}
    assert "try again" in str(raised.value)
    assert TEST_API_KEY not in str(raised.value)
    assert TEST_API_KEY not in caplog.text


def test_a_500_is_replayed_to_its_key_and_the_next_attempt_needs_a_new_key(fake):
    # Stripe saves the first answer to a key, 500s included: the SDK's retry with the same key gets
    # the same 500. The error says the answer was definite (answered): a new attempt, a new key.
    fake.fail_next(status=500, count=1)
    gateway = make_gateway(fake, max_network_retries=1)

    with pytest.raises(PaymentProviderError) as raised:
        gateway.create_link(quote(idempotency_key="quote-Q-1001-link"))

    assert raised.value.answered and not raised.value.permanent
    assert [r.idempotency_key for r in session_posts(fake)] == ["quote-Q-1001-link"] * 2
    assert fake.sessions == {}
    with pytest.raises(PaymentProviderError):  # a later retry with that key: the same 500, for 24 h
        gateway.create_link(quote(idempotency_key="quote-Q-1001-link"))
    assert fake.sessions == {}

    link = gateway.create_link(quote(idempotency_key="quote-Q-1001-link-1"))
    assert list(fake.sessions) == [link.external_id]


def test_answers_stripe_does_not_keep_are_retried_with_the_same_key(fake, gateway):
    fake.fail_next(status=429)  # the rate limiter answers before the idempotency layer
    with pytest.raises(PaymentProviderError) as raised:
        gateway.create_link(quote())
    assert not raised.value.answered

    link = gateway.create_link(quote())  # the same key now runs the endpoint
    assert list(fake.sessions) == [link.external_id]


def test_refusals_are_permanent_and_say_which(fake):
    with pytest.raises(PaymentProviderError) as raised:
        make_gateway(fake).create_link(quote(customer_ref="not-a-customer"))
    assert (raised.value.answered, raised.value.permanent, raised.value.reason) == (True, True, "request")

    wrong = StripeGateway("sk_test_wrong_key_0000000000000000", WEBHOOK_SECRET, api_base=fake.base_url,
                          max_network_retries=0)
    with pytest.raises(PaymentProviderError) as raised:
        wrong.create_link(quote("Q-2"))
    assert (raised.value.permanent, raised.value.reason) == (True, "credentials")
    assert "try again" not in str(raised.value).lower()


def test_timeout_raises_and_a_later_call_returns_the_session_stripe_created(fake):
    gateway = make_gateway(fake, timeout_seconds=0.3)
    fake.delay_next(1.0)  # the request reaches "Stripe", which answers too late
    request = quote()

    with pytest.raises(PaymentProviderError, match="could not be reached") as raised:
        gateway.create_link(request)
    assert not raised.value.answered  # no answer: the retry must reuse the key

    deadline = time.monotonic() + 5
    while not fake.sessions and time.monotonic() < deadline:
        time.sleep(0.05)
    [created] = fake.sessions
    assert gateway.create_link(request).external_id == created
    assert len(fake.sessions) == 1


def test_rate_limit_raises_payment_provider_error(fake, gateway):
    fake.fail_next(status=429)

    with pytest.raises(PaymentProviderError, match="too many requests"):
        gateway.create_link(quote())


def test_unreachable_stripe_raises_payment_provider_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gateway = StripeGateway(TEST_API_KEY, WEBHOOK_SECRET, api_base=f"http://127.0.0.1:{port}", max_network_retries=0)

    with pytest.raises(PaymentProviderError, match="could not be reached"):
        gateway.create_link(quote())


def test_wrong_api_key_raises_without_revealing_it(fake, caplog):
    wrong_key = "sk_test_wrong_key_0000000000000000"
    gateway = StripeGateway(wrong_key, WEBHOOK_SECRET, api_base=fake.base_url, max_network_retries=0)

    with caplog.at_level(logging.DEBUG), pytest.raises(PaymentProviderError, match="credentials") as raised:
        gateway.create_link(quote())

    assert wrong_key not in str(raised.value)
    assert wrong_key not in caplog.text
    assert wrong_key not in repr(gateway)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_amount_below_stripes_minimum_charge_is_refused(fake, gateway):
    with pytest.raises(PaymentProviderError, match="refused"):
        gateway.create_link(quote(amount=30, lines=(PaymentLine("Prorated", 30),)))

    assert fake.sessions == {}


def test_minimum_charge_follows_stripes_table(gateway):
    assert [gateway.minimum_charge(c) for c in ("USD", "eur", "GBP", "JPY", "XYZ")] == [50, 50, 30, 50, 50]


def carry(customer: str, amount: int = 12, key: str = "quote-Q-7-carry") -> CarryForward:
    return CarryForward(customer_ref=customer, amount=amount, currency="USD", description="1 × Eco → Pro",
                        quote_id="Q-7", idempotency_key=key)


def test_carry_forward_adds_the_amount_to_the_customers_next_invoice_once(fake, gateway):
    customer = fake.add_customer()
    gateway.carry_forward(carry(customer))
    gateway.carry_forward(carry(customer))  # a redelivery: Stripe replays the first answer
    [txn] = fake.balance_transactions
    assert (txn["amount"], txn["currency"], txn["metadata"]) == (12, "usd", {"quote_id": "Q-7"})
    assert fake.customers[customer]["balance"] == 12
    with pytest.raises(PaymentProviderError, match="refused"):
        gateway.carry_forward(carry("cus_unknown", key="quote-Q-8-carry"))
    with pytest.raises(ValueError):
        gateway.carry_forward(carry(customer, amount=0, key="quote-Q-9-carry"))
    assert len(fake.balance_transactions) == 1


def test_constructor_requires_the_secrets():
    with pytest.raises(ValueError):
        StripeGateway("", WEBHOOK_SECRET)
    with pytest.raises(ValueError):
        StripeGateway(TEST_API_KEY, "")


# ---------------------------------------------------------------------------- webhooks


@pytest.fixture
def open_session(fake, gateway):
    return fake.sessions[gateway.create_link(quote()).external_id]


def signed(payload: bytes, timestamp: int | None = None, secret: str = WEBHOOK_SECRET) -> str:
    return sign_webhook(payload, secret, timestamp)


def test_completed_paid_session_is_a_paid_event(fake, gateway, open_session):
    session = fake.complete_session(open_session["id"], payment_status="paid")
    payload = event_payload("checkout.session.completed", session, event_id="evt_paid_1")

    event = gateway.parse_webhook(payload, signed(payload))

    assert event.provider == "stripe"
    assert event.event_id == "evt_paid_1"
    assert event.kind == "paid"
    assert event.quote_id == "Q-1001"
    assert event.external_id == open_session["id"]
    assert event.amount == 4350
    assert event.currency == "USD"


def test_completed_session_awaiting_an_async_payment_is_ignored(fake, gateway, open_session):
    session = fake.complete_session(open_session["id"], payment_status="unpaid")
    payload = event_payload("checkout.session.completed", session)

    event = gateway.parse_webhook(payload, signed(payload))

    assert event.kind == "ignored"
    assert event.quote_id == "Q-1001"


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [
        ("checkout.session.async_payment_succeeded", "paid"),
        ("checkout.session.async_payment_failed", "failed"),
        ("checkout.session.expired", "expired"),
        ("checkout.session.created", "ignored"),
    ],
)
def test_checkout_events_are_translated(fake, gateway, open_session, event_type, kind):
    payload = event_payload(event_type, open_session, event_id="evt_1")

    event = gateway.parse_webhook(payload, signed(payload))

    assert (event.kind, event.quote_id, event.external_id, event.event_id) == (
        kind,
        "Q-1001",
        open_session["id"],
        "evt_1",
    )


def test_other_events_are_ignored(gateway):
    payload = event_payload("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent", "amount": 5})

    event = gateway.parse_webhook(payload, signed(payload))

    assert (event.kind, event.quote_id, event.external_id, event.amount) == ("ignored", None, None, None)


def test_quote_id_falls_back_to_client_reference_id(fake, gateway, open_session):
    session = {**fake.complete_session(open_session["id"]), "metadata": {}}
    payload = event_payload("checkout.session.completed", session)

    assert gateway.parse_webhook(payload, signed(payload)).quote_id == "Q-1001"


def test_signature_with_another_secret_is_refused(gateway, open_session):
    payload = event_payload("checkout.session.completed", {**open_session, "payment_status": "paid"})

    with pytest.raises(WebhookSignatureError):
        gateway.parse_webhook(payload, signed(payload, secret="whsec_someone_else"))


def test_tampered_payload_is_refused(gateway, open_session):
    payload = event_payload("checkout.session.completed", {**open_session, "payment_status": "paid"})
    header = signed(payload)
    tampered = payload.replace(b'"amount_total": 4350', b'"amount_total": 1')
    assert tampered != payload

    with pytest.raises(WebhookSignatureError):
        gateway.parse_webhook(tampered, header)


def test_stale_timestamp_is_refused_but_a_recent_one_accepted(gateway, open_session):
    payload = event_payload("checkout.session.completed", {**open_session, "payment_status": "paid"})
    now = int(time.time())

    with pytest.raises(WebhookSignatureError):
        gateway.parse_webhook(payload, signed(payload, timestamp=now - 301))
    assert gateway.parse_webhook(payload, signed(payload, timestamp=now - 200)).kind == "paid"


@pytest.mark.parametrize("header", ["", "garbage", "t=123", "v1=abc"])
def test_missing_or_unparsable_signature_header_is_refused(gateway, open_session, header):
    payload = event_payload("checkout.session.completed", open_session)

    with pytest.raises(WebhookSignatureError):
        gateway.parse_webhook(payload, header)


@pytest.mark.parametrize(
    "payload",
    [b"{not json", b"\xff\xfe", json.dumps([1, 2]).encode(), json.dumps({"object": "event"}).encode()],
)
def test_malformed_payload_is_refused_even_when_signed(gateway, payload):
    with pytest.raises(WebhookSignatureError):
        gateway.parse_webhook(payload, signed(payload))


# A correctly signed event with odd fields. Stripe retries every delivery not answered 2xx for up
# to three days (Stripe docs, "Webhooks: retry behaviour"), so an event that can never be
# processed is answered 200 and logged, never 5xx; only a body that is not an event at all (not
# JSON, no id/type/data.object) is 400.
ODD_SESSIONS = [
    ("metadata not an object", {"metadata": "quote_id=Q-1001"}),
    ("metadata a list", {"metadata": ["Q-1001"]}),
    ("quote id not text", {"metadata": {"quote_id": 1001}}),
    ("quote id too long", {"metadata": {"quote_id": "Q" * 5000}, "client_reference_id": None}),
    ("quote id with a NUL", {"metadata": {"quote_id": "Q-10\x0001"}, "client_reference_id": None}),
    ("amount not an integer", {"amount_total": "4350"}),
    ("amount missing", {"amount_total": None}),
    ("currency not text", {"currency": 840}),
    ("session id not text", {"id": {"x": 1}}),
    ("payment status an object", {"payment_status": {"paid": True}}),
]


@pytest.mark.parametrize(("case", "changes"), ODD_SESSIONS, ids=[c for c, _ in ODD_SESSIONS])
def test_a_signed_event_with_odd_fields_is_read_not_raised(fake, gateway, open_session, case, changes):
    session = {**fake.complete_session(open_session["id"], payment_status="paid"), **changes}
    payload = event_payload("checkout.session.completed", session, event_id="evt_odd_1")

    event = gateway.parse_webhook(payload, signed(payload))

    assert event.event_id == "evt_odd_1"
    assert event.quote_id in ("Q-1001", None), case  # an odd quote id names no quote; the other field is read
    if case.startswith(("amount", "currency")):
        assert event.kind == "ignored", case  # a paid session whose amount cannot be checked is not settled
    for value in (event.quote_id, event.external_id, event.currency):
        assert value is None or (isinstance(value, str) and "\x00" not in value and len(value) <= 255), case
    assert event.amount is None or isinstance(event.amount, int)


def test_an_event_id_not_of_stripes_shape_is_stored_as_its_digest(gateway, open_session):
    ids = ["evt_" + "x" * 300, "evt_\x00bad", "evt_😀"]
    seen = []
    for raw in ids:
        payload = event_payload("checkout.session.expired", open_session, event_id=raw)
        first = gateway.parse_webhook(payload, signed(payload)).event_id
        again = gateway.parse_webhook(payload, signed(payload)).event_id  # a redelivery: the same id
        assert first == again and first.startswith("evt_sha256_") and len(first) <= 100, raw
        seen.append(first)
    assert len(set(seen)) == len(ids)


# ---------------------------------------------------------------------------- sync_subscription


def item_state(fake: FakeStripe, sub_id: str) -> list[tuple]:
    """(plan code, interval, unit amount, currency, quantity) of each item, as Stripe bills them."""
    out = []
    for item in fake.subscriptions[sub_id]["items"]:
        price = item["price"]
        code = (
            item["metadata"].get("plan_code")
            or price["metadata"].get("plan_code")
            or price["product"].removeprefix("license-desk-")
        )
        out.append((code, price["recurring"]["interval"], price["unit_amount"], price["currency"], item["quantity"]))
    return sorted(out)


def change(plan_code: str, quantity: int, unit_amount: int, interval: str = "month") -> SubscriptionItemChange:
    return SubscriptionItemChange(plan_code, interval, quantity, unit_amount, "USD")


def updates(fake: FakeStripe, sub_id: str):
    return fake.requests_to("POST", f"/v1/subscriptions/{sub_id}")


def test_sync_changes_the_quantity_of_a_matching_item_without_proration(fake, gateway):
    price = fake.add_price(product="prod_adv", unit_amount=1500, metadata={"plan_code": "advanced"})
    sub_id = fake.seed_subscription([{"price": price, "quantity": 3}])
    item_id = fake.subscriptions[sub_id]["items"][0]["id"]

    gateway.sync_subscription(SubscriptionSync(sub_id, (change("advanced", 5, 1500),), "sync-1"))

    [item] = fake.subscriptions[sub_id]["items"]
    assert (item["id"], item["price"]["id"], item["quantity"]) == (item_id, price["id"], 5)
    [sent] = updates(fake, sub_id)
    assert sent.idempotency_key == "sync-1"
    assert sent.params["proration_behavior"] == "none"
    assert fake.prorations == []


def test_sync_swaps_plans_and_creates_the_plan_product_once(fake, gateway):
    eco = fake.add_price(product="prod_eco", unit_amount=800, metadata={"plan_code": "eco"})
    sub_id = fake.seed_subscription([{"price": eco, "quantity": 2}])

    gateway.sync_subscription(SubscriptionSync(sub_id, (change("advanced", 2, 1500),), "sync-swap"))

    assert item_state(fake, sub_id) == [("advanced", "month", 1500, "usd", 2)]
    [item] = fake.subscriptions[sub_id]["items"]
    assert item["price"]["product"] == "license-desk-advanced"
    assert fake.products["license-desk-advanced"]["metadata"] == {"plan_code": "advanced"}
    assert fake.prorations == []
    [sent] = updates(fake, sub_id)
    assert sent.params["proration_behavior"] == "none"
    assert {"id": eco_item_id(sent), "deleted": "true"} in sent.params["items"].values()


def eco_item_id(sent) -> str:
    return next(v["id"] for v in sent.params["items"].values() if v.get("deleted") == "true")


def test_sync_to_the_full_desired_state_adds_updates_and_deletes(fake, gateway):
    pro = fake.add_price(product="license-desk-pro", unit_amount=2900)  # recognised by product id
    api = fake.add_price(product="prod_api", unit_amount=4900, metadata={"plan_code": "api_advanced"})
    foreign = fake.add_price(product="prod_other", unit_amount=100)
    sub_id = fake.seed_subscription(
        [{"price": pro, "quantity": 4}, {"price": api, "quantity": 1}, {"price": foreign, "quantity": 1}]
    )
    desired = (change("pro", 6, 2900), change("api_pro", 1, 9900))

    gateway.sync_subscription(SubscriptionSync(sub_id, desired, "sync-full"))

    assert item_state(fake, sub_id) == [
        ("api_pro", "month", 9900, "usd", 1),
        ("pro", "month", 2900, "usd", 6),
    ]
    assert fake.prorations == []


def test_sync_replaces_an_item_whose_price_changed(fake, gateway):
    old = fake.add_price(product="license-desk-pro", unit_amount=2500)
    sub_id = fake.seed_subscription([{"price": old, "quantity": 3}])

    gateway.sync_subscription(SubscriptionSync(sub_id, (change("pro", 3, 2900),), "sync-price"))

    assert item_state(fake, sub_id) == [("pro", "month", 2900, "usd", 3)]
    assert fake.subscriptions[sub_id]["items"][0]["price"]["id"] != old["id"]


def test_sync_already_in_sync_sends_no_update(fake, gateway):
    price = fake.add_price(product="license-desk-eco", unit_amount=8000, interval="year")
    sub_id = fake.seed_subscription([{"price": price, "quantity": 2}])

    gateway.sync_subscription(SubscriptionSync(sub_id, (change("eco", 2, 8000, "year"),), "sync-noop"))

    assert updates(fake, sub_id) == []


def test_sync_retried_with_the_same_key_is_harmless(fake, gateway):
    price = fake.add_price(product="license-desk-eco", unit_amount=800)
    sub_id = fake.seed_subscription([{"price": price, "quantity": 1}])
    sync = SubscriptionSync(sub_id, (change("eco", 1, 800), change("advanced", 2, 1500)), "sync-retry")

    gateway.sync_subscription(sync)
    gateway.sync_subscription(sync)

    assert item_state(fake, sub_id) == [("advanced", "month", 1500, "usd", 2), ("eco", "month", 800, "usd", 1)]
    assert len(updates(fake, sub_id)) == 1


def test_sync_reuses_an_existing_plan_product(fake, gateway):
    fake.add_product("license-desk-advanced", name="Advanced")
    eco = fake.add_price(product="license-desk-eco", unit_amount=800)
    sub_id = fake.seed_subscription([{"price": eco, "quantity": 1}])

    gateway.sync_subscription(SubscriptionSync(sub_id, (change("advanced", 1, 1500),), "sync-prod"))

    assert fake.requests_to("POST", "/v1/products") == []
    assert item_state(fake, sub_id) == [("advanced", "month", 1500, "usd", 1)]


def test_sync_reads_every_item_of_a_long_subscription(fake, gateway):
    fake.embedded_list_limit = 2  # the subscription embeds only the first items
    prices = [fake.add_price(product=f"prod_{i}", unit_amount=100 + i) for i in range(5)]
    sub_id = fake.seed_subscription([{"price": p, "quantity": 1} for p in prices])

    gateway.sync_subscription(SubscriptionSync(sub_id, (change("pro", 1, 2900),), "sync-long"))

    assert item_state(fake, sub_id) == [("pro", "month", 2900, "usd", 1)]
    assert fake.requests_to("GET", "/v1/subscription_items")


def test_sync_of_an_unknown_subscription_raises_provider_error(gateway):
    with pytest.raises(PaymentProviderError, match="refused"):
        gateway.sync_subscription(SubscriptionSync("sub_missing", (change("pro", 1, 2900),), "sync-x"))


def test_sync_when_stripe_is_down_raises_provider_error_and_changes_nothing(fake, gateway):
    price = fake.add_price(product="license-desk-pro", unit_amount=2900)
    sub_id = fake.seed_subscription([{"price": price, "quantity": 1}])
    fake.fail_next(status=503)

    with pytest.raises(PaymentProviderError, match="temporarily unavailable"):
        gateway.sync_subscription(SubscriptionSync(sub_id, (change("pro", 9, 2900),), "sync-down"))

    assert item_state(fake, sub_id) == [("pro", "month", 2900, "usd", 1)]


def test_sync_mixing_intervals_on_a_classic_subscription_is_refused_by_stripe(fake, gateway):
    price = fake.add_price(product="license-desk-pro", unit_amount=2900)
    sub_id = fake.seed_subscription([{"price": price, "quantity": 1}])
    desired = (change("pro", 1, 2900), change("api_pro", 1, 99000, "year"))

    with pytest.raises(PaymentProviderError):
        gateway.sync_subscription(SubscriptionSync(sub_id, desired, "sync-mixed"))


def test_sync_refuses_an_empty_or_ambiguous_desired_state(gateway):
    with pytest.raises(ValueError):
        gateway.sync_subscription(SubscriptionSync("sub_1", (), "k"))
    with pytest.raises(ValueError):
        gateway.sync_subscription(SubscriptionSync("sub_1", (change("pro", 1, 2900), change("pro", 2, 2900)), "k"))


# ---------------------------------------------------------------------------- the fake itself


@pytest.mark.parametrize(
    ("schema", "typed_dict"),
    [
        (fake_stripe.CHECKOUT_SESSION_CREATE, session_create.SessionCreateParams),
        (fake_stripe.CHECKOUT_SESSION_CREATE.fields["line_items"].item, session_create.SessionCreateParamsLineItem),
        (
            fake_stripe.CHECKOUT_SESSION_CREATE.fields["line_items"].item.fields["price_data"],
            session_create.SessionCreateParamsLineItemPriceData,
        ),
        (
            fake_stripe.CHECKOUT_SESSION_CREATE.fields["line_items"].item.fields["price_data"].fields["product_data"],
            session_create.SessionCreateParamsLineItemPriceDataProductData,
        ),
        (
            fake_stripe.CHECKOUT_SESSION_CREATE.fields["payment_intent_data"],
            session_create.SessionCreateParamsPaymentIntentData,
        ),
        (fake_stripe.SUBSCRIPTION_UPDATE, sub_update.SubscriptionUpdateParams),
        (fake_stripe.SUBSCRIPTION_UPDATE.fields["items"].item, sub_update.SubscriptionUpdateParamsItem),
        (
            fake_stripe.SUBSCRIPTION_UPDATE.fields["items"].item.fields["price_data"],
            sub_update.SubscriptionUpdateParamsItemPriceData,
        ),
        (
            fake_stripe.SUBSCRIPTION_UPDATE.fields["items"].item.fields["price_data"].fields["recurring"],
            sub_update.SubscriptionUpdateParamsItemPriceDataRecurring,
        ),
        (fake_stripe.SUBSCRIPTION_ITEM_LIST, item_list.SubscriptionItemListParams),
        (fake_stripe.PRODUCT_CREATE, product_create.ProductCreateParams),
        (fake_stripe.CUSTOMER_BALANCE_TRANSACTION_CREATE, balance_create.CustomerBalanceTransactionCreateParams),
    ],
)
def test_fake_schemas_only_accept_parameters_that_stripe_defines(schema, typed_dict):
    # The SDK's parameter types are generated from Stripe's OpenAPI spec.
    stripe_params = set(typed_dict.__annotations__) - set(RequestOptions.__annotations__)
    assert set(schema.fields) <= stripe_params
    stripe_required = set(typed_dict.__required_keys__) - set(RequestOptions.__annotations__)
    assert stripe_required <= {name for name, spec in schema.fields.items() if spec.required}


@pytest.fixture
def raw_client(fake):
    return stripe.StripeClient(TEST_API_KEY, base_addresses={"api": fake.base_url}, max_network_retries=0)


VALID_SESSION = {
    "mode": "payment",
    "line_items": [
        {"price_data": {"currency": "usd", "unit_amount": 500, "product_data": {"name": "X"}}, "quantity": 1}
    ],
    "success_url": "https://example.com/ok",
}


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({**VALID_SESSION, "bogus": "1"}, "bogus"),
        ({**VALID_SESSION, "mode": "gift"}, "mode"),
        ({k: v for k, v in VALID_SESSION.items() if k != "mode"}, "mode"),
        ({**VALID_SESSION, "expires_at": int(time.time()) + 600}, "expires_at"),
        ({**VALID_SESSION, "expires_at": int(time.time()) + 25 * 3600}, "expires_at"),
        (
            {**VALID_SESSION, "line_items": [{**VALID_SESSION["line_items"][0], "quantity": "many"}]},
            "line_items[0][quantity]",
        ),
        (
            {
                **VALID_SESSION,
                "line_items": [
                    {"price_data": {"currency": "USD", "unit_amount": 5, "product_data": {"name": "X"}}, "quantity": 1}
                ],
            },
            "line_items[0][price_data][currency]",
        ),
        ({**VALID_SESSION, "metadata": {"k" * 41: "v"}}, "metadata[" + "k" * 41 + "]"),
        ({**VALID_SESSION, "client_reference_id": ""}, "client_reference_id"),
    ],
)
def test_fake_refuses_invalid_checkout_parameters_like_stripe(raw_client, fake, params, param):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        raw_client.v1.checkout.sessions.create(params)

    assert raised.value.http_status == 400
    assert raised.value.param == param
    assert raised.value.json_body["error"]["type"] == "invalid_request_error"
    assert fake.sessions == {}


def test_fake_refuses_a_reused_idempotency_key_with_other_parameters(raw_client, fake):
    raw_client.v1.checkout.sessions.create(VALID_SESSION, {"idempotency_key": "k1"})

    with pytest.raises(stripe.IdempotencyError):
        raw_client.v1.checkout.sessions.create(
            {**VALID_SESSION, "client_reference_id": "other"}, {"idempotency_key": "k1"}
        )

    assert len(fake.sessions) == 1


def test_fake_saves_an_endpoints_answer_for_its_key_errors_included(raw_client, fake):
    fake.fail_next(status=500)
    with pytest.raises(stripe.APIError):
        raw_client.v1.checkout.sessions.create(VALID_SESSION, {"idempotency_key": "k500"})
    with pytest.raises(stripe.APIError):  # replayed, although Stripe is fine again
        raw_client.v1.checkout.sessions.create(VALID_SESSION, {"idempotency_key": "k500"})
    assert fake.sessions == {}
    customer_txn = {"amount": 5, "currency": "usd"}
    with pytest.raises(stripe.InvalidRequestError):  # an endpoint's error is saved too
        raw_client.v1.customers.balance_transactions.create("cus_later", customer_txn, {"idempotency_key": "k404"})
    fake.add_customer("cus_later")
    with pytest.raises(stripe.InvalidRequestError):
        raw_client.v1.customers.balance_transactions.create("cus_later", customer_txn, {"idempotency_key": "k404"})
    with pytest.raises(stripe.InvalidRequestError):  # a validation error is not saved
        raw_client.v1.checkout.sessions.create({**VALID_SESSION, "bogus": "1"}, {"idempotency_key": "k400"})
    raw_client.v1.checkout.sessions.create(VALID_SESSION, {"idempotency_key": "k400"})
    assert len(fake.sessions) == 1


def test_fake_expires_only_open_sessions(raw_client, fake):
    session = raw_client.v1.checkout.sessions.create(VALID_SESSION)
    assert raw_client.v1.checkout.sessions.expire(session.id).status == "expired"
    with pytest.raises(stripe.InvalidRequestError):  # already expired
        raw_client.v1.checkout.sessions.expire(session.id)
    with pytest.raises(AssertionError):  # an expired session cannot be paid
        fake.complete_session(session.id)
    paid = raw_client.v1.checkout.sessions.create(VALID_SESSION)
    fake.complete_session(paid.id)
    with pytest.raises(stripe.InvalidRequestError):
        raw_client.v1.checkout.sessions.expire(paid.id)
    assert raw_client.v1.checkout.sessions.retrieve(paid.id).status == "complete"


def test_fake_refuses_a_wrong_api_key(fake):
    client = stripe.StripeClient("sk_test_nope", base_addresses={"api": fake.base_url}, max_network_retries=0)

    with pytest.raises(stripe.AuthenticationError):
        client.v1.checkout.sessions.create(VALID_SESSION)


def test_sign_webhook_matches_stripes_scheme():
    payload = b'{"id": "evt_1"}'

    assert stripe.WebhookSignature.verify_header(payload, sign_webhook(payload, "whsec_x"), "whsec_x", 300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(payload, sign_webhook(payload, "whsec_y"), "whsec_x", 300)


# ---------------------------------------------------------------------------- close_link


def test_close_link_expires_an_open_session_and_says_when_it_was_paid(fake, gateway):
    link = gateway.create_link(quote())
    assert gateway.close_link(link.external_id) is True
    assert fake.sessions[link.external_id]["status"] == "expired"
    assert gateway.close_link(link.external_id) is True  # a retry: already expired is closed

    paid = gateway.create_link(quote("Q-2"))
    fake.complete_session(paid.external_id)
    assert gateway.close_link(paid.external_id) is False  # complete: its webhook will follow
    with pytest.raises(PaymentProviderError):
        gateway.close_link("cs_test_unknown")
    other = gateway.create_link(quote("Q-3"))
    fake.fail_next(status=503)
    with pytest.raises(PaymentProviderError) as raised:
        gateway.close_link(other.external_id)
    assert not raised.value.permanent
    assert gateway.close_link(other.external_id) is True  # the next call has the SDK's new key


# ---------------------------------------------------------------------------- the webhook route, on the database


async def test_the_webhook_route_never_answers_5xx_to_a_signed_odd_event(fake, db, db_url, clock, aiohttp_client,
                                                                         caplog):
    """Through HTTP and the database (on PostgreSQL too, whose columns are bounded): signed odd
    events are answered 2xx (Stripe stops retrying) or 400 (not an event); a real payment under
    an over-long event id still settles, once."""
    from bootstrap import build_server
    from core.catalog import Catalog
    from core.config import Settings
    from core.demo import ADMIN_AAD, TENANT, load_demo
    from core.licensing import Licensing
    from core.views import Actor
    from tests.test_settlement import eco_pool, first_users

    clock.now = datetime.now(UTC).replace(microsecond=0)  # Stripe checks expiries against real time
    lic = Licensing(db, Catalog.load(), make_gateway(fake), clock=clock, quote_ttl=timedelta(minutes=30))
    load_demo(lic)
    admin = Actor(TENANT, ADMIN_AAD)
    pool = eco_pool(lic)
    q = lic.links.payment_link(admin, lic.quotes.quote_upgrade(admin, pool.id, first_users(lic, admin, pool.id, 2),
                                                               "pro").id)
    settings = Settings(DATABASE_URL=db_url, PAYMENTS="stripe", STRIPE_API_KEY=TEST_API_KEY,
                        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET)
    client = await aiohttp_client(build_server(settings, lic).app)
    session = fake.complete_session(next(iter(fake.sessions)), payment_status="paid")

    async def post(payload: bytes):
        resp = await client.post("/api/stripe/webhook", data=payload,
                                 headers={"Stripe-Signature": signed(payload), "Content-Type": "application/json"})
        return resp.status, await resp.json()

    odd_objects = [{**session, **changes, "metadata": {"quote_id": "0" * 32}, "client_reference_id": None}
                   for _, changes in ODD_SESSIONS]  # a quote that does not exist: audited, nothing applied
    odd_objects += [{**session, "amount_total": "1"}]  # the real quote, an amount that cannot be checked
    for i, obj in enumerate(odd_objects):
        status, body = await post(event_payload("checkout.session.completed", obj, event_id=f"evt_odd_{i}"))
        assert status == 200 and body["received"] is True, (i, status, body)
    for raw_id in ("evt_" + "9" * 5000, "evt_\x00x"):
        status, _ = await post(event_payload("checkout.session.expired",
                                             {**session, "metadata": "x", "client_reference_id": None},
                                             event_id=raw_id))
        assert status == 200, raw_id
    not_events = [b"[1]", json.dumps({"id": "evt_1", "type": "x", "data": {"object": "session"}}).encode(),
                  json.dumps({"id": ["evt_1"], "type": "x", "data": {"object": {}}}).encode(),
                  b'{"id": "evt_1", "n": ' + b"7" * 5000 + b"}"]
    for payload in not_events:
        status, _ = await post(payload)
        assert status == 400, payload[:40]
    assert lic.quotes.quote(admin, q.id).status == "open"  # nothing above paid it

    long_id = "evt_" + "7" * 300  # longer than what the database keeps: its digest is kept
    status, body = await post(event_payload("checkout.session.completed", session, event_id=long_id))
    assert (status, body["result"]) == (200, "settled")
    status, body = await post(event_payload("checkout.session.completed", session, event_id=long_id))
    assert (status, body["result"]) == (200, "duplicate")
    assert lic.quotes.quote(admin, q.id).status == "paid"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]  # no traceback
