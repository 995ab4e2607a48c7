"""Typed domain errors. Each carries a message fit for a person (no SQL, no stack), a
:class:`Message` that the chat layer can say in the reader's language, and a stable ``code``
that it can test against."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from babel import Locale

from core.kinds import RequestStatus


@functools.cache
def _plural_rule(lang: str):
    return Locale.parse(lang).plural_form


def plural_index(lang: str, n: int) -> int:
    """Which of gettext's two forms a count takes in ``lang``: 0 the singular (msgid), 1 the
    plural (msgid_plural), by the CLDR rules (Babel): French says 0 and 1 in the singular,
    English only 1; CLDR's other categories (French "many": "1 000 000 de") take the plural."""
    return 0 if _plural_rule(lang)(abs(n)) == "one" else 1


class Message(str):
    """A sentence for a person, gettext-style: a ``str`` whose value is the English text
    ``template.format(**params)`` (logs, the audit log and tests see it as before), keeping its
    ``template`` and ``params`` so that the chat layer can translate it (``cards.i18n.T.say``:
    catalogs are keyed by the English template). A param may be a Message itself (e.g. "A or
    B"): it is translated too. ``str(message)`` is the plain English text.

    A sentence about a count (:meth:`counted`) also keeps its plural template (ngettext's
    msgid_plural) and the name of the param that holds the count."""

    template: str
    params: dict
    plural: str | None = None
    count: str | None = None  # type: ignore[assignment]  # the counted param's name (shadows str.count)

    def __new__(cls, template: str, /, **params) -> Message:
        return cls._build(template, None, None, params)

    @classmethod
    def counted(cls, one: str, other: str, count: str, /, **params) -> Message:
        """ngettext-style: ``one`` or ``other`` by the count in ``params[count]`` (English rules
        for the English text; the chat layer applies the reader's language's rules)."""
        return cls._build(one, other, count, params)

    @classmethod
    def _build(cls, template: str, plural: str | None, count: str | None, params: dict) -> Message:
        text = template if plural is None else (template, plural)[plural_index("en", params[count])]
        self = str.__new__(cls, text.format(**params))
        self.template, self.plural, self.count, self.params = template, plural, count, params
        return self

    def __reduce__(self):  # pickle and copy rebuild it from its template, not from its text
        return Message._build, (self.template, self.plural, self.count, self.params)

    def to_json(self) -> dict:
        """The template, plural form and params as JSON (instants as ISO 8601, Messages nested),
        so that a stored sentence (the audit log) can be said in its reader's language later."""
        return {"template": self.template, "plural": self.plural, "count": self.count,
                "params": {k: _param_to_json(v) for k, v in self.params.items()}}

    @classmethod
    def from_json(cls, data) -> Message | None:
        """The Message :meth:`to_json` stored; None when ``data`` is not such a thing."""
        try:
            params = {k: _param_from_json(v) for k, v in data["params"].items()}
            return cls._build(data["template"], data.get("plural"), data.get("count"), params)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            return None


def no_longer_held(missing: int) -> Message:
    """The refusal when ``missing`` of the users selected on a card lost their seat in its pool meanwhile."""
    return Message.counted("{missing} of the selected users no longer holds a seat in this pool. Here is the pool "
                           "as it is now; select again.",
                           "{missing} of the selected users no longer hold a seat in this pool. Here is the pool "
                           "as it is now; select again.", "missing", missing=missing)


def _param_to_json(value):
    if isinstance(value, Message):
        return {"message": value.to_json()}
    if isinstance(value, datetime):
        return {"instant": _aware(value).isoformat()}
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)  # (anything else: as the English text showed it)


def _param_from_json(value):
    if isinstance(value, dict):
        if "message" in value:
            message = Message.from_json(value["message"])
            if message is None:
                raise ValueError("not a stored Message")
            return message
        return datetime.fromisoformat(value["instant"])
    return value


def _aware(at: datetime) -> datetime:
    """An instant for a "{at:%Y-%m-%d %H:%M %Z}" template (stored instants are aware UTC; a
    naive one is taken as UTC), which the chat layer may say in the reader's time zone."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


class DomainError(Exception):
    code = "refused"
    _refusal_audited = False  # set by Units.refuse: a refusal is audited once

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


class StaleSelection(InvalidInput):
    """Users selected on a card no longer hold a seat in its pool: the card is out of date (the
    chat layer shows the pool as it is now). Its code stays ``invalid_input``, as audited."""

    def __init__(self, message: str, **details):
        super().__init__(message, stale=True, **details)


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
        if status == RequestStatus.APPROVED:
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
