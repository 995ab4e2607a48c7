"""The licensing core (core.licensing.Licensing) against a real database: every refusal is
typed, human, audited and writes nothing else; the happy paths leave the state they promise."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field, replace
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from core.demo import POOLS, TENANT
from core.errors import (
    CurrencyMismatch,
    DomainError,
    DomainNotApproved,
    HeldByQuote,
    InvalidInput,
    InvalidQuantity,
    Message,
    NoFreeSeat,
    NotAdmin,
    NotADowngrade,
    NotAnUpgrade,
    NotFound,
    QuoteNotOpen,
    RequestClosed,
    SeatAlreadyHeld,
    SeatsAssigned,
    StaleSelection,
    UnknownCaller,
    WrongFamily,
)
from core.models import (
    AccountTenant,
    AuditEvent,
    Base,
    DeliveryAddress,
    OutboxMessage,
    Pool,
    PostedCard,
    Seat,
    Subscription,
    User,
)
from core.views import Actor, ChatAddress
from payments.sandbox.checkout import SandboxCheckout
from tests.harness import add_account

FAB_TENANT = "f0000000-0000-0000-0000-00000000000f"
EUR_TENANT = "e0000000-0000-0000-0000-00000000000e"
QUANTITIES = [0, -1, 10001, 2.5, "2.5", "abc", True, None, ""]
POOL_KEYS = {("eco", "month"): "eco", ("advanced", "month"): "advanced", ("pro", "month"): "pro",
             ("pro", "year"): "pro_year", ("api_advanced", "month"): "api_advanced", ("api_pro", "year"): "api_pro"}
NOT_FOR_PEOPLE = [re.compile(p) for p in (
    r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|WHERE)\b", r"(?i)sqlalchemy|psycopg|sqlite|traceback|integrityerror",
    r"(?i)exception|object at 0x", r"(?<!^)\bNone\b", r"\bnull\b", r"[{}\[\]<>\n]",
)]


# ---------------------------------------------------------------------------- helpers


def snapshot(db) -> dict:
    """Every row of every table except the audit log, in a stable order."""
    out = {}
    with db.read() as s:
        for table in Base.metadata.sorted_tables:
            if table.name != "audit_events":
                out[table.name] = sorted((tuple(r) for r in s.execute(select(table))), key=repr)
    return out


def last_audit_id(db) -> int:
    with db.read() as s:
        return s.scalar(select(func.max(AuditEvent.id))) or 0


def audits_after(db, last: int) -> list[AuditEvent]:
    with db.read() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.id > last).order_by(AuditEvent.id)))


def outbox(db, kind: str | None = None) -> list[OutboxMessage]:
    with db.read() as s:
        q = select(OutboxMessage).order_by(OutboxMessage.id)
        return list(s.scalars(q.where(OutboxMessage.kind == kind) if kind else q))


def assert_human(message: str) -> None:
    assert isinstance(message, str) and 10 <= len(message) <= 400, message
    assert message[0].isalnum() and message.rstrip()[-1] in ".!?", message
    for bad in NOT_FOR_PEOPLE:
        assert not bad.search(message), f"{bad.pattern!r} in {message!r}"


def assert_refused(c, call, error: type[DomainError], action: str) -> DomainError:
    """``call`` raises exactly ``error`` with a human message, writes nothing but one
    refused audit event for ``action``."""
    before, last = snapshot(c.db), last_audit_id(c.db)
    with pytest.raises(DomainError) as info:
        call()
    e = info.value
    assert type(e) is error, f"{type(e).__name__}: {e.message}"
    assert e.code == error.code
    assert_human(e.message)
    assert str(e) == e.message
    assert snapshot(c.db) == before, "a refused operation changed the database"
    events = audits_after(c.db, last)
    assert [(ev.action, ev.outcome) for ev in events] == [(action, "refused")]
    stored = {"message": e.message.to_json()} if isinstance(e.message, Message) else {}  # (said in French later)
    assert events[0].message == e.message and events[0].detail == {"code": e.code, **stored}
    return e


def line(plan, interval="month", quantity=1) -> dict:
    return {"plan": plan, "interval": interval, "quantity": quantity}


def token_of(quote) -> str:
    return quote.payment_url.rsplit("/", 1)[1]


def pool_by_id(c, pool_id, actor=None):
    return c.lic.pools.pool(actor or c.admin, pool_id)


def all_pool_users(c, key) -> list:
    return c.lic.pools.pool_users(c.admin, c.pools[key], page_size=50).items


# ---------------------------------------------------------------------------- the world


@dataclass
class Ctx:
    lic: object
    db: object
    clock: object
    admin: Actor
    admin2: Actor
    member: Actor
    pools: dict
    users: dict
    fab: SimpleNamespace
    eur: SimpleNamespace
    outsider: int
    stash: dict = field(default_factory=dict)


@pytest.fixture
def c(demo, db, clock, admin, admin2, member) -> Ctx:
    lic = demo
    pools = {POOL_KEYS[(p.plan_code, p.interval)]: p.id for p in lic.pools.list_pools(admin)}
    with db.read() as s:
        users = dict(s.execute(select(User.name, User.id).join(AccountTenant, AccountTenant.account_id
                                                                 == User.account_id)
                               .where(AccountTenant.tenant_id == TENANT)).all())
    # two other accounts, each with one monthly Eco pool of 5 seats (anchored 9 days ago) whose
    # second person holds one
    fab = add_account(lic, name="Fabrikam", tenant=FAB_TENANT, currency="USD", domain="fabrikam.com", people=[
        ("fab-admin", "fay.admin@fabrikam.com", "Fay Admin", "admin"),
        ("fab-member", "finn.member@fabrikam.com", "Finn Member", "member"),
        ("fab-free", "fred.free@fabrikam.com", "Fred Free", "member"),
    ], seats=[1], age=timedelta(days=9))
    fab.admin, fab.member = fab.actors[0], fab.actors[1]
    eur = add_account(lic, name="Eurocorp", tenant=EUR_TENANT, currency="EUR", domain="eurocorp.eu", people=[
        ("eur-admin", "eva.admin@eurocorp.eu", "Eva Admin", "admin"),
        ("eur-member", "emil.member@eurocorp.eu", "Emil Member", "member"),
    ], seats=[1], age=timedelta(days=9))
    eur.admin = eur.actors[0]

    def add_outsider(s):
        account_id = s.scalar(select(AccountTenant.account_id).where(AccountTenant.tenant_id == TENANT))
        return lic.accounts.insert_user(s, account_id, "outsider-aad", "guest@gmail.com", "Gus Guest", "member").id

    outsider = db.write(add_outsider)
    return Ctx(lic, db, clock, admin, admin2, member, pools, users, fab, eur, outsider)


# ---------------------------------------------------------------------------- refusals

STRANGER = Actor("99999999-9999-9999-9999-999999999999", "nobody")
NOT_A_USER = Actor(TENANT, "not-a-user-of-contoso")


def _quote_by_admin2(c):
    c.stash["quote"] = c.lic.quotes.quote_upgrade(c.admin2, c.pools["eco"], [c.users["Grady Sink"]], "advanced")


def _expired_quote(c):
    c.stash["quote"] = c.lic.quotes.quote_purchase(c.admin, [line("eco")])
    c.clock.advance(minutes=31)


def _paid_quote(c):
    q = c.lic.links.payment_link(c.admin, c.lic.quotes.quote_purchase(c.admin, [line("eco")]).id)
    assert SandboxCheckout(c.lic).pay(token_of(q)).state == "paid"
    c.stash["quote"] = q


def _cancelled_quote(c):
    c.stash["quote"] = c.lic.quotes.cancel_quote(c.admin, c.lic.quotes.quote_purchase(c.admin, [line("eco")]).id)


def _fab_quote(c):
    c.stash["quote"] = c.lic.quotes.quote_purchase(c.fab.admin, [line("eco")])


def _pending_request(c):
    c.stash["request"] = c.lic.requests.request_upgrade(c.member, "advanced", "I need it")


def _approved_request(c):
    _pending_request(c)
    c.lic.requests.approve_request(c.admin, c.stash["request"].id)


def _fab_request(c):
    c.stash["request"] = c.lic.requests.request_upgrade(c.fab.member, "advanced")


def _no_free_eco(c):
    free = pool_by_id(c, c.pools["eco"]).assignable
    c.lic.seats.remove_seats(c.admin, c.pools["eco"], free)


def _q(c):
    return c.stash["quote"].id


def _r(c):
    return c.stash["request"].id


def _case(name, call, error, action, setup=None):
    return pytest.param(setup, call, error, action, id=name)


REFUSALS = [
    # --- who is asking
    _case("whoami-unknown-tenant", lambda c: c.lic.accounts.whoami(STRANGER), UnknownCaller, "whoami"),
    _case("whoami-unknown-user", lambda c: c.lic.accounts.whoami(NOT_A_USER), UnknownCaller, "whoami"),
    _case("pools-member", lambda c: c.lic.pools.list_pools(c.member), NotAdmin, "pools.list"),
    _case("pools-stranger", lambda c: c.lic.pools.list_pools(STRANGER), UnknownCaller, "pools.list"),
    _case("export-member", lambda c: c.lic.audit.export(c.member), NotAdmin, "audit.export"),
    # --- quote_upgrade
    _case("upgrade-member", lambda c: c.lic.quotes.quote_upgrade(c.member, c.pools["eco"], [c.users["Lee Gu"]], "pro"),
          NotAdmin, "quote.upgrade"),
    _case("upgrade-unknown-pool", lambda c: c.lic.quotes.quote_upgrade(c.admin, 987654, [c.users["Lee Gu"]], "pro"),
          NotFound, "quote.upgrade"),
    _case("upgrade-bad-pool-ref", lambda c: c.lic.quotes.quote_upgrade(c.admin, "x1", [c.users["Lee Gu"]], "pro"),
          InvalidInput, "quote.upgrade"),
    _case("upgrade-other-account-pool",
          lambda c: c.lic.quotes.quote_upgrade(c.admin, c.fab.pool_id, [c.fab.user_ids[1]], "pro"),
          NotFound, "quote.upgrade"),
    _case("upgrade-other-account-caller",
          lambda c: c.lic.quotes.quote_upgrade(c.fab.admin, c.pools["eco"], [c.users["Lee Gu"]], "pro"),
          NotFound, "quote.upgrade"),
    _case("upgrade-user-not-in-pool",
          lambda c: c.lic.quotes.quote_upgrade(c.admin, c.pools["eco"], [c.users["Christie Gupta"]], "pro"),
          StaleSelection, "quote.upgrade"),
    _case("upgrade-user-of-other-account",
          lambda c: c.lic.quotes.quote_upgrade(c.admin, c.pools["eco"], [c.fab.user_ids[1]], "pro"),
          StaleSelection, "quote.upgrade"),
    _case("upgrade-no-users", lambda c: c.lic.quotes.quote_upgrade(c.admin, c.pools["eco"], [], "pro"),
          InvalidInput, "quote.upgrade"),
    _case("upgrade-bad-user-ref", lambda c: c.lic.quotes.quote_upgrade(c.admin, c.pools["eco"], "abc", "pro"),
          InvalidInput, "quote.upgrade"),
    _case("upgrade-lower-tier",
          lambda c: c.lic.quotes.quote_upgrade(c.admin, c.pools["advanced"], [c.users["Megan Bowen"]], "eco"),
          NotAnUpgrade, "quote.upgrade"),
    _case("upgrade-equal-tier",
          lambda c: c.lic.quotes.quote_upgrade(c.admin, c.pools["advanced"], [c.users["Megan Bowen"]], "advanced"),
          NotAnUpgrade, "quote.upgrade"),
    _case("upgrade-other-family",
          lambda c: c.lic.quotes.quote_upgrade(c.admin, c.pools["eco"], [c.users["Lee Gu"]], "api_pro"),
          WrongFamily, "quote.upgrade"),
    _case("upgrade-unknown-plan",
          lambda c: c.lic.quotes.quote_upgrade(c.admin, c.pools["eco"], [c.users["Lee Gu"]], "platinum"),
          NotFound, "quote.upgrade"),
    _case("upgrade-no-plan", lambda c: c.lic.quotes.quote_upgrade(c.admin, c.pools["eco"], [c.users["Lee Gu"]], None),
          InvalidInput, "quote.upgrade"),
    _case("upgrade-held-by-quote",
          lambda c: c.lic.quotes.quote_upgrade(c.admin, c.pools["eco"], [c.users["Grady Sink"]], "pro"),
          HeldByQuote, "quote.upgrade", _quote_by_admin2),
    _case("upgrade-currency-mismatch",
          lambda c: c.lic.quotes.quote_upgrade(c.eur.admin, c.eur.pool_id, [c.eur.user_ids[1]], "advanced"),
          CurrencyMismatch, "quote.upgrade"),
    # --- quote_purchase / cart
    *[_case(f"purchase-quantity-{q!r}", lambda c, q=q: c.lic.quotes.quote_purchase(c.admin, [line("eco", "month", q)]),
            InvalidQuantity, "quote.purchase") for q in QUANTITIES],
    *[_case(f"preview-quantity-{q!r}", lambda c, q=q: c.lic.quotes.cart_preview(c.admin, [line("pro", "year", q)]),
            InvalidQuantity, "cart.preview") for q in QUANTITIES],
    _case("purchase-merged-lines-over-max",
          lambda c: c.lic.quotes.quote_purchase(c.admin, [line("eco", "month", 6000), line("eco", "month", "5000")]),
          InvalidQuantity, "quote.purchase"),
    _case("purchase-empty", lambda c: c.lic.quotes.quote_purchase(c.admin, []), InvalidInput, "quote.purchase"),
    _case("purchase-not-a-list", lambda c: c.lic.quotes.quote_purchase(c.admin, "eco"), InvalidInput, "quote.purchase"),
    _case("purchase-too-many-lines", lambda c: c.lic.quotes.quote_purchase(c.admin, [line("eco")] * 21),
          InvalidInput, "quote.purchase"),
    _case("purchase-bad-interval", lambda c: c.lic.quotes.quote_purchase(c.admin, [line("eco", "week")]),
          InvalidInput, "quote.purchase"),
    _case("purchase-unknown-plan", lambda c: c.lic.quotes.quote_purchase(c.admin, [line("platinum")]),
          NotFound, "quote.purchase"),
    _case("purchase-no-plan", lambda c: c.lic.quotes.quote_purchase(c.admin, [line(None)]), InvalidInput,
          "quote.purchase"),
    _case("purchase-member", lambda c: c.lic.quotes.quote_purchase(c.member, [line("eco")]), NotAdmin,
          "quote.purchase"),
    _case("purchase-currency-mismatch", lambda c: c.lic.quotes.quote_purchase(c.eur.admin, [line("pro", "year", 2)]),
          CurrencyMismatch, "quote.purchase"),
    _case("preview-currency-mismatch", lambda c: c.lic.quotes.cart_preview(c.eur.admin, [line("eco")]),
          CurrencyMismatch, "cart.preview"),
    # --- assign
    _case("assign-member", lambda c: c.lic.seats.assign(c.member, c.users["Christie Gupta"], c.pools["eco"]),
          NotAdmin, "seat.assign"),
    _case("assign-unknown-user", lambda c: c.lic.seats.assign(c.admin, 987654, c.pools["eco"]), NotFound,
          "seat.assign"),
    _case("assign-bad-user-ref", lambda c: c.lic.seats.assign(c.admin, True, c.pools["eco"]), InvalidInput,
          "seat.assign"),
    _case("assign-unknown-pool", lambda c: c.lic.seats.assign(c.admin, c.users["Christie Gupta"], 987654),
          NotFound, "seat.assign"),
    _case("assign-user-of-other-account", lambda c: c.lic.seats.assign(c.admin, c.fab.user_ids[2], c.pools["eco"]),
          NotFound, "seat.assign"),
    _case("assign-pool-of-other-account", lambda c: c.lic.seats.assign(c.admin, c.users["Christie Gupta"],
                                                                       c.fab.pool_id),
          NotFound, "seat.assign"),
    _case("assign-other-account-caller", lambda c: c.lic.seats.assign(c.fab.admin, c.fab.user_ids[2], c.pools["eco"]),
          NotFound, "seat.assign"),
    _case("assign-seat-already-held", lambda c: c.lic.seats.assign(c.admin, c.users["Lee Gu"], c.pools["advanced"]),
          SeatAlreadyHeld, "seat.assign"),
    _case("assign-seat-already-held-same-pool", lambda c: c.lic.seats.assign(c.admin, c.users["Lee Gu"],
                                                                             c.pools["eco"]),
          SeatAlreadyHeld, "seat.assign"),
    _case("assign-no-free-seat", lambda c: c.lic.seats.assign(c.admin, c.users["Christie Gupta"], c.pools["eco"]),
          NoFreeSeat, "seat.assign", _no_free_eco),
    _case("assign-domain-not-approved", lambda c: c.lic.seats.assign(c.admin, c.outsider, c.pools["eco"]),
          DomainNotApproved, "seat.assign"),
    # --- unassign
    _case("unassign-member", lambda c: c.lic.seats.unassign(c.member, c.pools["eco"], [c.users["Lee Gu"]]),
          NotAdmin, "seat.unassign"),
    _case("unassign-pool-of-other-account", lambda c: c.lic.seats.unassign(c.admin, c.fab.pool_id, [c.fab.user_ids[1]]),
          NotFound, "seat.unassign"),
    _case("unassign-user-not-in-pool",
          lambda c: c.lic.seats.unassign(c.admin, c.pools["eco"], [c.users["Lee Gu"], c.users["Christie Gupta"]]),
          StaleSelection, "seat.unassign"),
    _case("unassign-held-by-quote", lambda c: c.lic.seats.unassign(c.admin, c.pools["eco"], [c.users["Grady Sink"]]),
          HeldByQuote, "seat.unassign", _quote_by_admin2),
    # --- remove_seats
    *[_case(f"remove-quantity-{q!r}", lambda c, q=q: c.lic.seats.remove_seats(c.admin, c.pools["eco"], q),
            InvalidQuantity, "seats.remove") for q in QUANTITIES],
    _case("remove-more-than-free", lambda c: c.lic.seats.remove_seats(c.admin, c.pools["eco"], 7),
          SeatsAssigned, "seats.remove"),
    _case("remove-member", lambda c: c.lic.seats.remove_seats(c.member, c.pools["eco"], 1), NotAdmin, "seats.remove"),
    _case("remove-pool-of-other-account", lambda c: c.lic.seats.remove_seats(c.admin, c.fab.pool_id, 1),
          NotFound, "seats.remove"),
    _case("remove-other-account-caller", lambda c: c.lic.seats.remove_seats(c.fab.admin, c.pools["eco"], 1),
          NotFound, "seats.remove"),
    # --- schedule_downgrade / cancel_downgrade
    _case("downgrade-member", lambda c: c.lic.downgrades.schedule_downgrade(c.member, c.pools["pro"],
                                                                            [c.users["Alex Wilber"]],
                                                                 "eco"), NotAdmin, "downgrade.schedule"),
    _case("downgrade-higher-tier",
          lambda c: c.lic.downgrades.schedule_downgrade(c.admin, c.pools["advanced"], [c.users["Megan Bowen"]], "pro"),
          NotADowngrade, "downgrade.schedule"),
    _case("downgrade-equal-tier",
          lambda c: c.lic.downgrades.schedule_downgrade(c.admin, c.pools["advanced"], [c.users["Megan Bowen"]],
                                                        "advanced"),
          NotADowngrade, "downgrade.schedule"),
    _case("downgrade-other-family",
          lambda c: c.lic.downgrades.schedule_downgrade(c.admin, c.pools["pro"], [c.users["Alex Wilber"]],
                                                        "api_advanced"),
          WrongFamily, "downgrade.schedule"),
    _case("downgrade-no-plan",
          lambda c: c.lic.downgrades.schedule_downgrade(c.admin, c.pools["pro"], [c.users["Alex Wilber"]], ""),
          InvalidInput, "downgrade.schedule"),
    _case("downgrade-pool-of-other-account",
          lambda c: c.lic.downgrades.schedule_downgrade(c.admin, c.fab.pool_id, [c.fab.user_ids[1]], "eco"),
          NotFound, "downgrade.schedule"),
    _case("downgrade-held-by-quote",
          lambda c: c.lic.downgrades.schedule_downgrade(c.admin, c.pools["advanced"], [c.users["Megan Bowen"]], "eco"),
          HeldByQuote, "downgrade.schedule",
          lambda c: c.lic.quotes.quote_upgrade(c.admin2, c.pools["advanced"], [c.users["Megan Bowen"]], "pro")),
    _case("cancel-downgrade-none-scheduled",
          lambda c: c.lic.downgrades.cancel_downgrade(c.admin, c.pools["pro"], [c.users["Alex Wilber"]]),
          InvalidInput, "downgrade.cancel"),
    # --- pool views
    _case("pool-of-other-account", lambda c: c.lic.pools.pool(c.admin, c.fab.pool_id), NotFound, "pool.view"),
    _case("pool-users-of-other-account", lambda c: c.lic.pools.pool_users(c.fab.admin, c.pools["eco"]),
          NotFound, "pool.users"),
    _case("pool-users-member", lambda c: c.lic.pools.pool_users(c.member, c.pools["eco"]), NotAdmin, "pool.users"),
    _case("pool-users-bad-page", lambda c: c.lic.pools.pool_users(c.admin, c.pools["eco"], page="two"),
          InvalidInput, "pool.users"),
    _case("pool-users-query-too-long", lambda c: c.lic.pools.pool_users(c.admin, c.pools["eco"], query="x" * 101),
          InvalidInput, "pool.users"),
    _case("upgrade-options-other-account",
          lambda c: c.lic.quotes.upgrade_options(c.fab.admin, c.pools["eco"], [c.users["Lee Gu"]]),
          NotFound, "upgrade.options"),
    # --- payment link / cancel quote
    _case("link-expired", lambda c: c.lic.links.payment_link(c.admin, _q(c)), QuoteNotOpen, "payment.link",
          _expired_quote),
    _case("link-paid", lambda c: c.lic.links.payment_link(c.admin, _q(c)), QuoteNotOpen, "payment.link", _paid_quote),
    _case("link-cancelled", lambda c: c.lic.links.payment_link(c.admin, _q(c)), QuoteNotOpen, "payment.link",
          _cancelled_quote),
    _case("link-unknown-quote", lambda c: c.lic.links.payment_link(c.admin, "0" * 32), NotFound, "payment.link"),
    _case("link-bad-quote-ref", lambda c: c.lic.links.payment_link(c.admin, 12), NotFound, "payment.link"),
    _case("link-quote-of-other-account", lambda c: c.lic.links.payment_link(c.admin, _q(c)), NotFound, "payment.link",
          _fab_quote),
    _case("link-member", lambda c: c.lic.links.payment_link(c.member, _q(c)), NotAdmin, "payment.link",
          _quote_by_admin2),
    _case("cancel-expired", lambda c: c.lic.quotes.cancel_quote(c.admin, _q(c)), QuoteNotOpen, "quote.cancel",
          _expired_quote),
    _case("cancel-paid", lambda c: c.lic.quotes.cancel_quote(c.admin, _q(c)), QuoteNotOpen, "quote.cancel",
          _paid_quote),
    _case("cancel-cancelled", lambda c: c.lic.quotes.cancel_quote(c.admin, _q(c)), QuoteNotOpen, "quote.cancel",
          _cancelled_quote),
    _case("cancel-quote-of-other-account", lambda c: c.lic.quotes.cancel_quote(c.admin, _q(c)), NotFound,
          "quote.cancel",
          _fab_quote),
    _case("cancel-other-account-caller", lambda c: c.lic.quotes.cancel_quote(c.fab.admin, _q(c)), NotFound,
          "quote.cancel", _quote_by_admin2),
    _case("view-quote-of-other-account", lambda c: c.lic.quotes.quote(c.admin, _q(c)), NotFound, "quote.view",
          _fab_quote),
    _case("confirm-with-amount-due", lambda c: c.lic.quotes.confirm_without_payment(c.admin, _q(c)), InvalidInput,
          "quote.confirm", _quote_by_admin2),
    # --- upgrade requests
    _case("request-duplicate-pending", lambda c: c.lic.requests.request_upgrade(c.member, "pro"), RequestClosed,
          "request.create", _pending_request),
    _case("request-equal-tier", lambda c: c.lic.requests.request_upgrade(c.member, "eco"), NotAnUpgrade,
          "request.create"),
    _case("request-lower-tier", lambda c: c.lic.requests.request_upgrade(c.admin2, "eco"), NotAnUpgrade,
          "request.create"),
    _case("request-no-seat-in-family", lambda c: c.lic.requests.request_upgrade(c.member, "api_pro"), InvalidInput,
          "request.create"),
    _case("request-unknown-plan", lambda c: c.lic.requests.request_upgrade(c.member, "platinum"), NotFound,
          "request.create"),
    _case("request-no-plan", lambda c: c.lic.requests.request_upgrade(c.member, None), InvalidInput, "request.create"),
    _case("request-reason-too-long", lambda c: c.lic.requests.request_upgrade(c.member, "pro", "x" * 501), InvalidInput,
          "request.create"),
    _case("request-stranger", lambda c: c.lic.requests.request_upgrade(STRANGER, "pro"), UnknownCaller,
          "request.create"),
    _case("approve-member", lambda c: c.lic.requests.approve_request(c.member, _r(c)), NotAdmin, "request.approve",
          _pending_request),
    _case("approve-unknown", lambda c: c.lic.requests.approve_request(c.admin, 987654), NotFound, "request.approve"),
    _case("approve-bad-ref", lambda c: c.lic.requests.approve_request(c.admin, "1; drop"), InvalidInput,
          "request.approve"),
    _case("approve-request-of-other-account", lambda c: c.lic.requests.approve_request(c.admin, _r(c)), NotFound,
          "request.approve", _fab_request),
    _case("approve-other-account-caller", lambda c: c.lic.requests.approve_request(c.fab.admin, _r(c)), NotFound,
          "request.approve", _pending_request),
    _case("approve-already-decided", lambda c: c.lic.requests.approve_request(c.admin2, _r(c)), RequestClosed,
          "request.approve", _approved_request),
    _case("approve-seat-held-by-quote", lambda c: c.lic.requests.approve_request(c.admin, _r(c)), HeldByQuote,
          "request.approve",
          lambda c: (_pending_request(c),
                     c.lic.quotes.quote_upgrade(c.admin2, c.pools["eco"], [c.users["Lee Gu"]], "advanced"))),
    _case("decline-already-decided", lambda c: c.lic.requests.decline_request(c.admin2, _r(c), "no"), RequestClosed,
          "request.decline", _approved_request),
    _case("decline-request-of-other-account", lambda c: c.lic.requests.decline_request(c.admin, _r(c)), NotFound,
          "request.decline", _fab_request),
    _case("decline-member", lambda c: c.lic.requests.decline_request(c.member, _r(c)), NotAdmin, "request.decline",
          _pending_request),
    _case("decline-reason-too-long", lambda c: c.lic.requests.decline_request(c.admin, _r(c), "x" * 501), InvalidInput,
          "request.decline", _pending_request),
    _case("view-request-of-other-member", lambda c: c.lic.requests.request(c.fab.actors[2], _r(c)), NotAdmin,
          "request.view", _fab_request),
    _case("view-request-of-other-account", lambda c: c.lic.requests.request(c.admin, _r(c)), NotFound, "request.view",
          _fab_request),
    _case("add-user-domain-not-approved",
          lambda c: c.lic.accounts.add_user(c.admin, "new-aad", "someone@evil.example", "Some One"),
          DomainNotApproved, "user.add"),
    _case("add-user-member", lambda c: c.lic.accounts.add_user(c.member, "new-aad", "a@contoso.com", "A"), NotAdmin,
          "user.add"),
]


@pytest.mark.parametrize(("setup", "call", "error", "action"), REFUSALS)
def test_refusal(c, setup, call, error, action):
    if setup:
        setup(c)
    assert_refused(c, lambda: call(c), error, action)


def test_quantities_accepted_as_digits(c):
    """The other side of the quantity rule: 1, 10,000 and digit strings are whole numbers."""
    for q in (1, "3", " 12 ", 10_000):
        c.lic.quotes.cart_preview(c.admin, [line("eco", "month", q)])
    v = c.lic.seats.remove_seats(c.admin, c.pools["eco"], "2")
    assert v.removal_scheduled == 2


def test_held_by_quote_names_holder_and_expiry(c):
    _quote_by_admin2(c)
    e = assert_refused(c, lambda: c.lic.seats.unassign(c.admin, c.pools["eco"], [c.users["Grady Sink"]]),
                       HeldByQuote, "seat.unassign")
    assert "Megan Bowen" in e.message and "2026-03-10 12:30 UTC" in e.message
    assert e.details["quote_id"] == c.stash["quote"].id


def test_held_by_the_callers_own_quote_says_so(c):
    """Whoever holds the blocking quote is told it is theirs (to open or cancel), not to ask themselves."""
    _quote_by_admin2(c)
    grady = c.users["Grady Sink"]
    for call, action in ((lambda: c.lic.seats.unassign(c.admin2, c.pools["eco"], [grady]), "seat.unassign"),
                         (lambda: c.lic.quotes.quote_upgrade(c.admin2, c.pools["eco"], [grady], "pro"),
                          "quote.upgrade")):
        e = assert_refused(c, call, HeldByQuote, action)
        assert e.details["mine"] and e.details["quote_id"] == c.stash["quote"].id, action
        assert "your own open quote" in e.message and "Megan Bowen" not in e.message, action
    other = assert_refused(c, lambda: c.lic.seats.unassign(c.admin, c.pools["eco"], [grady]), HeldByQuote,
                           "seat.unassign")
    assert not other.details["mine"] and "ask Megan Bowen" in other.message
    megan = c.users["Megan Bowen"]
    held = c.lic.quotes.quote_upgrade(c.admin2, c.pools["advanced"], [megan], "pro")
    e = assert_refused(c, lambda: c.lic.downgrades.schedule_downgrade(c.admin2, c.pools["advanced"], [megan], "eco"),
                       HeldByQuote, "downgrade.schedule")
    assert e.details["mine"] and e.details["quote_id"] == held.id


def test_second_decision_names_who_decided(c):
    _pending_request(c)
    c.lic.requests.decline_request(c.admin, _r(c), "not this quarter")
    e = assert_refused(c, lambda: c.lic.requests.approve_request(c.admin2, _r(c)), RequestClosed, "request.approve")
    assert "declined" in e.message and "Alex Wilber" in e.message and "2026-03-10 12:00 UTC" in e.message


def test_refused_audit_records_who_and_tenant(c):
    with pytest.raises(NotAdmin):
        c.lic.pools.list_pools(c.member)
    with pytest.raises(UnknownCaller):
        c.lic.pools.list_pools(STRANGER)
    with c.db.read() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.outcome == "refused").order_by(AuditEvent.id)).all()
    mine, stranger = rows[-2], rows[-1]
    assert (mine.actor, mine.actor_id, mine.tenant_id) == ("Lee Gu", c.users["Lee Gu"], TENANT)
    assert mine.account_id is not None and mine.created_at == c.clock.now
    assert (stranger.account_id, stranger.actor, stranger.tenant_id) == (None, "nobody", STRANGER.tenant_id)


# ---------------------------------------------------------------------------- pools


def test_pools_report_bought_assigned_free_and_renewal(c):
    views = c.lic.pools.list_pools(c.admin)
    got = [(v.plan_code, v.interval, v.quantity, v.assigned, v.free) for v in views]
    assert got == [(plan, interval, bought, assigned, bought - assigned) for interval, plan, bought, assigned in POOLS]
    with c.db.read() as s:
        ends = dict(s.execute(select(Subscription.interval, Subscription.period_end)
                              .join(Pool, Pool.subscription_id == Subscription.id)
                              .where(Pool.id == c.pools["eco"])).all())
    eco = next(v for v in views if v.id == c.pools["eco"])
    assert eco.renewal_date == ends["month"] and eco.period_start < c.clock.now < eco.renewal_date
    assert eco.renewal_quantity == 30 and eco.currency == "USD"
    # an account sees only its own pools
    assert [v.id for v in c.lic.pools.list_pools(c.fab.admin)] == [c.fab.pool_id]


def test_upgrade_options_only_higher_plans_of_the_family(c):
    def codes(key, user):
        return [p.code for p in c.lic.quotes.upgrade_options(c.admin, c.pools[key], [c.users[user]])]

    first_api = all_pool_users(c, "api_advanced")[0].name
    assert codes("eco", "Lee Gu") == ["advanced", "pro"]
    assert codes("advanced", "Megan Bowen") == ["pro"]
    assert codes("pro", "Alex Wilber") == []
    assert codes("api_advanced", first_api) == ["api_pro"]
    assert [p.code for p in c.lic.downgrades.downgrade_options(c.admin, c.pools["pro"])] == ["eco", "advanced"]
    # an account billed in EUR is offered nothing it cannot buy
    assert c.lic.quotes.upgrade_options(c.eur.admin, c.eur.pool_id, [c.eur.user_ids[1]]) == []


# ---------------------------------------------------------------------------- users: search and paging


def _names(page):
    return [u.name for u in page.items]


def test_pool_users_are_paged_by_20_without_overlap(c):
    pages = [c.lic.pools.pool_users(c.admin, c.pools["eco"], page=p) for p in range(3)]
    assert [len(p.items) for p in pages] == [20, 4, 0]
    assert {p.total for p in pages} == {24} and pages[0].page_size == 20
    assert pages[0].has_next and not pages[1].has_next and pages[0].pages == 2
    ids = [u.id for p in pages for u in p.items]
    assert len(ids) == len(set(ids)) == 24
    with c.db.read() as s:
        holders = set(s.scalars(select(Seat.user_id).where(Seat.pool_id == c.pools["eco"])))
    assert set(ids) == holders
    again = [u.id for p in range(2) for u in c.lic.pools.pool_users(c.admin, c.pools["eco"], page=p).items]
    assert again == ids  # stable order
    assert all(u.plan_code == "eco" for p in pages for u in p.items)


def test_pool_users_keyset_pages_are_the_numbered_pages(c):
    """Next (after the last row), Previous (before the first) and the same page again (at the
    first) give the rows of the numbered pages, whichever end a numbered page is counted from."""
    pool = c.pools["eco"]
    by_number = [c.lic.pools.pool_users(c.admin, pool, page=p, page_size=5) for p in range(5)]
    assert [len(p.items) for p in by_number] == [5, 5, 5, 5, 4]
    ids = [[u.id for u in p.items] for p in by_number]
    page, walked = by_number[0], [ids[0]]
    while page.has_next:
        page = c.lic.pools.pool_users(c.admin, pool, page=page.page + 1, page_size=5, key=("after", page.last_key))
        walked.append([u.id for u in page.items])
    assert walked == ids and page.page == 4
    while page.has_prev:
        page = c.lic.pools.pool_users(c.admin, pool, page=page.page - 1, page_size=5, key=("before", page.first_key))
        assert [u.id for u in page.items] == ids[page.page]
    assert page.page == 0
    again = c.lic.pools.pool_users(c.admin, pool, page=3, page_size=5, key=["at", list(by_number[3].first_key)])
    assert [u.id for u in again.items] == ids[3] and again.page == 3
    # Previous from the second page when the first lost a row: the first page, full
    short = c.lic.pools.pool_users(c.admin, pool, page=0, page_size=5, key=("before", by_number[1].first_key))
    assert short.page == 0 and [u.id for u in short.items] == ids[0]
    # a key past the end (the pool shrank): its last page; a key that is not one: the page by number
    past = c.lic.pools.pool_users(c.admin, pool, page=9, page_size=5, key=("after", ("\uffff", 2**31 - 1)))
    assert [u.id for u in past.items] == ids[4] and past.page == 4
    for bad in (("after", ["x"]), ("sideways", ("a", 1)), ("at", (1, "a")), ("at", ("a", True)), "after",
                ("after", ("a", 2**31))):  # (a user id is a 32-bit INTEGER on PostgreSQL)
        assert [u.id for u in c.lic.pools.pool_users(c.admin, pool, page=2, page_size=5, key=bad).items] == ids[2]


def test_directory_is_paged_and_sorted_by_name(c):
    pages = [c.lic.accounts.directory(c.admin, page=p) for p in range(4)]
    assert [len(p.items) for p in pages] == [20, 20, 20, 1]  # 60 demo users + the outsider
    names = [n for p in pages for n in _names(p)]
    assert len(set(names)) == 61
    from core.text import sort_key

    assert [sort_key(n) for n in names] == sorted(sort_key(n) for n in names)
    assert c.lic.accounts.directory(c.admin, page=-3).page == 0


@pytest.mark.parametrize(("query", "expected"), [
    ("zo", {"Zoë Gracey", "Zoë Patterson"}),
    ("ZOË", {"Zoë Gracey", "Zoë Patterson"}),
    ("  zoe  ", {"Zoë Gracey", "Zoë Patterson"}),
    ("zo pat", {"Zoë Patterson"}),
    ("Patterson Zoë", {"Zoë Patterson"}),
    ("rodriguez", {"Emily Rodríguez", "Henrietta Rodríguez", "Joni Rodríguez"}),
    ("RODRÍG", {"Emily Rodríguez", "Henrietta Rodríguez", "Joni Rodríguez"}),
    ("zoe.patterson@contoso.com", {"Zoë Patterson"}),
    ("lee.gu@", {"Lee Gu"}),
    ("gmail", {"Gus Guest"}),
    ("olsen", {"Joni Ølsen", "Miriam Ølsen", "Raul Ølsen"}),
    ("Ølsen", {"Joni Ølsen", "Miriam Ølsen", "Raul Ølsen"}),
    ("oe", set()),  # word prefix, not substring: "Zoë" is not found by "oe"
    ("nobody-like-this", set()),
])
def test_directory_search(c, query, expected):
    page = c.lic.accounts.directory(c.admin, query=query, page_size=50)
    assert set(_names(page)) == expected
    assert page.total == len(expected)


def test_search_folds_letters_without_decomposition(c):
    """Names whose e-mail does not spell them out are found by the name alone, whatever the script."""
    def add(s):
        account_id = s.scalar(select(AccountTenant.account_id).where(AccountTenant.tenant_id == TENANT))
        c.lic.accounts.insert_user(s, account_id, "aad-lz", "lz@contoso.com", "Łukasz Ødegård", "member")
        c.lic.accounts.insert_user(s, account_id, "aad-iv", "iv@contoso.com", "Иван Петров", "member")

    c.db.write(add)
    assert _names(c.lic.accounts.directory(c.admin, query="lukasz")) == ["Łukasz Ødegård"]
    assert _names(c.lic.accounts.directory(c.admin, query="odeg")) == ["Łukasz Ødegård"]
    assert _names(c.lic.accounts.directory(c.admin, query="Øde")) == ["Łukasz Ødegård"]
    assert _names(c.lic.accounts.directory(c.admin, query="иван")) == ["Иван Петров"]
    assert _names(c.lic.accounts.directory(c.admin, query="Пет")) == ["Иван Петров"]
    # a query in a script the index could not read must not match everyone
    assert c.lic.accounts.directory(c.admin, query="Жанна").total == 0


def test_pool_users_search_is_limited_to_the_pool(c):
    page = c.lic.pools.pool_users(c.admin, c.pools["eco"], query="zo")
    assert _names(page) == ["Zoë Patterson"] and page.total == 1 and page.query == "zo"
    big = c.lic.pools.pool_users(c.admin, c.pools["eco"], query="contoso")
    assert big.total == 24 and len(big.items) == 20
    rest = c.lic.pools.pool_users(c.admin, c.pools["eco"], query="contoso", page=1)
    assert not {u.id for u in big.items} & {u.id for u in rest.items} and len(rest.items) == 4


# ---------------------------------------------------------------------------- assign / unassign


def test_assign_takes_a_free_seat_and_notifies_the_user(c):
    uid = c.users["Christie Gupta"]
    v = c.lic.seats.assign(c.admin, uid, c.pools["eco"])
    assert (v.quantity, v.assigned, v.free) == (30, 25, 5)
    assert uid in {u.id for u in all_pool_users(c, "eco")}
    [msg] = outbox(c.db, "license_assigned")
    assert (msg.user_id, msg.channel, msg.status, msg.payload["plan"]) == (uid, "chat", "pending", "eco")
    assert msg.payload["by"] == "Alex Wilber"
    [ev] = [e for e in audits_after(c.db, 0) if e.action == "seat.assigned"]
    assert (ev.outcome, ev.actor, ev.tenant_id, ev.target) == ("ok", "Alex Wilber", TENANT, f"user:{uid}")
    # one seat per family per user, but another family is fine
    v = c.lic.seats.assign(c.admin, uid, c.pools["api_advanced"])
    assert v.assigned == 7
    with pytest.raises(SeatAlreadyHeld):
        c.lic.seats.assign(c.admin, uid, c.pools["pro"])


def test_assign_until_the_pool_is_full(c):
    free_users = [u.id for u in c.lic.accounts.directory(c.admin, page_size=50).items
                  if u.plan_code is None and u.id != c.outsider][:7]
    for uid in free_users[:6]:
        c.lic.seats.assign(c.admin, uid, c.pools["eco"])
    assert pool_by_id(c, c.pools["eco"]).free == 0
    e = assert_refused(c, lambda: c.lic.seats.assign(c.admin, free_users[6], c.pools["eco"]), NoFreeSeat, "seat.assign")
    assert e.details == {"plan": "eco", "interval": "month"}


def test_unassign_frees_seats_and_notifies(c):
    uids = [c.users["Grady Sink"], c.users["Lee Gu"]]
    v = c.lic.seats.unassign(c.admin, c.pools["eco"], ",".join(str(u) for u in uids))  # how Teams sends a multi-select
    assert (v.assigned, v.free) == (22, 8)
    assert {m.user_id for m in outbox(c.db, "license_unassigned")} == set(uids)
    assert c.lic.seats.my_license(c.member) == []
    assert [e.detail["count"] for e in audits_after(c.db, 0) if e.action == "seat.unassigned"] == [2]


def test_each_unassignment_is_notified_even_when_a_seat_id_comes_back(c):
    """SQLite may give a new seat the id of a deleted one; the second person must still be told."""
    a, b = c.users["Christie Gupta"], c.users["Debra Berg"]
    c.lic.seats.assign(c.admin, a, c.pools["eco"])
    c.lic.seats.unassign(c.admin, c.pools["eco"], [a])
    c.lic.seats.assign(c.admin, b, c.pools["eco"])
    c.lic.seats.unassign(c.admin, c.pools["eco"], [b])
    assert sorted(m.user_id for m in outbox(c.db, "license_unassigned")) == sorted([a, b])


# ---------------------------------------------------------------------------- quotes hold seats


def test_upgrade_quote_holds_seats_until_cancelled(c):
    grady = c.users["Grady Sink"]
    q = c.lic.quotes.quote_upgrade(c.admin2, c.pools["eco"], [grady], "advanced")
    assert (q.status, q.kind, q.from_plan, q.to_plan) == ("open", "upgrade", "eco", "advanced")
    assert [u.id for u in q.users] == [grady] and q.expires_at == c.clock.now + timedelta(minutes=30)
    assert [ln.kind for ln in q.lines] == ["credit", "charge"] and q.due_now == sum(ln.amount for ln in q.lines)
    row = next(u for u in all_pool_users(c, "eco") if u.id == grady)
    assert row.held_until == q.expires_at
    assert pool_by_id(c, c.pools["eco"]).assigned == 24  # nothing moves before payment
    for refused in (lambda: c.lic.quotes.quote_upgrade(c.admin, c.pools["eco"], [grady], "pro"),
                    lambda: c.lic.quotes.quote_upgrade(c.admin, c.pools["eco"], [c.users["Lee Gu"], grady], "pro"),
                    lambda: c.lic.seats.unassign(c.admin, c.pools["eco"], [c.users["Lee Gu"], grady])):
        with pytest.raises(HeldByQuote):
            refused()
    cancelled = c.lic.quotes.cancel_quote(c.admin, q.id)
    assert cancelled.status == "cancelled" and cancelled.closed_at == c.clock.now
    assert next(u for u in all_pool_users(c, "eco") if u.id == grady).held_until is None
    assert c.lic.quotes.quote_upgrade(c.admin, c.pools["eco"], [grady], "pro").status == "open"


def test_held_seats_are_free_again_after_expiry(c):
    megan = c.users["Megan Bowen"]
    q = c.lic.quotes.quote_upgrade(c.admin, c.pools["advanced"], [megan], "pro")
    with pytest.raises(HeldByQuote):
        c.lic.downgrades.schedule_downgrade(c.admin2, c.pools["advanced"], [megan], "eco")
    c.clock.advance(minutes=30)
    assert c.lic.quotes.quote(c.admin, q.id).status == "expired"
    v = c.lic.downgrades.schedule_downgrade(c.admin2, c.pools["advanced"], [megan], "eco")
    assert v.downgrades_out == 1
    q2 = c.lic.quotes.quote_upgrade(c.admin2, c.pools["advanced"], [megan], "pro")
    assert q2.status == "open"


def test_paid_upgrade_moves_seats(c):
    grady = c.users["Grady Sink"]
    q = c.lic.links.payment_link(c.admin, c.lic.quotes.quote_upgrade(c.admin, c.pools["eco"], [grady], "pro").id)
    assert q.payment_url and c.lic.links.payment_link(c.admin, q.id).payment_url == q.payment_url  # one link
    assert SandboxCheckout(c.lic).pay(token_of(q)).state == "paid"
    assert (pool_by_id(c, c.pools["eco"]).quantity, pool_by_id(c, c.pools["pro"]).quantity) == (29, 7)
    assert grady in {u.id for u in all_pool_users(c, "pro")}
    assert [m.user_id for m in outbox(c.db, "license_upgraded")] == [grady]


def test_purchase_quote_then_payment_adds_seats(c):
    q = c.lic.quotes.quote_purchase(c.admin, [line("eco", "month", 2), line("eco", "month", "1")])
    assert (q.kind, q.status, [ln.quantity for ln in q.lines]) == ("purchase", "open", [3])
    assert q.discount_label == "Partner discount" and q.due_now < q.lines[0].gross
    assert c.lic.quotes.cart_preview(c.admin, [line("eco", "month", 3)]).due_now == q.due_now
    paid = c.lic.links.payment_link(c.admin, q.id)
    assert SandboxCheckout(c.lic).pay(token_of(paid)).state == "paid"
    assert pool_by_id(c, c.pools["eco"]).quantity == 33
    assert [m.user_id for m in outbox(c.db, "purchase_paid")] == [c.users["Alex Wilber"]]


# ---------------------------------------------------------------------------- removals, downgrades, roll-over


def _month_end(c):
    return pool_by_id(c, c.pools["eco"]).renewal_date


def test_remove_seats_takes_effect_at_period_end(c):
    end = _month_end(c)
    v = c.lic.seats.remove_seats(c.admin, c.pools["eco"], 4)
    assert (v.quantity, v.removal_scheduled, v.assignable, v.renewal_quantity) == (30, 4, 2, 26)
    with pytest.raises(SeatsAssigned):
        c.lic.seats.remove_seats(c.admin, c.pools["eco"], 3)
    c.clock.now = end - timedelta(seconds=1)
    assert c.lic.periods.roll_over() == 0
    c.clock.now = end
    # Contoso's, Fabrikam's and Eurocorp's months
    assert c.lic.periods.roll_over() == 3 and c.lic.periods.roll_over() == 0
    v = pool_by_id(c, c.pools["eco"])
    assert (v.quantity, v.removal_scheduled, v.assigned, v.period_start) == (26, 0, 24, end)
    assert v.renewal_date > end
    actions = [(e.action, e.detail) for e in audits_after(c.db, 0) if e.action == "seats.removed"]
    assert actions == [("seats.removed", {"quantity": 4, "plan": "eco"})]


def test_cancel_removal(c):
    c.lic.seats.remove_seats(c.admin, c.pools["eco"], 4)
    v = c.lic.seats.cancel_removal(c.admin, c.pools["eco"])
    assert (v.removal_scheduled, v.renewal_quantity) == (0, 30)
    c.clock.now = _month_end(c)
    c.lic.periods.roll_over()
    assert pool_by_id(c, c.pools["eco"]).quantity == 30


def test_removal_scheduled_after_the_end_waits_for_the_next_end(c):
    """Lazily rolled: a removal asked after the period end (before the job ran) applies at the
    end of the new period, not at the boundary already passed."""
    end = _month_end(c)
    c.clock.now = end + timedelta(hours=1)
    v = c.lic.seats.remove_seats(c.admin, c.pools["eco"], 2)
    assert v.period_start == end and v.renewal_date > end
    assert (v.quantity, v.removal_scheduled, v.renewal_quantity) == (30, 2, 28)


def test_removal_cancelled_after_the_end_is_already_applied(c):
    """Cancelling after the end (before the job ran) is too late: the boundary already applied it."""
    c.lic.seats.remove_seats(c.admin, c.pools["eco"], 2)
    c.clock.now = _month_end(c) + timedelta(minutes=5)
    v = c.lic.seats.cancel_removal(c.admin, c.pools["eco"])
    assert (v.quantity, v.removal_scheduled, v.renewal_quantity) == (28, 0, 28)


def test_downgrade_cancelled_after_the_end_is_already_applied(c):
    alex = c.users["Alex Wilber"]
    c.lic.downgrades.schedule_downgrade(c.admin, c.pools["pro"], [alex], "advanced")
    c.clock.now = _month_end(c) + timedelta(minutes=5)
    e = assert_refused(c, lambda: c.lic.downgrades.cancel_downgrade(c.admin, c.pools["pro"], [alex]), StaleSelection,
                       "downgrade.cancel")
    assert e.details == {"stale": True}
    c.lic.periods.roll_over()
    assert alex in {u.id for u in all_pool_users(c, "advanced")}


def test_unassign_after_the_end_applies_the_downgrade_first(c):
    """Unassigning a seat whose downgrade is due must not leave the higher pool billing it."""
    alex = c.users["Alex Wilber"]
    other = next(u.id for u in all_pool_users(c, "pro") if u.id != alex)
    c.lic.downgrades.schedule_downgrade(c.admin, c.pools["pro"], [alex], "advanced")
    c.clock.now = _month_end(c) + timedelta(minutes=5)
    v = c.lic.seats.unassign(c.admin, c.pools["pro"], [other])
    assert (v.quantity, v.assigned) == (5, 2)  # Alex's seat moved to Advanced at the boundary
    adv = c.lic.seats.unassign(c.admin, c.pools["advanced"], [alex])
    assert (adv.quantity, adv.assigned) == (16, 12)


def test_upgrade_quote_after_the_end_sees_the_applied_downgrade(c):
    megan, end = c.users["Megan Bowen"], _month_end(c)
    c.lic.downgrades.schedule_downgrade(c.admin, c.pools["advanced"], [megan], "eco")
    c.clock.now = end + timedelta(minutes=5)
    # Megan is on Eco since the boundary: a quote crediting her an Advanced seat would be wrong
    assert_refused(c, lambda: c.lic.quotes.quote_upgrade(c.admin, c.pools["advanced"], [megan], "pro"),
                   StaleSelection,
                   "quote.upgrade")
    q = c.lic.quotes.quote_upgrade(c.admin, c.pools["eco"], [megan], "pro")
    assert (q.from_plan, q.lines[0].period_start) == ("eco", end)


def test_cart_preview_after_the_end_matches_the_quote(c):
    c.clock.now = _month_end(c) + timedelta(days=2)
    preview = c.lic.quotes.cart_preview(c.admin, [line("advanced", "month", 2)])
    quote = c.lic.quotes.quote_purchase(c.admin, [line("advanced", "month", 2)])
    assert (preview.due_now, preview.renewal_date) == (quote.due_now, quote.renewal_date)
    assert not quote.lines[0].new_period


def test_downgrade_applies_at_period_end(c):
    alex = c.users["Alex Wilber"]
    end = _month_end(c)
    v = c.lic.downgrades.schedule_downgrade(c.admin, c.pools["pro"], [alex], "advanced")
    assert (v.quantity, v.assigned, v.downgrades_out, v.renewal_quantity) == (6, 4, 1, 5)
    assert pool_by_id(c, c.pools["advanced"]).renewal_quantity == 16
    assert next(u for u in all_pool_users(c, "pro") if u.id == alex).downgrade_to == "advanced"
    [note] = outbox(c.db, "downgrade_scheduled")
    assert (note.user_id, note.payload["to_plan"], note.payload["effective"]) == (alex, "advanced", end.isoformat())
    mine = c.lic.seats.my_license(c.admin)
    assert [(m.plan_code, m.downgrade_to) for m in mine] == [("pro", "advanced")]  # keeps Pro until the end
    c.clock.now = end + timedelta(days=1)
    assert c.lic.periods.roll_over() == 3
    assert [(m.plan_code, m.downgrade_to) for m in c.lic.seats.my_license(c.admin)] == [("advanced", None)]
    pro, adv = pool_by_id(c, c.pools["pro"]), pool_by_id(c, c.pools["advanced"])
    assert (pro.quantity, pro.assigned, adv.quantity, adv.assigned) == (5, 3, 16, 13)
    assert [m.user_id for m in outbox(c.db, "downgrade_applied")] == [alex]


def test_downgrade_into_a_pool_that_does_not_exist_yet(c):
    holder = all_pool_users(c, "pro_year")[0].id
    c.lic.downgrades.schedule_downgrade(c.admin, c.pools["pro_year"], [holder], "eco")
    year_end = pool_by_id(c, c.pools["pro_year"]).renewal_date
    c.clock.now = year_end
    assert c.lic.periods.roll_over() == 3 * 8 + 1  # three monthly subscriptions roll 8 times, the yearly once
    eco_year = [v for v in c.lic.pools.list_pools(c.admin) if (v.plan_code, v.interval) == ("eco", "year")]
    assert [(v.quantity, v.assigned) for v in eco_year] == [(1, 1)]
    assert pool_by_id(c, c.pools["pro_year"]).quantity == 9


def test_cancel_downgrade(c):
    alex = c.users["Alex Wilber"]
    c.lic.downgrades.schedule_downgrade(c.admin, c.pools["pro"], [alex], "eco")
    v = c.lic.downgrades.cancel_downgrade(c.admin2, c.pools["pro"], [alex])
    assert (v.downgrades_out, v.renewal_quantity) == (0, 6)
    assert [m.user_id for m in outbox(c.db, "downgrade_cancelled")] == [alex]
    c.clock.now = _month_end(c)
    c.lic.periods.roll_over()
    assert [m.plan_code for m in c.lic.seats.my_license(c.admin)] == ["pro"]
    assert outbox(c.db, "downgrade_applied") == []


def test_operations_after_the_end_roll_the_period_lazily(c):
    end = _month_end(c)
    c.clock.now = end + timedelta(days=2)
    v = c.lic.seats.assign(c.admin, c.users["Christie Gupta"], c.pools["eco"])
    assert v.period_start == end and v.renewal_date > end
    with c.db.read() as s:
        rolled = s.scalar(select(func.count()).select_from(AuditEvent)
                          .where(AuditEvent.action == "period.rolled_over"))
    assert rolled == 1  # only the subscription the operation touched
    assert c.lic.periods.roll_over() == 2  # Fabrikam's and Eurocorp's monthly periods, by the job


def test_upgrade_quote_after_the_end_prices_the_new_period(c):
    end = _month_end(c)
    c.clock.now = end + timedelta(hours=1)
    q = c.lic.quotes.quote_upgrade(c.admin, c.pools["eco"], [c.users["Lee Gu"]], "advanced")
    assert q.lines[0].period_start == end and q.renewal_date > end


# ---------------------------------------------------------------------------- upgrade requests


def test_request_notifies_every_admin(c):
    req = c.lic.requests.request_upgrade(c.member, "pro", "  design work\x00 ")
    assert (req.status, req.from_plan, req.to_plan, req.reason) == ("pending", "eco", "pro", "design work")
    notes = outbox(c.db, "request_created")
    assert sorted(m.user_id for m in notes) == sorted([c.users["Alex Wilber"], c.users["Megan Bowen"]])
    assert {m.payload["request_id"] for m in notes} == {req.id}
    page = c.lic.requests.pending_requests(c.admin)
    assert page.total == 1 and page.items[0].requester_name == "Lee Gu"
    assert c.lic.requests.request(c.member, req.id).id == req.id  # the requester may see their own
    # another family is another request
    c.lic.seats.assign(c.admin, c.users["Lee Gu"], c.pools["api_advanced"])
    assert c.lic.requests.request_upgrade(c.member, "api_pro").status == "pending"


def test_approve_creates_a_quote_holding_the_seat(c):
    req = c.lic.requests.request_upgrade(c.member, "advanced")
    q = c.lic.requests.approve_request(c.admin2, req.id)
    assert (q.status, q.request_id, q.to_plan, [u.name for u in q.users]) == ("open", req.id, "advanced",
                                                                                ["Lee Gu"])
    after = c.lic.requests.request(c.admin, req.id)
    assert (after.status, after.decided_by_name, after.quote_id) == ("approved", "Megan Bowen", q.id)
    assert [m.user_id for m in outbox(c.db, "request_approved")] == [c.users["Lee Gu"]]
    with pytest.raises(HeldByQuote):
        c.lic.seats.unassign(c.admin, c.pools["eco"], [c.users["Lee Gu"]])
    assert c.lic.requests.pending_requests(c.admin).total == 0
    e = assert_refused(c, lambda: c.lic.requests.decline_request(c.admin, req.id), RequestClosed, "request.decline")
    assert "approved" in e.message and "Megan Bowen" in e.message


def test_no_new_request_while_an_approved_one_awaits_payment(c, clock):
    req = c.lic.requests.request_upgrade(c.member, "advanced")
    c.lic.requests.approve_request(c.admin, req.id)
    e = assert_refused(c, lambda: c.lic.requests.request_upgrade(c.member, "pro"), RequestClosed, "request.create")
    assert "approved" in e.message and "payment" in e.message
    clock.advance(minutes=31)  # the approval's quote expired unpaid: the member may ask again
    assert c.lic.requests.request_upgrade(c.member, "pro").status == "pending"


def test_an_address_without_locale_keeps_the_known_one(c):
    aad = "00000000-0000-0000-0000-0000000000022"
    french = ChatAddress("chat a:lee at http://x/", locale="fr-FR")
    assert c.lic.addresses.save_address(TENANT, aad, french)
    c.lic.addresses.save_address(TENANT, aad, ChatAddress("chat a:lee at http://x/"))
    with c.lic.db.read() as s:
        assert s.get(DeliveryAddress, c.users["Lee Gu"]).address.locale == "fr-FR"
    c.lic.addresses.save_address(TENANT, aad, replace(french, locale="en-GB"))
    with c.lic.db.read() as s:
        assert s.get(DeliveryAddress, c.users["Lee Gu"]).address.locale == "en-GB"


def test_the_core_never_reads_inside_an_address_ref(c):
    """``ref`` is the chat layer's own: any string (here no JSON at all) is stored and given back
    as it came, through every way the core hands an address out; what the core uses (whom a card
    is kept live for, the reader's locale and zone) comes from the fields given beside it."""
    with c.db.read() as s:
        christie = s.get(User, c.users["Christie Gupta"])
        account_id, christie_aad = christie.account_id, christie.aad_object_id
    admin_at = ChatAddress("<opaque> {not json: 29:admin", chat_user_id="chat:admin", locale="fr-FR",
                           timezone="Europe/Paris")
    christie_at = ChatAddress("also opaque, é \u00e9 [29:christie", chat_user_id=None, locale="de-DE")
    assert c.lic.addresses.save_address(TENANT, c.admin.aad_object_id, admin_at)
    assert c.lic.addresses.user_address(account_id, c.admin.aad_object_id) == admin_at
    assert c.lic.addresses.any_address(account_id) == admin_at
    assert c.lic.addresses.account_admin_chat_ids(account_id)[:1] == ["chat:admin"]
    c.clock.advance(seconds=1)
    assert c.lic.addresses.save_address(TENANT, christie_aad, christie_at)
    assert c.lic.addresses.user_address(account_id, christie_aad) == christie_at
    assert c.lic.addresses.any_address(account_id) == christie_at
    assert "chat:admin" in c.lic.addresses.account_admin_chat_ids(account_id)  # (she is no admin)
    c.lic.seats.assign(c.admin, c.users["Christie Gupta"], c.pools["eco"])
    items = [i for i in c.lic.outbox.claim("w1") if i.user_id == c.users["Christie Gupta"]]
    assert items and all(i.address == christie_at for i in items)
    c.lic.addresses.record_posted_card(account_id, "quote", "q-opaque", "msg-opaque", admin_at)
    with c.db.read() as s:
        posted_id = s.scalar(select(PostedCard.id).where(PostedCard.message_ref == "msg-opaque"))
    assert c.lic.addresses.posted_card(posted_id).address == admin_at


def test_decline_with_reason_then_ask_again(c):
    req = c.lic.requests.request_upgrade(c.member, "pro")
    d = c.lic.requests.decline_request(c.admin, req.id, "Budget is frozen")
    assert (d.status, d.decline_reason, d.decided_by_name) == ("declined", "Budget is frozen", "Alex Wilber")
    [msg] = outbox(c.db, "request_declined")
    assert (msg.user_id, msg.payload["reason"]) == (c.users["Lee Gu"], "Budget is frozen")
    assert c.lic.requests.request_upgrade(c.member, "pro").status == "pending"


# ---------------------------------------------------------------------------- audit log and CSV


def test_audit_log_records_changes_and_refusals(c):
    c.clock.advance(minutes=5)
    c.lic.seats.assign(c.admin, c.users["Christie Gupta"], c.pools["eco"])
    with pytest.raises(NotAdmin):
        c.lic.seats.assign(c.member, c.users["Debra Berg"], c.pools["eco"])
    page = c.lic.audit.page(c.admin2)
    newest, ok = page.items[0], page.items[1]
    assert (newest.action, newest.outcome, newest.actor, newest.tenant_id) == ("seat.assign", "refused", "Lee Gu",
                                                                               TENANT)
    assert newest.target == f"user:{c.users['Debra Berg']}" and newest.created_at == c.clock.now
    assert (ok.action, ok.outcome, ok.actor) == ("seat.assigned", "ok", "Alex Wilber")
    # another account's log is not shown
    c.lic.seats.assign(c.fab.admin, c.fab.user_ids[2], c.fab.pool_id)
    assert "Fay Admin" not in {r.actor for r in c.lic.audit.page(c.admin, page_size=50).items}
    assert "Fay Admin" not in c.lic.audit.export(c.admin)
    with pytest.raises(NotFound):
        c.lic.audit.export_csv(987654)


@pytest.mark.parametrize("name", ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\tx"])
def test_csv_export_neutralises_formulas(c, name):
    def add(s):
        account_id = s.scalar(select(AccountTenant.account_id).where(AccountTenant.tenant_id == TENANT))
        s.add(User(account_id=account_id, aad_object_id="evil", email="evil@contoso.com", name=name,
                   sort_key="evil", role="admin", unreachable=False, created_at=c.clock.now))

    c.db.write(add)
    evil = Actor(TENANT, "evil")
    c.lic.seats.assign(evil, c.users["Christie Gupta"], c.pools["eco"])
    with pytest.raises(SeatAlreadyHeld):
        c.lic.seats.assign(evil, c.users["Christie Gupta"], c.pools["eco"])
    text = c.lic.audit.export(c.admin)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["id", "created_at", "tenant_id", "actor", "action", "outcome", "target", "message"]
    mine = [r for r in rows[1:] if r[4] in ("seat.assigned", "seat.assign")]
    assert [(r[3], r[4], r[5]) for r in mine] == [("'" + name, "seat.assigned", "ok"),
                                                  ("'" + name, "seat.assign", "refused")]
    assert all(cell[:1] not in ("=", "+", "-", "@", "\t", "\r") for r in rows[1:] for cell in r[3:])
    assert len(rows) - 1 == c.lic.audit.page(c.admin).total


# ---------------------------------------------------------------------------- outbox delivery


def _queue_two(c):
    c.lic.seats.assign(c.admin, c.users["Christie Gupta"], c.pools["eco"])
    c.lic.seats.assign(c.admin, c.users["Debra Berg"], c.pools["eco"])
    return [m.id for m in outbox(c.db)]


def test_outbox_claim_lease_and_done(c):
    ids = _queue_two(c)
    assert c.lic.addresses.save_address(TENANT.upper(), "00000000-0000-0000-0000-0000000000020", ChatAddress("x"))
    items = c.lic.outbox.claim("w1")
    assert [i.id for i in items] == ids and all(i.attempts == 1 for i in items)
    assert {i.tenant_id for i in items} == {TENANT} and items[0].aad_object_id
    assert c.lic.outbox.claim("w2") == []  # leased to w1
    c.lic.outbox.done(ids[0], "w1")
    c.lic.outbox.done(ids[1], "w2")  # not w2's lease: ignored
    assert c.lic.outbox.counts() == {"sent": 1, "pending": 1}
    c.clock.advance(seconds=61)  # w1's lease ran out: the message is due again
    again = c.lic.outbox.claim("w2")
    assert [(i.id, i.attempts) for i in again] == [(ids[1], 2)]
    c.lic.outbox.done(ids[1], "w1")  # the crashed worker's late answer does not count
    assert c.lic.outbox.counts() == {"sent": 1, "pending": 1}
    c.lic.outbox.done(ids[1], "w2")
    assert c.lic.outbox.counts() == {"sent": 2}
    assert outbox(c.db)[1].sent_at == c.clock.now


def test_outbox_retry_and_give_up(c):
    mid = _queue_two(c)[0]
    c.lic.outbox.claim("w", limit=1)
    c.lic.outbox.retry(mid, "w", timedelta(seconds=30), "429 Too Many Requests")
    assert c.lic.outbox.claim("w", limit=5)[0].id != mid  # the other one; this one waits
    c.clock.advance(seconds=31)
    [item] = c.lic.outbox.claim("w", limit=5)
    assert (item.id, item.attempts) == (mid, 2)
    [m] = [m for m in outbox(c.db) if m.id == mid]
    assert m.last_error == "429 Too Many Requests"
    from core.services.shared import MAX_OUTBOX_ATTEMPTS

    for _ in range(MAX_OUTBOX_ATTEMPTS):
        c.lic.outbox.retry(mid, "w", timedelta(0), "502")
        c.lic.outbox.claim("w", limit=5)
    assert c.lic.outbox.counts().get("failed") == 1


def test_outbox_unreachable_marks_the_user(c):
    mid = _queue_two(c)[0]
    c.lic.outbox.claim("w")
    c.lic.outbox.unreachable(mid, "w", "403 bot blocked")
    with c.db.read() as s:
        m = s.get(OutboxMessage, mid)
        assert (m.status, m.last_error) == ("unreachable", "403 bot blocked")
        assert s.get(User, m.user_id).unreachable is True
        aad = s.get(User, m.user_id).aad_object_id
    assert c.lic.addresses.save_address(TENANT, aad, ChatAddress("new"))
    with c.db.read() as s:
        assert s.get(User, c.users["Christie Gupta"]).unreachable is False
    assert not c.lic.addresses.save_address(TENANT, "nobody", ChatAddress(""))
