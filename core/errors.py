"""Typed domain errors. Each carries a message fit for a person (no SQL, no stack), a
:class:`Message` that the chat layer can say in the reader's language, and a stable ``code``
that it can test against."""

from __future__ import annotations

from datetime import UTC, datetime


class Message(str):
    """A sentence for a person, gettext-style: a ``str`` whose value is the English text
    ``template.format(**params)`` (logs, the audit log and tests see it as before), keeping its
    ``template`` and ``params`` so that the chat layer can translate it (``cards.i18n.T.say``:
    catalogs are keyed by the English template). A param may be a Message itself (e.g. "A or
    B"): it is translated too. ``str(message)`` is the plain English text."""

    template: str
    params: dict

    def __new__(cls, template: str, /, **params) -> Message:
        self = super().__new__(cls, template.format(**params))
        self.template = template
        self.params = params
        return self

    def __getnewargs_ex__(self):  # pickle and copy rebuild it from its template, not from its text
        return (self.template,), self.params


def _aware(at: datetime) -> datetime:
    """An instant for a "{at:%Y-%m-%d %H:%M %Z}" template (stored instants are aware UTC; a
    naive one is taken as UTC), which the chat layer may say in the reader's time zone."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


class DomainError(Exception):
    code = "refused"

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class NotFound(DomainError):
    """Unknown id, or an id that belongs to another account (the two are indistinguishable
    to the caller on purpose)."""

    code = "not_found"


class UnknownCaller(DomainError):
    code = "unknown_caller"


class NotAdmin(DomainError):
    code = "not_admin"


class InvalidInput(DomainError):
    code = "invalid_input"


class InvalidQuantity(InvalidInput):
    code = "invalid_quantity"


class NotAnUpgrade(DomainError):
    code = "not_an_upgrade"


class NotADowngrade(DomainError):
    code = "not_a_downgrade"


class WrongFamily(DomainError):
    code = "wrong_family"


class SeatAlreadyHeld(DomainError):
    """The user already holds a seat of that family."""

    code = "seat_already_held"


class NoFreeSeat(DomainError):
    code = "no_free_seat"


class SeatsAssigned(DomainError):
    code = "seats_assigned"


class DomainNotApproved(DomainError):
    code = "domain_not_approved"


class HeldByQuote(DomainError):
    """Seats are held by another open quote."""

    code = "held_by_quote"

    def __init__(self, holder_name: str | None, expires_at: datetime, quote_id: str, *, mine: bool = False):
        """``holder_name``: who prepared that quote; None when not known (another administrator).
        ``mine``: the caller prepared it (nobody else to ask: they may open or cancel it)."""
        if mine:
            message = Message("These seats are held by your own open quote until {until:%Y-%m-%d %H:%M %Z}. Open "
                              "it to pay it, or cancel it to go on.", until=_aware(expires_at))
        elif holder_name:
            message = Message("These seats are held by an open quote of {holder} until {until:%Y-%m-%d %H:%M %Z}. "
                              "Wait for it to be paid or to expire, or ask {holder} to cancel it.",
                              holder=holder_name, until=_aware(expires_at))
        else:
            message = Message("These seats are held by an open quote of another administrator until "
                              "{until:%Y-%m-%d %H:%M %Z}. Wait for it to be paid or to expire, or ask another "
                              "administrator to cancel it.", until=_aware(expires_at))
        super().__init__(
            message,
            holder_name=holder_name,
            expires_at=expires_at,
            quote_id=quote_id,
            mine=mine,
        )


class QuoteNotOpen(DomainError):
    code = "quote_not_open"


class CurrencyMismatch(DomainError):
    code = "currency_mismatch"


class RequestClosed(DomainError):
    code = "request_closed"

    @classmethod
    def decided(cls, status: str, by: str | None, at: datetime | None, **details) -> RequestClosed:
        """A request someone decided first (``status``: approved or declined), by whom and when."""
        if not (by and at):
            return cls(Message("This request was already decided."), **details)
        at = _aware(at)
        if status == "approved":
            return cls(Message("This request was already approved by {by} at {at:%Y-%m-%d %H:%M %Z}.", by=by, at=at),
                       **details)
        return cls(Message("This request was already declined by {by} at {at:%Y-%m-%d %H:%M %Z}.", by=by, at=at),
                   **details)


class PaymentUnavailable(DomainError):
    code = "payment_unavailable"


class PaymentRefused(DomainError):
    """The payment provider refused the request itself (credentials, account, parameters):
    trying again will not help until someone fixes the cause."""

    code = "payment_refused"


class Busy(DomainError):
    code = "busy"
