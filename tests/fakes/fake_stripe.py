"""A fake of the part of Stripe's v1 API that ``payments.stripe.gateway`` uses, over real HTTP.

It runs an aiohttp server on 127.0.0.1 (random free port) in a background thread with its own
event loop, so the synchronous stripe SDK can call it from ordinary tests::

    fake = FakeStripe().start()
    client = stripe.StripeClient("sk_test_...", base_addresses={"api": fake.base_url})
    ...
    fake.stop()

What it checks, like Stripe (see https://docs.stripe.com/api):

* requests are ``application/x-www-form-urlencoded`` with Stripe's nested keys
  (``line_items[0][price_data][unit_amount]=...``), authenticated by ``Authorization: Bearer
  sk_test_...`` (401 otherwise);
* every parameter is declared in the endpoint's schema below: unknown parameters, missing
  required ones, wrong types (integer, boolean, enum, currency, URL, metadata limits) and
  empty strings for parameters that cannot be unset are refused with a Stripe-shaped 400
  ``{"error": {"type": "invalid_request_error", "message": ..., "param": ...}}``. A schema
  lists only the parameters that the gateway may send (all of them exist in Stripe's API; the
  tests check the names against the SDK's generated parameter types), so a parameter that is
  real but not modelled here is refused too: model it before sending it;
* endpoint rules: Checkout ``mode`` and ``line_items``, exactly one of ``price``/``price_data``,
  ``product``/``product_data``, no recurring price in ``payment`` mode, one currency, the
  currency's minimum charge, ``expires_at`` between 30 minutes and 24 hours from now; for
  subscription updates, existing item ids, existing products, one currency, at least one item,
  no duplicate price, one billing interval unless the subscription is in flexible billing mode;
* ``Idempotency-Key`` on POST: same key + same endpoint + same parameters -> the saved response
  (header ``Idempotent-Replayed: true``); same key + other parameters -> 400
  ``idempotency_error``. As at Stripe (docs.stripe.com/idempotency, "Advanced error handling"):
  the status code and body of the first request are saved once the endpoint's execution began,
  *whatever they are*: a 500 (``fail_next(500)``) or an endpoint's 4xx (e.g. "No such customer")
  is replayed to every later request with that key, for 24 hours. Not saved: validation errors,
  authentication errors, the 429 of the rate limiter (it runs before the idempotency layer), and
  a request that never reached Stripe. The saved result is looked up before the parameters are
  validated;
* ``POST /v1/checkout/sessions/{id}/expire``: only an ``open`` session can be expired (Stripe:
  "A Checkout Session can be expired when it is in one of these statuses: open"; an error
  otherwise, e.g. for a ``complete`` one: the customer paid). An expired session can no longer be
  completed (``complete_session`` refuses it). ``GET /v1/checkout/sessions/{id}`` retrieves one.

State for tests: ``requests`` (every request received, decoded), ``sessions``,
``line_items`` (per session), ``subscriptions`` (items as a plain list), ``products``,
``prices``, ``prorations`` (proration side effects that ``proration_behavior=none`` avoids),
``customers`` (``add_customer``: balance and its currency) and ``balance_transactions``.
Faults: ``fail_next(status, count)`` (a 5xx is an error inside the endpoint: saved for the
request's idempotency key like any result; a 429 is refused before it: not saved),
``delay_next(seconds, count)`` (the request is still executed after the delay, as when a client
times out but Stripe completes the request).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes.server import ThreadedServer

TEST_API_KEY = "sk_test_fake_license_desk_0123456789"
MIN_SESSION_SECONDS = 30 * 60
MAX_SESSION_SECONDS = 24 * 60 * 60
# Minimum charge amounts (minor units) for a few currencies (docs.stripe.com/currencies).
MINIMUM_CHARGE = {"usd": 50, "eur": 50, "chf": 50, "cad": 50, "aud": 50, "gbp": 30, "jpy": 50}
EMBEDDED_LIST_LIMIT = 10  # Stripe embeds the first 10 entries of a list (e.g. subscription items)


# ---------------------------------------------------------------------------- errors


class StripeApiError(Exception):
    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        error_type: str = "invalid_request_error",
    ):
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"type": error_type, "message": message}
        if param is not None:
            self.body["param"] = param
        if code is not None:
            self.body["code"] = code


def _no_such(kind: str, ident: str, param: str) -> StripeApiError:
    return StripeApiError(f"No such {kind}: '{ident}'", status=404, param=param, code="resource_missing")


# ---------------------------------------------------------------------------- parameter schemas


@dataclass(frozen=True)
class Param:
    kind: str  # object | array | metadata | string | integer | boolean | enum | currency | url
    required: bool = False
    fields: dict[str, Param] = field(default_factory=dict)
    item: Param | None = None
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None


def obj(required: bool = False, **fields: Param) -> Param:
    return Param("object", required=required, fields=fields)


def array(item: Param, required: bool = False) -> Param:
    return Param("array", required=required, item=item)


def string(required: bool = False, max_length: int | None = None) -> Param:
    return Param("string", required=required, max_length=max_length)


def integer(required: bool = False, minimum: int | None = None, maximum: int | None = None) -> Param:
    return Param("integer", required=required, minimum=minimum, maximum=maximum)


def enum(*choices: str, required: bool = False) -> Param:
    return Param("enum", required=required, choices=choices)


def boolean() -> Param:
    return Param("boolean")


def currency(required: bool = False) -> Param:
    return Param("currency", required=required)


def url(required: bool = False) -> Param:
    return Param("url", required=required)


def metadata() -> Param:
    return Param("metadata")


EXPAND = array(string())

CHECKOUT_SESSION_CREATE = obj(
    mode=enum("payment", "setup", "subscription", required=True),
    line_items=array(
        obj(
            price=string(),
            price_data=obj(
                currency=currency(required=True),
                product=string(),
                product_data=obj(
                    name=string(required=True),
                    description=string(),
                    metadata=metadata(),
                ),
                recurring=obj(
                    interval=enum("day", "week", "month", "year", required=True),
                    interval_count=integer(minimum=1),
                ),
                tax_behavior=enum("exclusive", "inclusive", "unspecified"),
                unit_amount=integer(minimum=0),
            ),
            quantity=integer(minimum=1),
            metadata=metadata(),
        )
    ),
    metadata=metadata(),
    client_reference_id=string(max_length=200),
    customer=string(),
    customer_email=string(),
    currency=currency(),
    expires_at=integer(),
    success_url=url(),
    cancel_url=url(),
    locale=string(),
    payment_intent_data=obj(description=string(), metadata=metadata()),
    expand=EXPAND,
)

SUBSCRIPTION_RETRIEVE = obj(expand=EXPAND)

CHECKOUT_SESSION_RETRIEVE = obj(expand=EXPAND)

CHECKOUT_SESSION_EXPIRE = obj(expand=EXPAND)  # Stripe: "No parameters" (expand is always accepted)

SUBSCRIPTION_UPDATE = obj(
    items=array(
        obj(
            id=string(),
            deleted=boolean(),
            clear_usage=boolean(),
            quantity=integer(minimum=0),
            price=string(),
            price_data=obj(
                currency=currency(required=True),
                product=string(required=True),
                recurring=obj(
                    required=True,
                    interval=enum("day", "week", "month", "year", required=True),
                    interval_count=integer(minimum=1),
                ),
                tax_behavior=enum("exclusive", "inclusive", "unspecified"),
                unit_amount=integer(minimum=0),
            ),
            metadata=metadata(),
        )
    ),
    proration_behavior=enum("always_invoice", "create_prorations", "none"),
    metadata=metadata(),
    expand=EXPAND,
)

SUBSCRIPTION_ITEM_LIST = obj(
    subscription=string(required=True),
    limit=integer(minimum=1, maximum=100),
    starting_after=string(),
    ending_before=string(),
    expand=EXPAND,
)

PRODUCT_RETRIEVE = obj(expand=EXPAND)

PRODUCT_CREATE = obj(
    id=string(),
    name=string(required=True),
    description=string(),
    active=boolean(),
    metadata=metadata(),
    expand=EXPAND,
)

CUSTOMER_BALANCE_TRANSACTION_CREATE = obj(
    amount=integer(required=True),
    currency=currency(required=True),
    description=string(max_length=350),
    metadata=metadata(),
    expand=EXPAND,
)

_INTEGER = re.compile(r"^-?\d+$")
_CURRENCY = re.compile(r"^[a-z]{3}$")
_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def _child(name: str, key: str) -> str:
    return f"{name}[{key}]" if name else key


def validate(spec: Param, raw: Any, name: str = "") -> Any:
    """Check ``raw`` (decoded form values: nested dicts of strings) against ``spec``; return
    the typed value (ints, bools, lists) or raise a Stripe-shaped 400."""
    if spec.kind == "object":
        if not isinstance(raw, dict):
            raise StripeApiError(f"Invalid object: {name} must be a hash.", param=name)
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in spec.fields:
                raise StripeApiError(f"Received unknown parameter: {_child(name, key)}", param=_child(name, key))
            out[key] = validate(spec.fields[key], value, _child(name, key))
        for key, sub in spec.fields.items():
            if sub.required and key not in raw:
                raise StripeApiError(f"Missing required param: {_child(name, key)}.", param=_child(name, key))
        return out
    if spec.kind == "array":
        if not isinstance(raw, dict) or sorted(raw, key=lambda k: (len(k), k)) != [str(i) for i in range(len(raw))]:
            raise StripeApiError(f"Invalid array: {name}", param=name)
        assert spec.item is not None
        return [validate(spec.item, raw[str(i)], f"{name}[{i}]") for i in range(len(raw))]
    if spec.kind == "metadata":
        if raw == "":
            return {}  # posting an empty value unsets all keys
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise StripeApiError(f"Invalid metadata: {name} must be a hash of strings.", param=name)
        if len(raw) > 50:
            raise StripeApiError("Metadata can have at most 50 keys.", param=name)
        for key, value in raw.items():
            if len(key) > 40:
                raise StripeApiError("Metadata keys can be at most 40 characters long.", param=_child(name, key))
            if len(value) > 500:
                raise StripeApiError("Metadata values can be at most 500 characters long.", param=_child(name, key))
        return dict(raw)
    if not isinstance(raw, str):
        raise StripeApiError(f"Invalid {name}: expected a scalar value, not a hash.", param=name)
    if raw == "":
        raise StripeApiError(
            f"You passed an empty string for '{name}'. We assume empty values are an attempt to unset a "
            f"parameter; however '{name}' cannot be unset. You should remove '{name}' from your request "
            "or supply a non-empty value.",
            param=name,
        )
    if spec.kind == "string":
        if spec.max_length is not None and len(raw) > spec.max_length:
            raise StripeApiError(f"Invalid {name}: must be at most {spec.max_length} characters", param=name)
        return raw
    if spec.kind == "integer":
        if not _INTEGER.match(raw):
            raise StripeApiError(f"Invalid integer: {raw}", param=name)
        value = int(raw)
        if spec.minimum is not None and value < spec.minimum:
            raise StripeApiError(f"Invalid {name}: must be greater than or equal to {spec.minimum}", param=name)
        if spec.maximum is not None and value > spec.maximum:
            raise StripeApiError(f"Invalid {name}: must be less than or equal to {spec.maximum}", param=name)
        return value
    if spec.kind == "boolean":
        if raw not in ("true", "false"):
            raise StripeApiError(f"Invalid boolean: {raw}", param=name)
        return raw == "true"
    if spec.kind == "enum":
        if raw not in spec.choices:
            raise StripeApiError(f"Invalid {name}: must be one of {', '.join(spec.choices)}", param=name)
        return raw
    if spec.kind == "currency":
        if not _CURRENCY.match(raw):
            raise StripeApiError(f"Invalid currency: {raw}. Use a lowercase three-letter ISO code.", param=name)
        return raw
    if spec.kind == "url":
        if not re.match(r"^https?://[^\s/]+", raw):
            raise StripeApiError("Not a valid URL", param=name)
        return raw
    raise AssertionError(f"unknown schema kind {spec.kind}")


def decode_form(text: str) -> dict[str, Any]:
    """``a[b][0][c]=v&x=y`` -> ``{"a": {"b": {"0": {"c": "v"}}}, "x": "y"}`` (values stay strings)."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        match = _KEY.match(key)
        if not match:
            raise StripeApiError(f"Invalid parameter name: {key}", param=key)
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = root
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if part == "":  # "expand[]=a": append
                if not last:
                    raise StripeApiError(f"Invalid parameter name: {key}", param=key)
                part = str(len(node))
            if last:
                if part in node:
                    raise StripeApiError(f"Conflicting values for parameter: {key}", param=key)
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise StripeApiError(f"Conflicting values for parameter: {key}", param=key)
                node = child
    return root


