"""The buying flow: catalog and cart (one card) → checkout (a purchase quote, shown by the
shared quote card with its payment link) → paid (the quote card turns into the paid summary,
the buyer is told and the seats are in the pools).

The cart lives in the actions' data (``{"cart": [{plan, interval, quantity}, ...]}``) and is
priced again by the core on every step (``cart_preview``: no quote is created before
Checkout). Checkout carries a key chosen when the cart card was shown: it becomes the quote's
id, so a second click returns the same quote instead of a second one."""

from __future__ import annotations

import uuid

from cards import purchase
from cards.data import BuyStart, Cart, CartLine
from cards.i18n import Reader, T
from cards.verbs import Verb
from core.catalog import INTERVALS
from core.errors import DomainError, Message, NotAdmin, UnknownCaller
from core.kinds import AuditAction, OutboxKind, QuoteKind, QuoteStatus
from core.licensing import Licensing
from core.views import CallerView, QuoteView
from dialogs.base import CardDataError, CommandSpec, Flow, Turn
from dialogs.quotes import QuoteFlow

MAX_LINES = purchase.MAX_LINES


class BuyFlow(Flow):
    def __init__(self, lic: Licensing, quotes: QuoteFlow):
        super().__init__(lic)
        self.quotes = quotes
        quotes.on_back(QuoteKind.PURCHASE, self.back_from_quote)
        self.commands = {"buy": CommandSpec(self.cmd_buy, True)}
        self.actions = {
            Verb.BUY_START: self.start,
            Verb.BUY_ADD: self.add,
            Verb.BUY_CART: self.cart,
            Verb.BUY_CHECKOUT: self.checkout,
        }
        self.notifications = {OutboxKind.PURCHASE_PAID: self.paid_notice, OutboxKind.REFUND_NEEDED: self.refund_notice}

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def cart_of(data: dict) -> list[dict]:
        """The cart carried by the card (shape only: the core validates the content)."""
        return Cart.parse(data).lines

    def preview(self, turn: Turn, cart: list[dict]) -> QuoteView | None:
        return self.lic.quotes.cart_preview(turn.actor, cart) if cart else None

    def render(self, turn: Turn, caller: CallerView, preview: QuoteView | None, *, plan=None, interval=None,
               note: str | None = None) -> dict:
        plans = [p for p in self.lic.plan_views.plans() if p.currency == caller.currency]
        return purchase.buy_card(turn.reader, plans, dict(self.lic.catalog.families), caller.currency, preview,
                                 key=uuid.uuid4().hex, plan=plan if isinstance(plan, str) else None,
                                 interval=interval if interval in INTERVALS else None, note=note)

    def priced_or_emptied(self, turn: Turn, cart: list[dict]) -> tuple[QuoteView | None, str | None]:
        """The cart priced; a cart the core refuses (already audited there) is emptied, with why."""
        try:
            return self.preview(turn, cart), None
        except (NotAdmin, UnknownCaller):
            raise
        except DomainError as e:
            return None, T(turn.reader)("purchase.bad_cart", reason=e.message)

    # ------------------------------------------------------------------ steps

    def cmd_buy(self, turn: Turn) -> dict:
        return self.start(turn, {})

    def start(self, turn: Turn, data: dict) -> dict:
        """The catalog with an empty cart; ``plan``/``interval`` pre-select the form."""
        caller = self.lic.accounts.require_admin(turn.actor, AuditAction.BUY_START)
        wanted = BuyStart.parse(data)
        return self.render(turn, caller, None, plan=wanted.plan, interval=wanted.interval)

    def cart(self, turn: Turn, data: dict) -> dict:
        """The cart card for the cart in the data (a line removed, or back from the quote)."""
        with self.lic.units.reading(turn.actor):  # (one snapshot for the card)
            caller = self.lic.accounts.require_admin(turn.actor, AuditAction.BUY_CART)
            preview, note = self.priced_or_emptied(turn, self.cart_of(data))
            return self.render(turn, caller, preview, note=note)

    def back_from_quote(self, turn: Turn, q: QuoteView) -> dict:
        """Back from a purchase quote: its cart again."""
        cart = Cart(tuple(CartLine(ln.plan_code, ln.interval, ln.quantity) for ln in q.lines))
        return self.cart(turn, cart.to_data())

    def add(self, turn: Turn, data: dict) -> dict:
        """Add the form's line to the cart; a bad line leaves the cart as it was, and says why."""
        with self.lic.units.reading(turn.actor):  # (one snapshot: the cart priced before and after)
            return self._add(turn, data)

    def _add(self, turn: Turn, data: dict) -> dict:
        caller = self.lic.accounts.require_admin(turn.actor, AuditAction.BUY_ADD)
        cart = self.cart_of(data)
        preview, note = self.priced_or_emptied(turn, cart)
        if note:
            return self.render(turn, caller, None, note=note)
        plan, interval = data.get("plan"), data.get("interval")
        line = {"plan": plan, "interval": interval, "quantity": data.get("qty")}
        try:
            added = self.lic.quotes.cart_preview(turn.actor, [*cart, line])
        except (NotAdmin, UnknownCaller):
            raise
        except DomainError as e:  # audited by the core
            return self.render(turn, caller, preview, plan=plan, interval=interval,
                               note=T(turn.reader)("purchase.refused", reason=e.message))
        return self.render(turn, caller, added, plan=plan, interval=interval)

    def checkout(self, turn: Turn, data: dict) -> dict:
        """The purchase quote for the cart (created once per cart card), with its payment link."""
        self.lic.accounts.require_admin(turn.actor, AuditAction.BUY_CHECKOUT)
        checkout = Cart.parse(data)
        cart, key = checkout.lines, checkout.qkey
        if key is None or not cart:
            raise CardDataError(Message("This cart card is not valid, or its cart is empty. Start again with “buy”."))
        started = self.lic.now()
        created = self.quotes.create(turn, lambda: self.lic.quotes.quote_purchase(turn.actor, cart, quote_id=key))
        quote = created.quote
        note = None
        if quote.created_at < started or quote.status != QuoteStatus.OPEN:
            note = T(turn.reader)("purchase.already")
        return self.quotes.show_quote(turn, quote.id, note=note, created=created)

    # ------------------------------------------------------------------ notifications

    def paid_notice(self, item, locale: Reader | str | None) -> dict | None:
        q = self.lic.quotes.quote_snapshot(str(item.payload.get("quote_id") or ""))
        return purchase.purchase_paid_notice(locale, q) if q else None

    def refund_notice(self, item, locale: Reader | str | None) -> dict:
        q = self.lic.quotes.quote_snapshot(str(item.payload.get("quote_id") or ""))
        reason = item.payload.get("reason")
        return purchase.refund_notice(locale, q, reason if isinstance(reason, str) else "")

