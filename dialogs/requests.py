"""Upgrade requests for the administrators: the request card each admin receives (Approve /
Decline, refreshed so that everyone sees the live status), the decline form, the list of
pending requests; and the in-place update of every admin's card once someone decided.

The first decision wins (the core decides it under a row lock): a second click, by another
admin or the same one, gets the request card in its decided state with a one-line note."""

from __future__ import annotations

from cards import requests as cards
from cards import upgrade
from cards.data import PageRef, RequestRef
from cards.i18n import Reader, T
from cards.verbs import Verb
from core.errors import InvalidInput, RequestClosed
from core.kinds import AuditAction, OutboxKind, RequestStatus
from core.licensing import Licensing
from core.views import OutboxItem, RequestView
from dialogs.base import CommandSpec, Flow, Turn
from dialogs.quotes import QuoteFlow


class RequestsFlow(Flow):
    def __init__(self, lic: Licensing, quotes: QuoteFlow):
        super().__init__(lic)
        self.quotes = quotes
        self.commands = {
            "requests": CommandSpec(self.cmd_requests, True),
        }
        self.actions = {
            Verb.REQUESTS: self.show_list,
            Verb.REQUEST_REFRESH: self.refresh,
            Verb.REQUEST_APPROVE: self.approve,
            Verb.REQUEST_DECLINE: self.decline_form,
            Verb.REQUEST_DECLINE_CONFIRM: self.decline,
        }
        self.notifications = {OutboxKind.REQUEST_CREATED: self.created_card,
                              OutboxKind.REQUEST_REOPENED: self.reopened_notice}
        self.card_updates = {OutboxKind.REQUEST_CARD: self.card_update}
        # Outbox kinds whose card the notifier records once sent (subject, id), so that the
        # core can queue its in-place update when the request is decided.
        self.tracked = {OutboxKind.REQUEST_CREATED: self.tracked_request}

    # ------------------------------------------------------------------ list

    def cmd_requests(self, turn: Turn) -> dict:
        return self.show_list(turn, {})

    def show_list(self, turn: Turn, data: dict, note: str | None = None) -> dict:
        with self.lic.units.reading(turn.actor):  # (one snapshot for the card)
            page = self.lic.requests.pending_requests(turn.actor, page=PageRef.parse(data).page)
            if page.page and not page.items and page.total:  # the list shrank since the card was shown
                page = self.lic.requests.pending_requests(turn.actor, page=page.pages - 1)
        return cards.requests_list_card(turn.reader, page, note=note)

    # ------------------------------------------------------------------ one request

    def _view(self, turn: Turn, request_id: int, action: str) -> RequestView:
        self.lic.accounts.require_admin(turn.actor, action)
        return self.lic.requests.request(turn.actor, request_id)

    def request_card(self, reader: Reader | str | None, r: RequestView, *, note: str | None = None) -> dict:
        """The request card, kept live (refreshed) for the administrators while pending."""
        pending = r.status == RequestStatus.PENDING
        return cards.request_card(reader, r, note=note, admins=self.admins(r.account_id) if pending else ())

    def decided(self, turn: Turn, request_id: int) -> dict:
        """The request in its decided state, with who decided first."""
        with self.lic.units.reading(turn.actor):  # (one snapshot for the card)
            r = self.lic.requests.request(turn.actor, request_id)
            turn.shows("request", r.id)
            return self.request_card(turn.reader, r, note=cards.already_note(turn.reader, r))

    def refresh(self, turn: Turn, data: dict) -> dict:
        rid = RequestRef.parse(data).request
        with self.lic.units.reading(turn.actor):  # (one snapshot for the card)
            r = self._view(turn, rid, AuditAction.REQUEST_VIEW)
            turn.shows("request", r.id)
            return self.request_card(turn.reader, r)

    def approve(self, turn: Turn, data: dict) -> dict:
        rid = RequestRef.parse(data).request
        try:
            created = self.quotes.create(turn, lambda: self.lic.requests.approve_request(turn.actor, rid))
        except RequestClosed:  # someone decided first (audited by the core)
            return self.decided(turn, rid)
        turn.shows("request", rid)  # the approved request's card, on this message, is its quote (card_update)
        return self.quotes.show_quote(turn, created.quote.id, created=created)

    def _stale(self, turn: Turn, verb: str, r: RequestView) -> dict:
        note = cards.already_note(turn.reader, r)
        self.lic.audit.record_refusal(turn.actor, AuditAction.card(verb),
                                      RequestClosed.decided(r.status, r.decided_by_name, r.decided_at),
                                      f"request:{r.id}")
        turn.shows("request", r.id)
        return self.request_card(turn.reader, r, note=note)

    def decline_form(self, turn: Turn, data: dict) -> dict:
        ref = RequestRef.parse(data)
        with self.lic.units.reading(turn.actor):  # (one snapshot for the card)
            r = self._view(turn, ref.request, AuditAction.REQUEST_DECLINE)
            if r.status != RequestStatus.PENDING:
                return self._stale(turn, Verb.REQUEST_DECLINE, r)
        return cards.decline_card(turn.reader, r, back=ref.back, page=ref.page or 0)

    def decline(self, turn: Turn, data: dict) -> dict:
        ref = RequestRef.parse(data)
        rid = ref.request
        reason = data.get("reason")
        try:
            r = self.lic.requests.decline_request(turn.actor, rid, reason)
        except RequestClosed:
            return self.decided(turn, rid)
        except InvalidInput as e:  # e.g. a reason over 500 characters (audited by the core)
            r = self._view(turn, rid, AuditAction.REQUEST_DECLINE)
            keep = reason[: cards.MAX_REASON] if isinstance(reason, str) else None
            return cards.decline_card(turn.reader, r, back=ref.back, page=ref.page or 0, reason=keep, note=e.message)
        if ref.back == "list":
            assert r.decided_at is not None, "a declined request has its decision's time"
            t = T(turn.reader)
            note = t("requests.declined", name=r.decided_by_name, time=t.datetime(r.decided_at))
            return self.show_list(turn, PageRef(ref.page or 0).to_data(), note=note)
        turn.shows("request", r.id)
        return self.request_card(turn.reader, r)

    # ------------------------------------------------------------------ notifications

    @staticmethod
    def tracked_request(item: OutboxItem) -> tuple[str, str] | None:
        rid = item.payload.get("request_id")
        return ("request", str(rid)) if rid is not None else None

    def created_card(self, item: OutboxItem, locale: Reader | str | None) -> dict | None:
        """The card each admin receives for a new request (nothing if already decided by then)."""
        r = self.lic.requests.request_snapshot(item.payload.get("request_id"))
        if r is None or r.status != RequestStatus.PENDING:
            return None
        return self.request_card(locale, r)

    def reopened_notice(self, item: OutboxItem, locale: Reader | str | None) -> dict | None:
        """The requester's notice that their approved request waits again (nothing once decided anew)."""
        r = self.lic.requests.request_snapshot(item.payload.get("request_id"))
        if r is None or r.status != RequestStatus.PENDING:
            return None
        return cards.reopened_notice(locale, r, str(item.payload.get("quote_status") or ""))

    def card_update(self, item: OutboxItem, locale: Reader | str | None) -> dict | None:
        """A request card shown earlier, once decided. The approving admin's message became the
        quote card (with its payment link): it keeps showing the quote, as it is now."""
        r = self.lic.requests.request_snapshot(item.payload.get("request_id"))
        if r is None:
            return None
        posted = self.lic.addresses.posted_card(item.payload.get("posted_card"))
        if (r.status == RequestStatus.APPROVED and r.quote_id and posted is not None
                and self.lic.addresses.posted_card_shows("quote", r.quote_id, posted.message_ref)):
            q = self.lic.quotes.quote_snapshot(r.quote_id)
            if q is not None:
                return upgrade.quote_card(locale, q, admins=self.admins(q.account_id))
        return self.request_card(locale, r)
