"""The licensing schema (SQLAlchemy 2 ORM). Created and upgraded by Alembic only."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.db import UTCDateTime
from core.views import ChatAddress

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict: JSON, list: JSON}


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    billing_ref: Mapped[str | None] = mapped_column(String(120))  # payment provider's customer id
    created_at: Mapped[datetime]


class AccountTenant(Base):
    __tablename__ = "account_tenants"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)


class AccountDomain(Base):
    __tablename__ = "account_domains"
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    domain: Mapped[str] = mapped_column(String(253), primary_key=True)


class Discount(Base):
    __tablename__ = "discounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    label: Mapped[str] = mapped_column(String(200))
    percent_off: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]
    __table_args__ = (CheckConstraint("percent_off >= 0 AND percent_off <= 100", name="percent"),)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    aad_object_id: Mapped[str] = mapped_column(String(64))
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    sort_key: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(10))
    unreachable: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[datetime]
    __table_args__ = (
        UniqueConstraint("account_id", "aad_object_id", name="uq_users_account_aad"),
        Index("ix_users_account_sort", "account_id", "sort_key", "id"),
        Index("ix_users_account_email", "account_id", "email"),
        # (an account's administrators, read on every quote card: not a scan of all its users)
        Index("ix_users_account_role", "account_id", "role"),
        CheckConstraint("role IN ('admin', 'member')", name="role"),
    )


class UserTerm(Base):
    """Search terms of a user (words of the name, e-mail and its local part), lower-cased
    and accent-folded; searched by prefix through an index range, never a full scan."""

    __tablename__ = "user_terms"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    # byte order on PostgreSQL, so that the prefix range [w, w+1) is exact whatever the locale
    term: Mapped[str] = mapped_column(String(320).with_variant(String(320, collation="C"), "postgresql"),
                                      primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    __table_args__ = (Index("ix_user_terms_account_term", "account_id", "term", "user_id"),)


class Subscription(Base):
    """An account's billing cycle for one interval: every pool of that interval shares it."""

    __tablename__ = "subscriptions"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    interval: Mapped[str] = mapped_column(String(5))
    anchor_at: Mapped[datetime]
    period_number: Mapped[int] = mapped_column(Integer, default=0)
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    external_ref: Mapped[str | None] = mapped_column(String(120))  # provider subscription id
    created_at: Mapped[datetime]
    __table_args__ = (
        UniqueConstraint("account_id", "interval", name="uq_subscriptions_account_interval"),
        CheckConstraint("interval IN ('month', 'year')", name="interval"),
    )


class Pool(Base):
    __tablename__ = "pools"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"))
    plan_code: Mapped[str] = mapped_column(String(40))
    quantity: Mapped[int]
    removal_scheduled: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[datetime]
    __table_args__ = (
        UniqueConstraint("subscription_id", "plan_code", name="uq_pools_subscription_plan"),
        CheckConstraint("quantity >= 0", name="quantity"),
        CheckConstraint("removal_scheduled >= 0 AND removal_scheduled <= quantity", name="removal"),
    )


class Seat(Base):
    """A user's assignment to a pool: at most one per family per user."""

    __tablename__ = "seats"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    family: Mapped[str] = mapped_column(String(40))
    sort_key: Mapped[str] = mapped_column(String(200))  # the user's, for paging without a sort
    assigned_at: Mapped[datetime]
    # since when the seat has its current plan: its assignment, unless an upgrade or a downgrade came later
    plan_since: Mapped[datetime] = mapped_column(default=lambda ctx: ctx.get_current_parameters()["assigned_at"])
    downgrade_to: Mapped[str | None] = mapped_column(String(40))  # plan code, applied at period end
    __table_args__ = (
        UniqueConstraint("user_id", "family", name="uq_seats_user_family"),
        Index("ix_seats_pool_sort", "pool_id", "sort_key", "user_id"),
        # the few seats with a downgrade scheduled (renewal amounts, roll-over) without a scan
        Index("ix_seats_downgrading", "pool_id", "downgrade_to", sqlite_where=text("downgrade_to IS NOT NULL"),
              postgresql_where=text("downgrade_to IS NOT NULL")),
    )


class Quote(Base):
    __tablename__ = "quotes"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[str] = mapped_column(String(10))  # upgrade | purchase
    status: Mapped[str] = mapped_column(String(16))  # open | paid | cancelled | expired | refund_needed
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]
    priced_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    currency: Mapped[str] = mapped_column(String(3))
    pool_id: Mapped[int | None] = mapped_column(ForeignKey("pools.id"))
    from_plan: Mapped[str | None] = mapped_column(String(40))
    to_plan: Mapped[str | None] = mapped_column(String(40))
    user_ids: Mapped[list] = mapped_column(JSON, default=list)
    lines: Mapped[list] = mapped_column(JSON, default=list)
    discount_label: Mapped[str | None] = mapped_column(String(200))
    discount_percent: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    gross: Mapped[int]
    discount: Mapped[int]
    due_now: Mapped[int]
    # owed now but below the provider's minimum charge: added to the next invoice, not due now
    carried: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    renewal_amount: Mapped[int]
    renewal_date: Mapped[datetime]
    request_id: Mapped[int | None] = mapped_column(Integer)
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)
    # The provider replays its first answer to an idempotency key (errors included): each attempt
    # at the payment link / at carrying the amount forward has its own key, numbered here. A retry
    # after no answer reuses it; the attempt after a definite answer takes the next number.
    link_attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    link_attempt_at: Mapped[datetime | None]  # when that link attempt began (None: the quote's creation)
    carry_attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    payment_lapsed: Mapped[str | None] = mapped_column(String(16))  # the last link's payment: failed | expired
    __table_args__ = (
        Index("ix_quotes_account_status", "account_id", "status"),
        Index("ix_quotes_open_expiry", "expires_at", sqlite_where=text("status = 'open'"),
              postgresql_where=text("status = 'open'")),  # the expiry sweep
        CheckConstraint("status IN ('open', 'paid', 'cancelled', 'expired', 'refund_needed')", name="status"),
    )