# ---------------------------------------------------------------------------- webhooks helpers


def sign_webhook(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header as Stripe computes it: ``t=<unix>,v1=<hex HMAC-SHA256 of
    "<t>.<raw body>" keyed with the endpoint's signing secret>``."""
    t = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={signature}"


def event_payload(
    event_type: str, session: dict[str, Any], event_id: str | None = None, created: int | None = None
) -> bytes:
    """A Stripe event (snapshot payload) whose ``data.object`` is ``session``."""
    event = {
        "id": event_id or f"evt_test_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()) if created is None else created,
        "data": {"object": session},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    return json.dumps(event).encode()


# ---------------------------------------------------------------------------- the server


@dataclass
class RecordedRequest:
    method: str
    path: str
    params: dict[str, Any]  # decoded, values still strings (as sent on the wire)
    idempotency_key: str | None
    authorization: str | None
    content_type: str | None
    stripe_version: str | None


@dataclass
class _Fault:
    status: int | None = None
    delay: float = 0.0


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class FakeStripe(ThreadedServer):
    thread_name = "fake-stripe"
    what = "fake Stripe"

    def __init__(self, api_key: str = TEST_API_KEY):
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self.sessions: dict[str, dict[str, Any]] = {}
        self.line_items: dict[str, list[dict[str, Any]]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.products: dict[str, dict[str, Any]] = {}
        self.prices: dict[str, dict[str, Any]] = {}
        self.prorations: list[dict[str, Any]] = []
        self.customers: dict[str, dict[str, Any]] = {}
        self.balance_transactions: list[dict[str, Any]] = []
        self.embedded_list_limit = EMBEDDED_LIST_LIMIT
        self._idempotency: dict[str, tuple[tuple[str, str, Any], int, dict[str, Any]]] = {}
        self._faults: deque[_Fault] = deque()
        self._lock = threading.Lock()
        self._routes = [
            ("POST", re.compile(r"^/v1/checkout/sessions$"), CHECKOUT_SESSION_CREATE, self._create_session),
            (
                "GET",
                re.compile(r"^/v1/checkout/sessions/(?P<id>[^/]+)$"),
                CHECKOUT_SESSION_RETRIEVE,
                self._get_session,
            ),
            (
                "POST",
                re.compile(r"^/v1/checkout/sessions/(?P<id>[^/]+)/expire$"),
                CHECKOUT_SESSION_EXPIRE,
                self._expire_session,
            ),
            ("GET", re.compile(r"^/v1/subscriptions/(?P<id>[^/]+)$"), SUBSCRIPTION_RETRIEVE, self._get_subscription),
            (
                "POST",
                re.compile(r"^/v1/subscriptions/(?P<id>[^/]+)$"),
                SUBSCRIPTION_UPDATE,
                self._update_subscription,
            ),
            ("GET", re.compile(r"^/v1/subscription_items$"), SUBSCRIPTION_ITEM_LIST, self._list_items),
            ("GET", re.compile(r"^/v1/products/(?P<id>[^/]+)$"), PRODUCT_RETRIEVE, self._get_product),
            ("POST", re.compile(r"^/v1/products$"), PRODUCT_CREATE, self._create_product),
            (
                "POST",
                re.compile(r"^/v1/customers/(?P<id>[^/]+)/balance_transactions$"),
                CUSTOMER_BALANCE_TRANSACTION_CREATE,
                self._create_balance_transaction,
            ),
        ]
        # Endpoint rules that are parameter validation at Stripe (checked before the endpoint runs:
        # their errors are not saved for the idempotency key): run first, in a dry run.
        self._validators = {self._create_session: lambda p: self._create_session(p, dry=True)}
        self.base_url = ""

    # -- lifecycle (start, stop: ThreadedServer)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    # -- test controls

    def fail_next(self, status: int = 500, count: int = 1) -> None:
        """The next ``count`` requests get ``status`` (500, 503: ``api_error``; 429: rate limit)."""
        with self._lock:
            self._faults.extend(_Fault(status=status) for _ in range(count))

    def delay_next(self, seconds: float, count: int = 1) -> None:
        """The next ``count`` requests are answered after ``seconds`` (then executed normally)."""
        with self._lock:
            self._faults.extend(_Fault(delay=seconds) for _ in range(count))

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def add_product(self, product_id: str | None = None, name: str = "Product", **extra: Any) -> dict[str, Any]:
        with self._lock:
            return self._add_product(product_id or _new_id("prod"), name, extra.get("metadata") or {})

    def add_price(
        self,
        *,
        product: str,
        unit_amount: int,
        currency: str = "usd",
        interval: str = "month",
        interval_count: int = 1,
        metadata: dict[str, str] | None = None,
        lookup_key: str | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            if product not in self.products:
                self._add_product(product, product, {})
            return self._add_price(product, unit_amount, currency, interval, interval_count, metadata, lookup_key)

    def add_customer(self, customer_id: str | None = None) -> str:
        """A customer (what the account's billing profile names), with an empty balance."""
        customer_id = customer_id or _new_id("cus")
        with self._lock:
            self.customers[customer_id] = {"id": customer_id, "balance": 0, "currency": None}
        return customer_id

    def seed_subscription(
        self,
        items: list[dict[str, Any]],
        *,
        currency: str = "usd",
        customer: str = "cus_test_seed",
        billing_mode: str = "classic",
        status: str = "active",
    ) -> str:
        """Create an active subscription. Each item: ``{"price": <price dict from add_price>,
        "quantity": n, "metadata": {...}}``."""
        sub_id = _new_id("sub")
        with self._lock:
            self.subscriptions[sub_id] = {
                "id": sub_id,
                "object": "subscription",
                "billing_mode": {"type": billing_mode},
                "created": int(time.time()),
                "currency": currency,
                "customer": customer,
                "livemode": False,
                "metadata": {},
                "status": status,
                "items": [
                    self._new_item(sub_id, spec["price"], spec.get("quantity", 1), spec.get("metadata") or {})
                    for spec in items
                ],
            }
        return sub_id

    def complete_session(self, session_id: str, payment_status: str = "paid",
                         email: str | None = "payer@contoso.example") -> dict[str, Any]:
        """Mark a session completed (as when the customer paid) and return its new state. Only an
        open session can be paid: an expired one shows the customer that it expired. Stripe fills
        ``customer_details`` from the Checkout form (``email``: what the payer typed, or the
        customer's) once the session is completed."""
        with self._lock:
            session = self.sessions[session_id]
            if session["status"] != "open":
                raise AssertionError(f"a {session['status']} Checkout Session cannot be paid")
            session["status"] = "complete"
            session["payment_status"] = payment_status
            session["customer_details"] = {"email": email or session.get("customer_email"), "name": None,
                                           "phone": None, "address": None, "tax_exempt": "none", "tax_ids": []}
            return copy.deepcopy(session)

    def expire_session(self, session_id: str) -> dict[str, Any]:
        """Expire an open session as Stripe does at its ``expires_at`` and return its new state."""
        with self._lock:
            return self._expire_session({}, session_id)

    # -- HTTP

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.text() if request.method == "POST" else ""
        request_id = _new_id("req")
        idem_key = request.headers.get("Idempotency-Key")
        try:
            raw = decode_form(body if request.method == "POST" else request.query_string)
        except StripeApiError as exc:
            raw = {}
            parse_error: StripeApiError | None = exc
        else:
            parse_error = None
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    params=raw,
                    idempotency_key=idem_key,
                    authorization=request.headers.get("Authorization"),
                    content_type=request.headers.get("Content-Type"),
                    stripe_version=request.headers.get("Stripe-Version"),
                )
            )
            fault = self._faults.popleft() if self._faults else None

        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        headers = {"Request-Id": request_id}
        server_error = None
        if fault is not None and fault.status is not None:
            if fault.status == 429:  # the rate limiter runs before the idempotency layer: nothing saved
                error = StripeApiError(
                    "Request rate limit exceeded. Please retry later.", status=429, code="rate_limit"
                )
                return web.json_response({"error": error.body}, status=error.status, headers=headers)
            server_error = StripeApiError("An unknown error occurred.", status=fault.status, error_type="api_error")

        status, payload, replayed = self._process(request, raw, parse_error, idem_key, server_error)
        if idem_key:
            headers["Idempotency-Key"] = idem_key
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return web.json_response(payload, status=status, headers=headers)

    def _process(
        self,
        request: web.Request,
        raw: dict[str, Any],
        parse_error: StripeApiError | None,
        idem_key: str | None,
        server_error: StripeApiError | None = None,
    ) -> tuple[int, dict[str, Any], bool]:
        try:
            self._authenticate(request.headers.get("Authorization"))
            if request.method == "POST":
                content_type = request.headers.get("Content-Type", "")
                if not content_type.startswith("application/x-www-form-urlencoded"):
                    raise StripeApiError("Requests must be sent as application/x-www-form-urlencoded.")
            if parse_error is not None:
                raise parse_error
            route = self._route(request.method, request.path)
            if route is None:
                raise StripeApiError(f"Unrecognized request URL ({request.method}: {request.path}).", status=404)
            spec, handler, match = route
            with self._lock:
                fingerprint = (request.method, request.path, raw)
                if request.method == "POST" and idem_key:
                    saved = self._idempotency.get(idem_key)
                    if saved is not None:
                        if saved[0] != fingerprint:
                            raise StripeApiError(
                                "Keys for idempotent requests can only be used with the same parameters they "
                                f"were first used with. Try using a key other than '{idem_key}' if you meant "
                                "to execute a different request.",
                                error_type="idempotency_error",
                            )
                        return saved[1], copy.deepcopy(saved[2]), True
                params = validate(spec, raw)  # a validation error is not saved
                if handler in self._validators:
                    self._validators[handler](params)
                # From here the endpoint runs: its result is saved for the key, errors included.
                try:
                    if server_error is not None:
                        raise server_error
                    status, result = 200, handler(params, **match.groupdict())
                except StripeApiError as exc:
                    status, result = exc.status, {"error": exc.body}
                if request.method == "POST" and idem_key:
                    self._idempotency[idem_key] = (copy.deepcopy(fingerprint), status, copy.deepcopy(result))
                return status, result, False
        except StripeApiError as exc:
            return exc.status, {"error": exc.body}, False

    def _route(self, method: str, path: str) -> tuple[Param, Any, re.Match[str]] | None:
        for route_method, pattern, spec, handler in self._routes:
            match = pattern.match(path)
            if route_method == method and match:
                return spec, handler, match
        return None

    def _authenticate(self, authorization: str | None) -> None:
        if not authorization or not authorization.startswith("Bearer "):
            raise StripeApiError(
                "You did not provide an API key. You need to provide your API key in the Authorization "
                "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
                status=401,
            )
        key = authorization.removeprefix("Bearer ")
        if not key.startswith("sk_test_") or not hmac.compare_digest(key, self.api_key):
            raise StripeApiError(f"Invalid API Key provided: {key[:8]}****{key[-4:]}", status=401)

    # -- state helpers (called with the lock held)

    def _add_product(self, product_id: str, name: str, meta: dict[str, str]) -> dict[str, Any]:
        product = {
            "id": product_id,
            "object": "product",
            "active": True,
            "created": int(time.time()),
            "description": None,
            "livemode": False,
            "metadata": dict(meta),
            "name": name,
        }
        self.products[product_id] = product
        return copy.deepcopy(product)

    def _add_price(
        self,
        product: str,
        unit_amount: int,
        currency_code: str,
        interval: str,
        interval_count: int,
        meta: dict[str, str] | None,
        lookup_key: str | None,
    ) -> dict[str, Any]:
        price = {
            "id": _new_id("price"),
            "object": "price",
            "active": True,
            "billing_scheme": "per_unit",
            "created": int(time.time()),
            "currency": currency_code,
            "livemode": False,
            "lookup_key": lookup_key,
            "metadata": dict(meta or {}),
            "product": product,
            "recurring": {
                "interval": interval,
                "interval_count": interval_count,
                "usage_type": "licensed",
            },
            "type": "recurring",
            "unit_amount": unit_amount,
            "unit_amount_decimal": str(unit_amount),
        }
        self.prices[price["id"]] = price
        return copy.deepcopy(price)

    def _new_item(self, sub_id: str, price: dict[str, Any], quantity: int, meta: dict[str, str]) -> dict[str, Any]:
        return {
            "id": _new_id("si"),
            "object": "subscription_item",
            "created": int(time.time()),
            "metadata": dict(meta),
            "price": copy.deepcopy(price),
            "quantity": quantity,
            "subscription": sub_id,
        }

    def _render_subscription(self, sub: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(sub)
        items = out.pop("items")
        out["items"] = {
            "object": "list",
            "data": items[: self.embedded_list_limit],
            "has_more": len(items) > self.embedded_list_limit,
            "total_count": len(items),
            "url": f"/v1/subscription_items?subscription={sub['id']}",
        }
        return out

    def _price_from_data(self, data: dict[str, Any], param: str) -> dict[str, Any]:
        if "product" in data and data["product"] not in self.products:
            raise _no_such("product", data["product"], f"{param}[product]")
        if "unit_amount" not in data:
            raise StripeApiError(f"Missing required param: {param}[unit_amount].", param=f"{param}[unit_amount]")
        recurring = data.get("recurring")
        price = self._add_price(
            data.get("product") or "",
            data["unit_amount"],
            data["currency"],
            recurring["interval"] if recurring else "",
            recurring.get("interval_count", 1) if recurring else 1,
            None,
            None,
        )
        if not recurring:
            price.update(recurring=None, type="one_time")
            self.prices[price["id"]].update(recurring=None, type="one_time")
        return price

    # -- endpoints (called with the lock held, params already validated)

    def _create_session(self, p: dict[str, Any], dry: bool = False) -> dict[str, Any]:
        mode = p["mode"]
        line_items = p.get("line_items") or []
        if mode in ("payment", "subscription") and not line_items:
            raise StripeApiError(f"line_items is required in `{mode}` mode.", param="line_items")
        priced: list[dict[str, Any]] = []
        for i, item in enumerate(line_items):
            name = f"line_items[{i}]"
            if ("price" in item) == ("price_data" in item):
                raise StripeApiError(
                    f"You must specify exactly one of {name}[price] or {name}[price_data].", param=name
                )
            if "quantity" not in item:
                raise StripeApiError(f"Missing required param: {name}[quantity].", param=f"{name}[quantity]")
            if "price" in item:
                price = self.prices.get(item["price"])
                if price is None:
                    raise _no_such("price", item["price"], f"{name}[price]")
                unit_amount, item_currency, recurring = price["unit_amount"], price["currency"], price["recurring"]
            else:
                data = item["price_data"]
                if ("product" in data) == ("product_data" in data):
                    raise StripeApiError(
                        f"You must specify exactly one of {name}[price_data][product] or "
                        f"{name}[price_data][product_data].",
                        param=f"{name}[price_data]",
                    )
                if "product" in data and data["product"] not in self.products:
                    raise _no_such("product", data["product"], f"{name}[price_data][product]")
                if "unit_amount" not in data:
                    raise StripeApiError(
                        f"Missing required param: {name}[price_data][unit_amount].",
                        param=f"{name}[price_data][unit_amount]",
                    )
                unit_amount, item_currency, recurring = data["unit_amount"], data["currency"], data.get("recurring")
            if mode == "payment" and recurring:
                raise StripeApiError(
                    "You specified `payment` mode but passed a recurring price. Either switch to `subscription` "
                    "mode or use only one-time prices.",
                    param=name,
                )
            priced.append({"unit_amount": unit_amount, "currency": item_currency, "quantity": item["quantity"]})
        currencies = {item["currency"] for item in priced}
        if len(currencies) > 1:
            raise StripeApiError("All line items must use the same currency.", param="line_items")
        session_currency = currencies.pop() if currencies else p.get("currency")
        amount = sum(item["unit_amount"] * item["quantity"] for item in priced)
        if mode == "payment" and session_currency is not None:
            minimum = MINIMUM_CHARGE.get(session_currency, 50)
            if amount < minimum:
                raise StripeApiError(
                    f"The Checkout Session's total amount due must add up to at least {minimum} "
                    f"(minor units) {session_currency}.",
                    code="amount_too_small",
                )
        now = int(time.time())
        expires_at = p.get("expires_at", now + MAX_SESSION_SECONDS)
        if expires_at < now + MIN_SESSION_SECONDS:
            raise StripeApiError(
                "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.",
                param="expires_at",
            )
        if expires_at > now + MAX_SESSION_SECONDS:
            raise StripeApiError(
                "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.",
                param="expires_at",
            )
        if "customer" in p and not p["customer"].startswith("cus_"):
            raise _no_such("customer", p["customer"], "customer")
        if dry:
            return {}
        session_id = f"cs_test_{secrets.token_hex(24)}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": amount,
            "amount_total": amount,
            "cancel_url": p.get("cancel_url"),
            "client_reference_id": p.get("client_reference_id"),
            "created": now,
            "currency": session_currency,
            "customer": p.get("customer"),
            "customer_email": p.get("customer_email"),
            "customer_details": None,  # Stripe: filled from the Checkout form once the session is completed
            "expires_at": expires_at,
            "livemode": False,
            "metadata": p.get("metadata", {}),
            "mode": mode,
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": p.get("success_url"),
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
        }
        self.sessions[session_id] = session
        self.line_items[session_id] = copy.deepcopy(line_items)
        return copy.deepcopy(session)

    def _get_session(self, p: dict[str, Any], id: str) -> dict[str, Any]:
        session = self.sessions.get(id)
        if session is None:
            raise _no_such("checkout.session", id, "session")
        return copy.deepcopy(session)

    def _expire_session(self, p: dict[str, Any], id: str) -> dict[str, Any]:
        """Stripe: "A Checkout Session can be expired when it is in one of these statuses: open";
        "Returns an error if the Checkout Session has already expired or isn't in an expireable
        state" (``complete``: the customer paid, or an asynchronous payment is under way)."""
        session = self.sessions.get(id)
        if session is None:
            raise _no_such("checkout.session", id, "session")
        if session["status"] != "open":
            raise StripeApiError(
                f"This Checkout Session is {session['status']}: only an open Checkout Session can be expired."
            )
        session["status"] = "expired"
        session["url"] = None
        return copy.deepcopy(session)

    def _get_subscription(self, p: dict[str, Any], id: str) -> dict[str, Any]:
        sub = self.subscriptions.get(id)
        if sub is None:
            raise _no_such("subscription", id, "id")
        return self._render_subscription(sub)

    def _update_subscription(self, p: dict[str, Any], id: str) -> dict[str, Any]:
        sub = self.subscriptions.get(id)
        if sub is None:
            raise _no_such("subscription", id, "id")
        if sub["status"] in ("canceled", "incomplete_expired"):
            raise StripeApiError(f"A canceled subscription can only update its metadata. ({id})")
        items = copy.deepcopy(sub["items"])
        by_id = {item["id"]: item for item in items}
        deleted: set[str] = set()
        for i, change in enumerate(p.get("items", [])):
            name = f"items[{i}]"
            if "price" in change and "price_data" in change:
                raise StripeApiError(f"You may only specify one of {name}[price] or {name}[price_data].", param=name)
            if "id" in change:
                item = by_id.get(change["id"])
                if item is None or change["id"] in deleted:
                    raise _no_such("subscription item", change["id"], f"{name}[id]")
                if change.get("deleted"):
                    if {"quantity", "price", "price_data"} & change.keys():
                        raise StripeApiError(f"You cannot update and delete {name} in the same request.", param=name)
                    deleted.add(change["id"])
                    continue
            else:
                if change.get("deleted"):
                    raise StripeApiError(f"Missing required param: {name}[id].", param=f"{name}[id]")
                if "price" not in change and "price_data" not in change:
                    raise StripeApiError(f"You must specify either {name}[price] or {name}[price_data].", param=name)
                item = self._new_item(id, {}, 1, {})
                items.append(item)
                by_id[item["id"]] = item
            if "price" in change:
                price = self.prices.get(change["price"])
                if price is None:
                    raise _no_such("price", change["price"], f"{name}[price]")
                item["price"] = copy.deepcopy(price)
            elif "price_data" in change:
                item["price"] = self._price_from_data(change["price_data"], f"{name}[price_data]")
            if "quantity" in change:
                item["quantity"] = change["quantity"]
            if "metadata" in change:
                item["metadata"] = {**item["metadata"], **change["metadata"]} if change["metadata"] else {}
        remaining = [item for item in items if item["id"] not in deleted]
        if not remaining:
            raise StripeApiError("A subscription must have at least one active item.", param="items")
        if any(item["price"]["currency"] != sub["currency"] for item in remaining):
            raise StripeApiError(
                f"All prices on a subscription must use the subscription's currency ({sub['currency']}).",
                param="items",
            )
        price_ids = [item["price"]["id"] for item in remaining]
        if len(set(price_ids)) != len(price_ids):
            raise StripeApiError("Cannot add multiple subscription items with the same price.", param="items")
        intervals = {
            (item["price"]["recurring"]["interval"], item["price"]["recurring"]["interval_count"]) for item in remaining
        }
        if len(intervals) > 1 and sub["billing_mode"]["type"] != "flexible":
            raise StripeApiError(
                "All prices on a subscription must have the same `recurring.interval` and "
                "`recurring.interval_count` unless the subscription uses flexible billing mode.",
                param="items",
            )
        changed = remaining != sub["items"]
        behavior = p.get("proration_behavior", "create_prorations")
        if changed and behavior != "none":
            self.prorations.append({"subscription": id, "proration_behavior": behavior})
        sub["items"] = remaining
        if "metadata" in p:
            sub["metadata"] = {**sub["metadata"], **p["metadata"]} if p["metadata"] else {}
        return self._render_subscription(sub)

    def _list_items(self, p: dict[str, Any]) -> dict[str, Any]:
        sub = self.subscriptions.get(p["subscription"])
        if sub is None:
            raise _no_such("subscription", p["subscription"], "subscription")
        items = sub["items"]
        start = 0
        if "starting_after" in p:
            ids = [item["id"] for item in items]
            if p["starting_after"] not in ids:
                raise _no_such("subscription item", p["starting_after"], "starting_after")
            start = ids.index(p["starting_after"]) + 1
        limit = p.get("limit", 10)
        page = items[start : start + limit]
        return {
            "object": "list",
            "data": copy.deepcopy(page),
            "has_more": start + limit < len(items),
            "url": "/v1/subscription_items",
        }

    def _create_balance_transaction(self, p: dict[str, Any], id: str) -> dict[str, Any]:
        """A customer balance adjustment: a positive amount is added to the next invoice (a
        debit), a negative one is a credit; the balance has one currency, set by its first use."""
        customer = self.customers.get(id)
        if customer is None:
            raise _no_such("customer", id, "customer")
        if p["amount"] == 0:
            raise StripeApiError("Amount must be non-zero.", param="amount")
        if customer["currency"] not in (None, p["currency"]):
            raise StripeApiError(
                f"The customer's balance is in {customer['currency']}; it cannot take {p['currency']}.",
                param="currency",
            )
        customer["currency"] = p["currency"]
        customer["balance"] += p["amount"]
        txn = {
            "id": _new_id("cbtxn"),
            "object": "customer_balance_transaction",
            "amount": p["amount"],
            "currency": p["currency"],
            "customer": id,
            "description": p.get("description"),
            "ending_balance": customer["balance"],
            "metadata": p.get("metadata", {}),
            "type": "adjustment",
            "created": int(time.time()),
            "livemode": False,
        }
        self.balance_transactions.append(txn)
        return copy.deepcopy(txn)

    def _get_product(self, p: dict[str, Any], id: str) -> dict[str, Any]:
        product = self.products.get(id)
        if product is None:
            raise _no_such("product", id, "id")
        return copy.deepcopy(product)

    def _create_product(self, p: dict[str, Any]) -> dict[str, Any]:
        product_id = p.get("id") or _new_id("prod")
        if product_id in self.products:
            raise StripeApiError("Product already exists.", param="id", code="resource_already_exists")
        product = self._add_product(product_id, p["name"], p.get("metadata", {}))
        if "description" in p:
            self.products[product_id]["description"] = p["description"]
            product["description"] = p["description"]
        return product
