"""The data each card's buttons carry, as frozen dataclasses: the card builders make it
(:meth:`CardData.to_data`, the JSON of ``Action.Execute.data``), the flows read it back
(``parse``: one per dataclass). Card data is never trusted: ``parse`` checks its shape and
raises :class:`CardDataError` (audited by the router as a refusal); the core checks every id
and right again.

A field that is ``None`` is left out of the JSON (an optional key); tuples are JSON lists.
Inputs the reader fills in (``q``, ``users``, ``pick``, ``plan``, ``qty``...) arrive beside the
data and are read by the flows."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

from core.errors import InvalidInput, Message
from core.text import parse_id, parse_ids
from core.views import PageKey

MAX_SELECTION = 250  # users selected at once
MAX_CART_LINES = 20


class CardDataError(InvalidInput):
    """Card data refused by the chat layer itself (the core never saw it, so never audited it):
    the router audits it as refused."""


# ---------------------------------------------------------------------------- field readers


def data_int(data: dict, key: str, what: str = "item") -> int:
    try:
        return parse_id(data.get(key), what)
    except InvalidInput as e:
        raise CardDataError(e.message) from None


def page_of(data: dict, key: str = "page") -> int:
    value = data.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int | str):
        return 0
    try:
        return max(0, min(int(value), 100_000))
    except ValueError:
        return 0


def text_of(data: dict, key: str, limit: int = 100) -> str:
    value = data.get(key)
    return value[:limit] if isinstance(value, str) else ""


def id_list(value, what: str = "user") -> list[int]:
    """Ids from card data: a list of ints, or a comma-separated string (Teams multi-select)."""
    if value in (None, "", []):
        return []
    try:
        return parse_ids(value if isinstance(value, list | str) else [value], what, limit=MAX_SELECTION * 2)
    except InvalidInput as e:
        raise CardDataError(e.message) from None


def _optional_str(data: dict, key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _json(value: Any) -> Any:
    if isinstance(value, CardData | CartLine):
        return value.to_data()
    if isinstance(value, tuple):
        return [_json(v) for v in value]
    return value


# ---------------------------------------------------------------------------- the shapes


@dataclass(frozen=True)
class CardData:
    """A button's data: its fields, in order, are the JSON keys."""

    def to_data(self) -> dict:
        return {f.name: _json(v) for f in dataclasses.fields(self) if (v := getattr(self, f.name)) is not None}

    @classmethod
    def parse(cls, data: dict) -> Self:
        raise NotImplementedError


@dataclass(frozen=True)
class NoData(CardData):
    """A button that carries nothing (the step reads everything from the database)."""

    @classmethod
    def parse(cls, data: dict) -> NoData:
        return cls()


@dataclass(frozen=True)
class PoolRef(CardData):
    pool: int

    @classmethod
    def parse(cls, data: dict) -> PoolRef:
        return cls(data_int(data, "pool", "pool"))


@dataclass(frozen=True)
class PoolSelection(CardData):
    """Users selected in a pool (the tier step, the unassign and downgrade cards)."""

    pool: int
    sel: tuple[int, ...] = ()

    @classmethod
    def parse(cls, data: dict) -> PoolSelection:
        return cls(data_int(data, "pool", "pool"), tuple(id_list(data.get("sel"))))


@dataclass(frozen=True)
class UsersPage(CardData):
    """A page of a pool's users card: the page, the search it shows (``cq``), the selection made
    on other pages (``sel``), the ids on this page (``ids``: what its checkboxes can untick) and
    the row the page asked for is found by (``keyset``: Next after the last row shown, Previous
    before the first, the card's other buttons from the first on; the core checks it again). A
    ``keyset`` that is not a :class:`~core.views.PageKey` is dropped, not refused: the page is
    then found by its number. Its buttons that open the card afresh carry a :class:`PoolRef` or
    a :class:`PoolSelection`, read as this with the other fields empty."""

    pool: int
    page: int = 0
    cq: str = ""
    sel: tuple[int, ...] = ()
    ids: tuple[int, ...] = ()
    keyset: PageKey | None = None

    @classmethod
    def parse(cls, data: dict) -> UsersPage:
        return cls(data_int(data, "pool", "pool"), page_of(data), text_of(data, "cq"),
                   tuple(id_list(data.get("sel"))), tuple(id_list(data.get("ids"))), PageKey.of(data.get("keyset")))


@dataclass(frozen=True)
class TierChoice(CardData):
    """The tier step's Upgrade: the selection, and the id of the quote it creates (``qkey``:
    chosen once per card shown, so that a second click gets the same quote; not "key": the
    Teams card renderer refuses that name)."""

    pool: int
    sel: tuple[int, ...] = ()
    qkey: str | None = None

    @classmethod
    def parse(cls, data: dict) -> TierChoice:
        return cls(data_int(data, "pool", "pool"), tuple(id_list(data.get("sel"))), _optional_str(data, "qkey"))


