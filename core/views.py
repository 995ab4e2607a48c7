"""What the core returns: plain, immutable data (no ORM objects leave the core)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, NamedTuple


@dataclass(frozen=True)
class Actor:
    """Who is asking, as the chat layer knows them (tenant id + Azure AD object id)."""

    tenant_id: str
    aad_object_id: str
    name: str | None = None


SYSTEM = "system"  # who the audit log names for what the system does on its own (no caller)


@dataclass(frozen=True)
class ChatAddress:
    """Where the chat layer can reach a person later (proactive messages, cards updated in
    place). ``ref`` is the chat layer's own serialisation of the conversation: the core stores
    and returns it and never looks inside. The facts the core needs are given beside it:
    ``chat_user_id`` (the id the chat layer knows the person by, e.g. a card's refresh
    ``userIds``; None when it only knows their directory id), and the ``locale`` and IANA
    ``timezone`` they told (None: not told by this activity, the known ones are kept)."""

    ref: str
    chat_user_id: str | None = None
    locale: str | None = None
    timezone: str | None = None


@dataclass(frozen=True)
class CallerView:
    account_id: int
    account_name: str
    currency: str
    user_id: int
    name: str
    email: str
    role: str
    tenant_id: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class PlanView:
    code: str
    name: str
    family: str
    family_name: str
    rank: int
    currency: str
    month: int
    year: int

    def price(self, interval: str) -> int:
        return self.month if interval == "month" else self.year


@dataclass(frozen=True)
class PoolView:
    id: int
    plan_code: str
    plan_name: str
    family: str
    rank: int
    interval: str
    quantity: int
    assigned: int
    removal_scheduled: int
    downgrades_out: int
    unit_price: int
    currency: str
    period_start: datetime
    renewal_date: datetime
    renewal_quantity: int
    renewal_amount: int  # next period, this pool's plan, with the discount active then

    @property
    def free(self) -> int:
        return self.quantity - self.assigned

    @property
    def assignable(self) -> int:
        return self.quantity - self.assigned - self.removal_scheduled


@dataclass(frozen=True)
class UserRow:
    id: int
    name: str
    email: str
    plan_code: str | None = None
    downgrade_to: str | None = None
    held_until: datetime | None = None  # held by an open quote
    downgrade_to_name: str | None = None


class PageKey(NamedTuple):
    """A row of a pool's users order that a users card's paging button names (keyset paging):
    the rows after it (Next, from the last row shown), from it on (the same page again, from its
    first row) or before it (Previous, from the first row). Never trusted: :meth:`of` checks one
    given by card data."""

    rel: Literal["after", "at", "before"]
    row: tuple[str, int]  # (sort key, user id), as Page.first_key / last_key

    @classmethod
    def of(cls, value: object) -> PageKey | None:
        """``value`` as a key when it is one (a user id within the 32-bit INTEGER column, a sort
        key of at most 200 characters); anything else None: the page is then found by its number."""
        if not (isinstance(value, tuple | list) and len(value) == 2 and value[0] in ("after", "at", "before")):
            return None
        rel, row = value
        if not (isinstance(row, tuple | list) and len(row) == 2 and isinstance(row[0], str) and len(row[0]) <= 200
                and isinstance(row[1], int) and not isinstance(row[1], bool) and 0 < row[1] < 2**31):
            return None
        return cls(rel, (row[0], row[1]))


@dataclass(frozen=True)
class Page:
    items: list
    total: int
    page: int
    page_size: int
    query: str = ""
    # (sort key, user id) of the first and last row shown: the card's Previous and Next ask for
    # the rows before and after them (keyset paging), the same page again for those from the first
    first_key: tuple[str, int] | None = None
    last_key: tuple[str, int] | None = None

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    @property
    def has_next(self) -> bool:
        return (self.page + 1) * self.page_size < self.total

    @property
    def has_prev(self) -> bool:
        return self.page > 0


@dataclass(frozen=True)
class QuoteLineView:
    kind: str  # credit | charge | purchase
    plan_code: str
    plan_name: str
    interval: str
    quantity: int
    unit_price: int
    fraction: str
    gross: int
    amount: int
    period_start: datetime
    period_end: datetime
    renewal_amount: int
    new_period: bool


@dataclass(frozen=True)
class RenewalView:
    """One renewal date of a quote's seats and what it bills then (a cart may mix intervals:
    a monthly line renews before a yearly one)."""

    date: datetime
    amount: int


@dataclass(frozen=True)
class QuoteView:
    id: str
    kind: str
    status: str  # open | paid | cancelled | expired | refund_needed
    account_id: int
    currency: str
    created_by: int
    created_by_name: str
    created_at: datetime
    priced_at: datetime
    expires_at: datetime
    pool_id: int | None
    from_plan: str | None
    from_plan_name: str | None
    to_plan: str | None
    to_plan_name: str | None
    interval: str | None
    users: list[UserRow]
    lines: list[QuoteLineView]
    gross: int
    discount: int
    discount_label: str | None
    discount_percent: Decimal | None
    due_now: int
    renewal_amount: int  # the next renewal (renewals[0]): what it bills ...
    renewal_date: datetime  # ... and when
    payment_url: str | None = None
    payment_provider: str | None = None
    closed_at: datetime | None = None
    note: str | None = None
    request_id: int | None = None
    carried: int = 0  # owed now, below the payment minimum: added to the next invoice (due_now is 0)
    payment_lapsed: str | None = None  # the previous payment link's outcome: "failed" | "expired"
    # the link's state: pending | paid | closing (quote closed, the provider asked to close it) | closed
    payment_status: str | None = None
    renewals: tuple[RenewalView, ...] = ()  # every renewal date of the quote's lines, earliest first
    # once paid: the receipt (paid_by: the payer's e-mail when the provider told it, else None)
    paid_at: datetime | None = None
    paid_amount: int | None = None
    paid_by: str | None = None
    payment_reference: str | None = None
    notices_total: int = 0  # the users' "license upgraded" messages of a paid upgrade ...
    notices_delivered: int = 0  # ... and how many of them were delivered
    notices_unreachable: int = 0  # ... and how many could not be (the user cannot be reached in chat)


@dataclass(frozen=True)
class SeatView:
    plan_code: str
    plan_name: str
    family: str
    interval: str
    pool_id: int
    since: datetime
    renewal_date: datetime
    downgrade_to: str | None
    downgrade_to_name: str | None
    higher_plans: list[PlanView] = field(default_factory=list)


@dataclass(frozen=True)
class RequestView:
    id: int
    status: str
    requester_id: int
    requester_name: str
    requester_email: str
    family: str
    from_plan: str | None
    from_plan_name: str | None
    to_plan: str
    to_plan_name: str
    reason: str | None
    created_at: datetime
    decided_by_name: str | None
    decided_at: datetime | None
    decline_reason: str | None
    quote_id: str | None
    account_id: int = 0


@dataclass(frozen=True)
class AuditRow:
    id: int
    created_at: datetime
    actor: str | None
    tenant_id: str | None
    action: str
    outcome: str
    target: str | None
    message: str | None  # a core.errors.Message when its template was stored with the row (the reader's language)


@dataclass(frozen=True)
class LinkedQuote:
    """A quote as the payer of its payment link sees it, on a provider's page."""

    quote: QuoteView
    account_name: str


@dataclass(frozen=True)
class EventResult:
    """The outcome of a payment event: settled, duplicate, already_paid, refund_needed, ..."""

    result: str
    quote_id: str | None = None


@dataclass(frozen=True)
class OutboxItem:
    id: int
    account_id: int
    channel: str
    kind: str
    user_id: int | None
    payload: dict
    attempts: int
    address: ChatAddress | None = None
    tenant_id: str | None = None
    aad_object_id: str | None = None
