""""My license" for any user: what they hold, and asking for an upgrade; and the notices a
requester receives once an administrator approved or declined."""

from __future__ import annotations

from cards import mylicense as cards
from cards.i18n import Reader, T
from cards.verbs import Verb
from core.errors import CurrencyMismatch, InvalidInput, NotAnUpgrade, NotFound, RequestClosed, UnknownCaller
from core.kinds import OutboxKind, RequestStatus
from core.licensing import Licensing
from core.views import OutboxItem, RequestView
from dialogs.base import CommandSpec, Flow, Turn


class MyLicenseFlow(Flow):
    def __init__(self, lic: Licensing):
        super().__init__(lic)
        self.commands = {
            "mylicense": CommandSpec(self.cmd_mylicense, False),
        }
        self.actions = {
            Verb.MYLICENSE: self.show,
            Verb.MYLICENSE_REQUEST: self.request_form,
            Verb.MYLICENSE_SEND: self.send,
        }
        self.notifications = {
            OutboxKind.REQUEST_APPROVED: self.approved_notice,
            OutboxKind.REQUEST_DECLINED: self.declined_notice,
        }

    # ------------------------------------------------------------------ helpers

    @property
    def families(self) -> dict[str, str]:
        return dict(self.lic.catalog.families)

    def not_user(self, turn: Turn, e: UnknownCaller) -> dict:
        """Not a user of the account (already audited by the core): say whom to ask, when the
        tenant has an account."""
        admins = self.lic.accounts.account_admin_names(turn.actor) if e.details.get("account_id") else []
        return cards.not_user_card(turn.reader, e.message, admins)

    def _state(self, turn: Turn):
        with self.lic.units.reading(turn.actor):  # (one snapshot for the card)
            seats = self.lic.seats.my_license(turn.actor)
            return seats, self.lic.requests.my_requests(turn.actor)

    # ------------------------------------------------------------------ steps

    def cmd_mylicense(self, turn: Turn) -> dict:
        return self.show(turn, {})

    def show(self, turn: Turn, data: dict, note: str | None = None) -> dict:
        try:
            seats, requests = self._state(turn)
        except UnknownCaller as e:
            return self.not_user(turn, e)
        admins = [] if seats else self.lic.accounts.account_admin_names(turn.actor)
        return cards.my_license_card(turn.reader, seats, requests, self.families, admins=admins, note=note)

    def request_form(self, turn: Turn, data: dict, note: str | None = None, plan: str | None = None,
                     reason: str | None = None) -> dict:
        try:
            seats, requests = self._state(turn)
        except UnknownCaller as e:
            return self.not_user(turn, e)
        options = cards.requestable(seats, requests)
        if not options:  # a stale card: nothing left to ask for (shown as it is now)
            return self.show(turn, {}, note=note or T(turn.reader)("mylicense.nothing"))
        return cards.request_form_card(turn.reader, options, self.families, plan=plan, reason=reason, note=note)

    def send(self, turn: Turn, data: dict) -> dict:
        t = T(turn.reader)
        plan, reason = data.get("plan"), data.get("reason")
        try:
            req = self.lic.requests.request_upgrade(turn.actor, plan, reason)
        except UnknownCaller as e:
            return self.not_user(turn, e)
        except RequestClosed:  # a double click, or a second request for the same family
            return self.show(turn, {}, note=self._already(turn, plan))
        except NotAnUpgrade:
            return self.request_form(turn, data, note=t("mylicense.err.not_upgrade"))
        except NotFound:
            return self.request_form(turn, data, note=t("mylicense.err.unknown_plan"))
        except (InvalidInput, CurrencyMismatch) as e:
            keep = reason[: cards.MAX_REASON] if isinstance(reason, str) else None
            return self.request_form(turn, data, note=e.message, plan=plan if isinstance(plan, str) else None,
                                     reason=keep)
        return cards.request_sent_card(turn.reader, req)

    def _already(self, turn: Turn, plan) -> str:
        t = T(turn.reader)
        chosen = self.lic.catalog.plans.get(plan) if isinstance(plan, str) else None
        family = chosen.family if chosen else None
        for r in self.lic.requests.my_requests(turn.actor):
            if r.status == RequestStatus.PENDING and r.family == family:
                return t("mylicense.already", plan=r.to_plan_name, date=t.date(r.created_at))
        return t("mylicense.already_any")

    # ------------------------------------------------------------------ notifications (to the requester)

    def _request(self, item: OutboxItem) -> RequestView | None:
        return self.lic.requests.request_snapshot(item.payload.get("request_id"))

    def approved_notice(self, item: OutboxItem, locale: Reader | str | None) -> dict | None:
        r = self._request(item)
        return cards.approved_notice(locale, r, str(item.payload.get("by") or r.decided_by_name or "")) if r else None

    def declined_notice(self, item: OutboxItem, locale: Reader | str | None) -> dict | None:
        r = self._request(item)
        if r is None:
            return None
        by = str(item.payload.get("by") or r.decided_by_name or "")
        return cards.declined_notice(locale, r, by, item.payload.get("reason") or r.decline_reason)
