"""The steps every quote shares, whatever journey made it (an upgrade, a purchase, an approved
request): its card with the payment link, refresh, cancel, back, confirm; its in-place update;
and the card shown when a step finds the quote no longer open.

Back goes to the step before the quote, which the journey that made it knows: each registers
it for its kind of quote (:meth:`QuoteFlow.on_back`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import NamedTuple

from cards import common, upgrade
from cards.data import QuoteRef
from cards.i18n import Reader, T
from cards.verbs import Verb
from core.errors import DomainError, PaymentRefused, PaymentUnavailable, QuoteNotOpen
from core.kinds import OutboxKind, PaymentStatus, QuoteKind, QuoteStatus
from core.licensing import Licensing
from core.services.payment_links import LinkPlan
from core.views import QuoteView
from dialogs.base import Flow, Turn

BackStep = Callable[[Turn, QuoteView], dict]  # (turn, the quote just cancelled) -> the card before it


class Created(NamedTuple):
    """A quote as its step just wrote it, the chat ids of the account's administrators (the
    card's ``admins``) and what its payment link needs (None: no link to make, or the read was
    refused: :meth:`QuoteFlow.show_quote` reads it again and says why), read in the same
    transaction."""

    quote: QuoteView
    admins: list[str]
    link: LinkPlan | None = None


def _needs_link(q: QuoteView) -> bool:
    """Whether the quote's card makes its payment link (on first show)."""
    return q.status == QuoteStatus.OPEN and q.due_now > 0 and not q.payment_url


class QuoteFlow(Flow):
    def __init__(self, lic: Licensing):
        super().__init__(lic)
        self.actions = {
            Verb.QUOTE_REFRESH: self.quote_refresh,
            Verb.QUOTE_CANCEL: self.quote_cancel,
            Verb.QUOTE_BACK: self.quote_back,
            Verb.QUOTE_CONFIRM: self.quote_confirm,
        }
        self.card_updates = {OutboxKind.QUOTE_CARD: self.quote_card_update}
        self.recoveries = {QuoteNotOpen: self.not_open}
        self.back_steps: dict[QuoteKind, BackStep] = {}

    def on_back(self, kind: QuoteKind, step: BackStep) -> None:
        """Back from a quote of this kind shows ``step``'s card."""
        self.back_steps[kind] = step

    def create(self, turn: Turn, make: Callable[[], QuoteView]) -> Created:
        """The quote ``make`` writes (a core command), whom its card is kept live for and what its
        payment link needs, read in the quote's own write unit (one transaction, not one more for
        the card's ``admins`` and one more for the link's read: the provider is called after it)."""

        def step() -> Created:
            q = make()
            link = None
            if _needs_link(q):
                with contextlib.suppress(DomainError):  # (a read: refused, it is read and audited again)
                    link = self.lic.links.plan_link(turn.actor, q.id)
            return Created(q, self.admins(q.account_id), link)

        return self.lic.units.writing(turn.actor, step)

    def show_quote(self, turn: Turn, quote_id: str, note: str | None = None, *,
                   created: Created | None = None) -> dict:
        """The quote card (any kind), with its payment link created on first show, and the card
        remembered so that it can be updated in place once paid (with the link, in one
        transaction, when the link is created now). ``created``: the quote as just written, with
        its admins (:meth:`create`: nothing is read again)."""
        link = None
        if created is not None:
            q, admins, link = created
        else:
            with self.lic.units.reading(turn.actor):  # (the quote and whom its card is kept live for, together)
                q = self.lic.quotes.quote(turn.actor, quote_id)
                admins = self.admins(q.account_id)
        posted = (turn.message_ref, turn.address) if turn.message_ref and turn.address else None
        if _needs_link(q):
            try:  # (outside any unit: it calls the payment provider between its transactions)
                q = self.lic.links.payment_link(turn.actor, q.id, posted_card=posted, plan=link)
                posted = None  # remembered by payment_link
            except (PaymentUnavailable, PaymentRefused) as e:
                note = e.message
        if posted:
            self.lic.addresses.record_posted_card(q.account_id, "quote", q.id, *posted)
        turn.shows("quote", q.id)
        return upgrade.quote_card(turn.reader, q, note=note, admins=admins)

    def quote_refresh(self, turn: Turn, data: dict) -> dict:
        return self.show_quote(turn, QuoteRef.parse(data).quote)

    def quote_cancel(self, turn: Turn, data: dict) -> dict:
        q = self.lic.quotes.cancel_quote(turn.actor, QuoteRef.parse(data).quote)
        t = T(turn.reader)
        closing = q.payment_status == PaymentStatus.CLOSING  # not "nothing was charged" until the provider confirms
        return common.dismissed_card(turn.reader, t("cancelled.title"), t("cancelled.closing" if closing
                                                                         else "cancelled.body"))

    def quote_back(self, turn: Turn, data: dict) -> dict:
        """The quote cancelled (committed at once: its card's update is held by the router until
        this answers), then the step before it, read in one snapshot."""
        q = self.lic.quotes.cancel_quote(turn.actor, QuoteRef.parse(data).quote)
        back = self.back_steps.get(QuoteKind(q.kind))
        if back is None:  # (a journey this deployment does not offer)
            t = T(turn.reader)
            return common.dismissed_card(turn.reader, t("cancelled.title"), t("cancelled.body"))
        return back(turn, q)

    def quote_confirm(self, turn: Turn, data: dict) -> dict:
        def step() -> dict:
            q = self.lic.quotes.confirm_without_payment(turn.actor, QuoteRef.parse(data).quote)
            turn.shows("quote", q.id)
            return upgrade.quote_card(turn.reader, q, admins=self.admins(q.account_id))

        return self.lic.units.writing(turn.actor, step)

    def not_open(self, turn: Turn, data: dict, error: DomainError) -> dict | None:
        """A step on a quote no longer open: the quote as it is now, saying why (when the card
        names a quote its reader may see)."""
        if "quote" not in data:
            return None
        try:
            q = self.lic.quotes.quote(turn.actor, QuoteRef.parse(data).quote)
            turn.shows("quote", q.id)
            return upgrade.quote_card(turn.reader, q, note=error.message, admins=self.admins(q.account_id))
        except DomainError:
            return None

    def quote_card_update(self, item, locale: Reader | str | None) -> dict | None:
        q = self.lic.quotes.quote_snapshot(item.payload.get("quote_id") or "")
        return upgrade.quote_card(locale, q, admins=self.admins(q.account_id)) if q else None
