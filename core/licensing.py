"""The licensing core: every chat flow is a call into one of the use cases :class:`Licensing`
holds (``lic.seats.assign(...)``, ``lic.quotes.quote_upgrade(...)``...).

Each public operation takes the :class:`~core.views.Actor` asking, re-reads the account and
re-checks every id and right (the server decides; card data is never trusted), does its work
in one unit of work (:mod:`core.unit_of_work`: one transaction, or the flow's unit it joins),
and returns plain views. A refused operation raises a :class:`~core.errors.DomainError`,
writes nothing but its audit event, and the message it carries is fit for a person.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from core.catalog import Catalog
from core.db import Database, utcnow
from core.payments import LinkTraits, PaymentGateway
from core.services.accounts import Accounts
from core.services.addresses import Addresses
from core.services.audit_log import AuditLog
from core.services.downgrades import Downgrades
from core.services.outbox import Outbox
from core.services.payment_links import PaymentLinks
from core.services.periods import BillingPeriods
from core.services.plans import PlanViews
from core.services.pools import Pools
from core.services.quotes import Quotes
from core.services.seats import Seats
from core.services.settlement import Settlement
from core.services.upgrade_requests import UpgradeRequests
from core.unit_of_work import Units


class Licensing:
    """The container of the use cases (built once; each gets what it needs by constructor)."""

    def __init__(
        self,
        db: Database,
        catalog: Catalog | None = None,
        gateway: PaymentGateway | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        quote_ttl: timedelta = timedelta(minutes=30),
        link_traits: Mapping[str, LinkTraits] | None = None,
    ):
        """``link_traits``: how each payment provider's links are treated (the registry's, for
        every provider a stored payment may name); by default the given gateway's."""
        self.db = db
        self.catalog = catalog or Catalog.load()
        self.gateway = gateway
        self.clock = clock
        self.quote_ttl = quote_ttl
        if link_traits is None:
            link_traits = {gateway.name: gateway.link_traits} if gateway is not None else {}
        self.units = units = Units(db, self.catalog, clock, link_traits)
        self.plan_views = PlanViews(self.catalog)
        self.accounts = Accounts(units)
        self.periods = BillingPeriods(units)
        self.pools = Pools(units, self.plan_views)
        self.seats = Seats(units, self.plan_views, self.pools)
        self.downgrades = Downgrades(units, self.plan_views, self.pools)
        self.settlement = Settlement(units)
        self.quotes = Quotes(units, self.plan_views, self.settlement, gateway, quote_ttl)
        self.addresses = Addresses(units)
        self.links = PaymentLinks(units, self.quotes, self.addresses, gateway)
        self.requests = UpgradeRequests(units, self.plan_views, self.quotes)
        self.audit = AuditLog(units, self.accounts)
        self.outbox = Outbox(units)

    def now(self) -> datetime:
        return self.units.now()
