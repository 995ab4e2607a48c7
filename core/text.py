"""Input hygiene and search terms."""

from __future__ import annotations

import re
import unicodedata
from typing import Literal, overload

from core.errors import InvalidInput, InvalidQuantity, Message

MAX_QUANTITY = 10_000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script (after folding)
# Letters that Unicode does not decompose into a base letter + accent, folded by hand.
_UNDECOMPOSED = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "ð": "d", "ħ": "h", "ı": "i", "ŧ": "t",
                               "æ": "ae", "œ": "oe", "þ": "th"})
# What the refusals below call the fields and ids they name: terms and whole sentences that a
# translator gets as such (any other name is said as given).
_FIELDS = {"reason": Message("reason"), "search text": Message("search text"), "name": Message("name"),
           "e-mail": Message("e-mail"), "directory id": Message("directory id")}
_BAD_REFERENCE = {
    "pool": Message("That pool reference is not valid."),
    "user": Message("That user reference is not valid."),
    "request": Message("That request reference is not valid."),
    "account": Message("That account reference is not valid."),
}
_BAD_QUANTITY = Message("The quantity must be a whole number from 1 to 10,000.")


@overload
def clean_text(value, *, max_length: int, field: str, required: Literal[True]) -> str: ...
@overload
def clean_text(value, *, max_length: int, field: str, required: bool = False) -> str | None: ...
def clean_text(value, *, max_length: int, field: str, required: bool = False) -> str | None:
    """Free text from a person: control characters dropped, whitespace folded, length capped."""
    if value is None:
        value = ""
    name = _FIELDS.get(field, field)
    if not isinstance(value, str):
        raise InvalidInput(Message("The {field} must be text.", field=name))
    value = unicodedata.normalize("NFC", _CONTROL.sub(" ", value))
    value = " ".join(value.split())
    if required and not value:
        raise InvalidInput(Message("Please enter the {field}.", field=name))
    if len(value) > max_length:
        raise InvalidInput(Message("The {field} is too long ({length} characters; at most {max_length}).",
                                   field=name, length=len(value), max_length=max_length))
    return value or None


def fold(value: str) -> str:
    """Lower-case, accents removed: 'Zoë Ångström Ølsen' -> 'zoe angstrom olsen'."""
    decomposed = unicodedata.normalize("NFKD", value.casefold().translate(_UNDECOMPOSED))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(value: str) -> list[str]:
    return _WORD.findall(fold(value))


def search_terms(name: str, email: str) -> set[str]:
    return {w[:320] for w in words(name) + words(email)}


def sort_key(name: str) -> str:
    return " ".join(words(name))[:200] or "~"


def parse_quantity(value) -> int:
    """A whole number of seats from 1 to 10,000, given as an int or as digits."""
    if isinstance(value, bool):
        raise InvalidQuantity(_BAD_QUANTITY)
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[0-9]{1,9}", text):
            raise InvalidQuantity(_BAD_QUANTITY)
        value = int(text)
    if not isinstance(value, int) or not 1 <= value <= MAX_QUANTITY:
        raise InvalidQuantity(_BAD_QUANTITY)
    return value


def _bad_reference(what: str) -> Message:
    return _BAD_REFERENCE.get(what) or Message("That {what} reference is not valid.", what=what)


def parse_id(value, what: str = "item") -> int:
    if isinstance(value, bool):
        raise InvalidInput(_bad_reference(what))
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,18}", value.strip()):
        value = int(value.strip())
    if not isinstance(value, int) or not 0 < value < 2**63:
        raise InvalidInput(_bad_reference(what))
    return value


def parse_ids(values, what: str = "user", limit: int = MAX_QUANTITY) -> list[int]:
    """Ids from a list or a comma-separated string (how Teams sends a multi-select): users' ids,
    as the refusals say (``what`` names each id in the refusal of one that is not valid)."""
    if isinstance(values, str):
        values = [v for v in values.split(",") if v.strip()]
    if not isinstance(values, list | tuple):
        raise InvalidInput(Message("The user selection is not valid."))
    if len(values) > limit:
        raise InvalidInput(Message("At most {limit:,} users can be selected at once.", limit=limit))
    out = list(dict.fromkeys(parse_id(v, what) for v in values))
    if not out:
        raise InvalidInput(Message("Select at least one user."))
    return out