class QuoteHold(Base):
    """A seat held by an open quote; the primary key makes a second hold impossible."""

    __tablename__ = "quote_holds"
    seat_id: Mapped[int] = mapped_column(ForeignKey("seats.id", ondelete="CASCADE"), primary_key=True)
    quote_id: Mapped[str] = mapped_column(ForeignKey("quotes.id"), index=True)
    expires_at: Mapped[datetime]


class Payment(Base):
    __tablename__ = "payments"
    id: Mapped[int] = mapped_column(primary_key=True)
    quote_id: Mapped[str] = mapped_column(ForeignKey("quotes.id"), unique=True)
    provider: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(Text)
    # pending | paid | failed | expired; closing (its quote closed: the provider is asked to close the
    # link) | closed (the provider confirmed it can no longer be paid)
    status: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    payer_email: Mapped[str | None] = mapped_column(String(254))  # who paid, when the provider tells it
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    __table_args__ = (UniqueConstraint("provider", "external_id", name="uq_payments_provider_external"),)


class PaymentEventRecord(Base):
    """Each provider event id is processed once: the primary key refuses a replay."""

    __tablename__ = "payment_events"
    provider: Mapped[str] = mapped_column(String(20), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    quote_id: Mapped[str | None] = mapped_column(String(32))
    result: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[datetime]


class UpgradeRequest(Base):
    __tablename__ = "upgrade_requests"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    family: Mapped[str] = mapped_column(String(40))
    from_plan: Mapped[str | None] = mapped_column(String(40))
    to_plan: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10))  # pending | approved | declined
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]
    decline_reason: Mapped[str | None] = mapped_column(Text)
    quote_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    __table_args__ = (
        Index("ix_upgrade_requests_account_status", "account_id", "status"),
        Index(
            "uq_upgrade_requests_pending",
            "requester_id",
            "family",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )


class AuditEvent(Base):
    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str | None] = mapped_column(String(320))  # name or aadObjectId, for people reading the log
    action: Mapped[str] = mapped_column(String(60))
    outcome: Mapped[str] = mapped_column(String(10))  # ok | refused
    target: Mapped[str | None] = mapped_column(String(200))
    message: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    __table_args__ = (Index("ix_audit_events_account_id", "account_id", "id"),)


class OutboxMessage(Base):
    """A message to deliver after the transaction that wrote it commits (transactional outbox)."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    channel: Mapped[str] = mapped_column(String(10))  # chat | card | billing
    kind: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    payload: Mapped[dict] = mapped_column(JSON)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | sent | failed | unreachable
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime]
    locked_by: Mapped[str | None] = mapped_column(String(80))
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    __table_args__ = (
        Index("ix_outbox_status_available", "status", "available_at"),
        Index("ix_outbox_status_account_available", "status", "account_id", "available_at"),  # claims by account
        Index("ix_outbox_locked_until", "locked_until"),  # live leases
    )


class _Addressed:
    """The columns of a :class:`~core.views.ChatAddress` (``ref`` opaque to the core)."""

    ref: Mapped[str] = mapped_column(Text)
    chat_user_id: Mapped[str | None] = mapped_column(String(256))
    locale: Mapped[str | None] = mapped_column(String(20))
    timezone: Mapped[str | None] = mapped_column(String(64))

    @property
    def address(self) -> ChatAddress:
        return ChatAddress(ref=self.ref, chat_user_id=self.chat_user_id, locale=self.locale, timezone=self.timezone)


def address_columns(address: ChatAddress) -> dict:
    """The column values of an address (for inserts and updates)."""
    return {"ref": address.ref, "chat_user_id": address.chat_user_id, "locale": address.locale,
            "timezone": address.timezone}


class DeliveryAddress(_Addressed, Base):
    """Where to reach a user proactively: an address given by the chat layer."""

    __tablename__ = "delivery_addresses"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    updated_at: Mapped[datetime]


class PostedCard(_Addressed, Base):
    """A card shown in a chat about a quote or a request, to update in place later."""

    __tablename__ = "posted_cards"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    subject: Mapped[str] = mapped_column(String(20))  # quote | request
    subject_id: Mapped[str] = mapped_column(String(40))
    message_ref: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    # its reader is acting on it: an in-place update waits until the action answered (or this passed)
    answering_until: Mapped[datetime | None]
    __table_args__ = (
        UniqueConstraint("subject", "subject_id", "message_ref", name="uq_posted_cards_subject_message"),
        Index("ix_posted_cards_message", "message_ref"),  # what a message shows (after an action on it)
    )
