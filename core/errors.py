"""Typed domain errors. Each carries a message fit for a person (no SQL, no stack) and a
stable ``code`` that the chat layer can translate or test against."""

from __future__ import annotations

from datetime import datetime


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

    def __init__(self, holder_name: str, expires_at: datetime, quote_id: str):
        super().__init__(
            f"These seats are held by an open quote of {holder_name} until "
            f"{expires_at:%Y-%m-%d %H:%M} UTC. Wait for it to be paid or to expire, or ask "
            f"{holder_name} to cancel it.",
            holder_name=holder_name,
            expires_at=expires_at,
            quote_id=quote_id,
        )


class QuoteNotOpen(DomainError):
    code = "quote_not_open"


class CurrencyMismatch(DomainError):
    code = "currency_mismatch"


class RequestClosed(DomainError):
    code = "request_closed"


class PaymentUnavailable(DomainError):
    code = "payment_unavailable"


class Busy(DomainError):
    code = "busy"