@dataclass(frozen=True)
class QuoteRef(CardData):
    quote: str

    NOT_A_QUOTE: ClassVar[Message] = Message("This card does not name a quote. Start again from the license pools.")

    @classmethod
    def parse(cls, data: dict) -> QuoteRef:
        qid = data.get("quote")
        if not isinstance(qid, str) or not qid:
            raise CardDataError(cls.NOT_A_QUOTE)
        return cls(qid[:64])


@dataclass(frozen=True)
class CartLine:
    """A cart line as the card carries it (shape only: the core validates the content)."""

    plan: Any = None
    interval: Any = None
    quantity: Any = None

    def to_data(self) -> dict:
        return {"plan": self.plan, "interval": self.interval, "quantity": self.quantity}

    def as_dict(self) -> dict:
        return self.to_data()


@dataclass(frozen=True)
class Cart(CardData):
    """The cart (and, on Checkout, the id of the purchase quote it creates: ``qkey``)."""

    cart: tuple[CartLine, ...] = ()
    qkey: str | None = None

    @classmethod
    def parse(cls, data: dict) -> Cart:
        cart = data.get("cart")
        if cart is None or cart == "":
            cart = []
        if not isinstance(cart, list) or len(cart) > MAX_CART_LINES or not all(isinstance(ln, dict) for ln in cart):
            raise CardDataError(Message("This cart is not valid (a cart holds at most {n} lines). Start again with "
                                        "“buy”.", n=MAX_CART_LINES))
        lines = tuple(CartLine(ln.get("plan"), ln.get("interval"), ln.get("quantity")) for ln in cart)
        qkey = data.get("qkey")
        return cls(lines, qkey if isinstance(qkey, str) else None)

    @property
    def lines(self) -> list[dict]:
        """The cart as the core takes it."""
        return [ln.as_dict() for ln in self.cart]


@dataclass(frozen=True)
class BuyStart(CardData):
    """Buy, with a plan and interval pre-selected."""

    plan: str | None = None
    interval: str | None = None

    @classmethod
    def parse(cls, data: dict) -> BuyStart:
        return cls(_optional_str(data, "plan"), _optional_str(data, "interval"))


@dataclass(frozen=True)
class Origin(CardData):
    """The pool an assign journey started from, if any (pre-selects its plan)."""

    pool: int | None = None

    @classmethod
    def parse(cls, data: dict) -> Origin:
        return cls(data_int(data, "pool", "pool") if data.get("pool") not in (None, "") else None)


@dataclass(frozen=True)
class PickerPage(CardData):
    """A page of the assign picker: its search (``cq``), page and origin pool."""

    cq: str = ""
    page: int = 0
    pool: int | None = None

    @classmethod
    def parse(cls, data: dict) -> PickerPage:
        return cls(text_of(data, "cq"), page_of(data), Origin.parse(data).pool)


@dataclass(frozen=True)
class AssignChoice(CardData):
    """The plans step's Save: the user (the picker's page kept for Back)."""

    cq: str = ""
    page: int = 0
    pool: int | None = None
    user: int = dataclasses.field(kw_only=True)

    @classmethod
    def parse(cls, data: dict) -> AssignChoice:
        back = PickerPage.parse(data)
        return cls(back.cq, back.page, back.pool, user=data_int(data, "user", "user"))


@dataclass(frozen=True)
class RemovalForm(CardData):
    """The remove-free-seats form (``preview``: the amount after removing the typed quantity)."""

    pool: int
    preview: bool | None = None

    @classmethod
    def parse(cls, data: dict) -> RemovalForm:
        return cls(data_int(data, "pool", "pool"), True if data.get("preview") is True else None)


@dataclass(frozen=True)
class RemovalConfirm(CardData):
    """Remove: with how many seats were scheduled to leave when the form was shown."""

    pool: int
    scheduled: int

    @classmethod
    def parse(cls, data: dict) -> RemovalConfirm:
        pool = data_int(data, "pool", "pool")
        expected = data.get("scheduled")
        if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
            raise CardDataError(Message("This card is not valid. Open the pool's users card and try again."))
        return cls(pool, expected)


@dataclass(frozen=True)
class RequestRef(CardData):
    """An upgrade request (``back="list"``: the step came from the list, at ``page``)."""

    request: int
    back: Literal["list"] | None = None
    page: int | None = None

    @classmethod
    def parse(cls, data: dict) -> RequestRef:
        return cls(data_int(data, "request", "request"), "list" if data.get("back") == "list" else None,
                   page_of(data) if "page" in data else None)


@dataclass(frozen=True)
class PageRef(CardData):
    page: int = 0

    @classmethod
    def parse(cls, data: dict) -> PageRef:
        return cls(page_of(data))
