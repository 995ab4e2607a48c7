"""The closed sets of words the database, the chat layer and the payment layer share: outbox
kinds and channels, audit actions and outcomes, the statuses of quotes, payments, requests and
outbox messages.

Each is a ``StrEnum``: a member equals its string, so the rows already stored, the migrations'
CHECK constraints and any test comparing with a literal see the same values. Adding a kind or
an action here is what makes the tests ask for its renderer or its words (tests/test_kinds.py).
"""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    """Who delivers an outbox message."""

    CHAT = "chat"  # a new card in the user's chat (the notifier; rendered by a flow's notification)
    CARD = "card"  # a card shown earlier, updated in place (the notifier; a flow's card update)
    BILLING = "billing"  # a call to the payment provider (the billing worker, web/workers.py)


class OutboxKind(StrEnum):
    """What an outbox message is about; :attr:`channel` says who delivers it."""

    LICENSE_ASSIGNED = "license_assigned"
    LICENSE_UNASSIGNED = "license_unassigned"
    LICENSE_UPGRADED = "license_upgraded"
    DOWNGRADE_SCHEDULED = "downgrade_scheduled"
    DOWNGRADE_CANCELLED = "downgrade_cancelled"
    DOWNGRADE_APPLIED = "downgrade_applied"
    REQUEST_CREATED = "request_created"
    REQUEST_APPROVED = "request_approved"
    REQUEST_DECLINED = "request_declined"
    REQUEST_REOPENED = "request_reopened"
    PURCHASE_PAID = "purchase_paid"
    REFUND_NEEDED = "refund_needed"
    QUOTE_CARD = "quote_card"
    REQUEST_CARD = "request_card"
    CARRY_FORWARD = "carry_forward"
    CLOSE_LINK = "close_link"
    SYNC_SUBSCRIPTION = "sync_subscription"

    @property
    def channel(self) -> Channel:
        return _CHANNEL_OF.get(self, Channel.CHAT)


_CHANNEL_OF = {
    OutboxKind.QUOTE_CARD: Channel.CARD,
    OutboxKind.REQUEST_CARD: Channel.CARD,
    OutboxKind.CARRY_FORWARD: Channel.BILLING,
    OutboxKind.CLOSE_LINK: Channel.BILLING,
    OutboxKind.SYNC_SUBSCRIPTION: Channel.BILLING,
}


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    UNREACHABLE = "unreachable"


class Outcome(StrEnum):
    """An audit event's outcome."""

    OK = "ok"
    REFUSED = "refused"


class AuditAction(StrEnum):
    """Every action name written to the audit log by the core, the chat layer and the web
    routes. An ``OK`` event says what happened; a refusal what was attempted. A refused card
    step is audited as ``card.<verb>`` (:meth:`card`), said generically."""

    # what happened (outcome "ok")
    DEMO_LOADED = "demo.loaded"
    QUOTE_UPGRADE = "quote.upgrade"
    QUOTE_PURCHASE = "quote.purchase"
    PAYMENT_LINK_CREATED = "payment.link_created"
    QUOTE_CANCELLED = "quote.cancelled"
    QUOTE_EXPIRED = "quote.expired"
    QUOTE_CONFIRMED = "quote.confirmed"
    QUOTE_SETTLED = "quote.settled"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_EXPIRED = "payment.expired"
    PAYMENT_REFUND_NEEDED = "payment.refund_needed"
    PAYMENT_UNKNOWN_QUOTE = "payment.unknown_quote"
    SEAT_ASSIGNED = "seat.assigned"
    SEAT_UNASSIGNED = "seat.unassigned"
    SEAT_DOWNGRADED = "seat.downgraded"
    SEATS_REMOVAL_SCHEDULED = "seats.removal_scheduled"
    SEATS_REMOVAL_CANCELLED = "seats.removal_cancelled"
    SEATS_REMOVED = "seats.removed"
    DOWNGRADE_SCHEDULED = "downgrade.scheduled"
    DOWNGRADE_CANCELLED = "downgrade.cancelled"
    PERIOD_ROLLED_OVER = "period.rolled_over"
    USER_ADDED = "user.added"
    REQUEST_CREATED = "request.created"
    REQUEST_APPROVED = "request.approved"
    REQUEST_DECLINED = "request.declined"
    REQUEST_REOPENED = "request.reopened"
    AUDIT_EXPORTED = "audit.exported"
    # what was attempted (outcome "refused")
    WHOAMI = "whoami"
    ADMIN = "admin"
    POOLS_LIST = "pools.list"
    POOL_VIEW = "pool.view"
    POOL_USERS = "pool.users"
    POOL_ROWS = "pool.rows"
    DIRECTORY_SEARCH = "directory.search"
    DIRECTORY_ROWS = "directory.rows"
    DIRECTORY_USER = "directory.user"
    DIRECTORY_LOOKUP = "directory.lookup"
    SEATS_REMOVE_PREVIEW = "seats.remove_preview"
    REQUESTS_MINE = "requests.mine"
    RATE_LIMITED = "rate.limited"
    UPGRADE_OPTIONS = "upgrade.options"
    DOWNGRADE_OPTIONS = "downgrade.options"
    CART_PREVIEW = "cart.preview"
    QUOTE_VIEW = "quote.view"
    QUOTE_CANCEL = "quote.cancel"
    QUOTE_CONFIRM = "quote.confirm"
    PAYMENT_LINK = "payment.link"
    SEAT_ASSIGN = "seat.assign"
    SEAT_UNASSIGN = "seat.unassign"
    SEATS_REMOVE = "seats.remove"
    SEATS_REMOVE_CANCEL = "seats.remove_cancel"
    DOWNGRADE_SCHEDULE = "downgrade.schedule"
    DOWNGRADE_CANCEL = "downgrade.cancel"
    MY_LICENSE = "my_license"
    USER_ADD = "user.add"
    REQUEST_CREATE = "request.create"
    REQUEST_VIEW = "request.view"
    REQUESTS_LIST = "requests.list"
    REQUEST_APPROVE = "request.approve"
    REQUEST_DECLINE = "request.decline"
    AUDIT_LIST = "audit.list"
    AUDIT_EXPORT = "audit.export"
    BUY_START = "buy.start"
    BUY_CART = "buy.cart"
    BUY_ADD = "buy.add"
    BUY_CHECKOUT = "buy.checkout"
    ASSIGN_START = "assign.start"
    ASSIGN_SEARCH = "assign.search"
    CARD_UNKNOWN_VERB = "card.unknown_verb"
    CARD_MALFORMED = "card.malformed"
    TENANT_REFUSED = "tenant.refused"

    @staticmethod
    def card(verb: str) -> str:
        """The action of a refused card step (a verb, or a text command: ``card.<verb>``)."""
        return f"card.{verb}"

    @staticmethod
    def command(name: str) -> str:
        """The action of a refused text command (``command.<name>``)."""
        return f"command.{name}"


class QuoteKind(StrEnum):
    UPGRADE = "upgrade"
    PURCHASE = "purchase"


class QuoteStatus(StrEnum):
    OPEN = "open"
    PAID = "paid"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REFUND_NEEDED = "refund_needed"


class PaymentStatus(StrEnum):
    """A payment link's state: closing (its quote closed: the provider is asked to close the
    link), closed (the provider confirmed that it can no longer be paid)."""

    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    CLOSING = "closing"
    CLOSED = "closed"


class PaymentEventKind(StrEnum):
    """What a payment provider's event says about a link."""

    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    IGNORED = "ignored"


class RequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"
