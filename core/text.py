"""Input hygiene and search terms."""

from __future__ import annotations

import re
import unicodedata

from core.errors import InvalidInput, InvalidQuantity

MAX_QUANTITY = 10_000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script (after folding)
# Letters that Unicode does not decompose into a base letter + accent, folded by hand.
_UNDECOMPOSED = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "ð": "d", "ħ": "h", "ı": "i", "ŧ": "t",
                               "æ": "ae", "œ": "oe", "þ": "th"})


def clean_text(value, *, max_length: int, field: str, required: bool = False) -> str | None:
    """Free text from a person: control characters dropped, whitespace folded, length capped."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(f"The {field} must be text.")
    value = unicodedata.normalize("NFC", _CONTROL.sub(" ", value))
    value = " ".join(value.split())
    if required and not value:
        raise InvalidInput(f"Please enter the {field}.")
    if len(value) > max_length:
        raise InvalidInput(f"The {field} is too long ({len(value)} characters; at most {max_length}).")
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
        raise InvalidQuantity("The quantity must be a whole number from 1 to 10,000.")
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[0-9]{1,9}", text):
            raise InvalidQuantity("The quantity must be a whole number from 1 to 10,000.")
        value = int(text)
    if not isinstance(value, int) or not 1 <= value <= MAX_QUANTITY:
        raise InvalidQuantity("The quantity must be a whole number from 1 to 10,000.")
    return value


def parse_id(value, what: str = "item") -> int:
    if isinstance(value, bool):
        raise InvalidInput(f"That {what} reference is not valid.")
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,18}", value.strip()):
        value = int(value.strip())
    if not isinstance(value, int) or not 0 < value < 2**63:
        raise InvalidInput(f"That {what} reference is not valid.")
    return value


def parse_ids(values, what: str = "user", limit: int = MAX_QUANTITY) -> list[int]:
    """Ids from a list or a comma-separated string (how Teams sends a multi-select)."""
    if isinstance(values, str):
        values = [v for v in values.split(",") if v.strip()]
    if not isinstance(values, list | tuple):
        raise InvalidInput(f"The {what} selection is not valid.")
    if len(values) > limit:
        raise InvalidInput(f"At most {limit:,} {what}s can be selected at once.")
    out = list(dict.fromkeys(parse_id(v, what) for v in values))
    if not out:
        raise InvalidInput(f"Select at least one {what}.")
    return out
