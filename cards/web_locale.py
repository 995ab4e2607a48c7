"""The locale of a web page (the pay and audit-export pages): negotiated from the request's
Accept-Language header over the languages the cards speak."""

from __future__ import annotations

import re

from cards.catalogs import DEFAULT, negotiate

DEFAULT_LOCALE = "en-US"

_RANGE = re.compile(r"\*|[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")  # RFC 4647 language-range
_WEIGHT = re.compile(r"[qQ]=(0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")  # RFC 9110 qvalue
_MAX_RANGES = 32


def accept_language(header: str | None) -> list[str]:
    """The language ranges of an Accept-Language header (RFC 9110 §12.5.4), most preferred first:
    by quality value, then in the header's order; ``q=0`` (not acceptable) and malformed elements
    left out. Only the first few elements are read. Never raises."""
    weighted = []
    for position, element in enumerate((header or "").split(",")[:_MAX_RANGES]):
        tag, *params = (part.strip() for part in element.split(";"))
        if not tag and not params:
            continue  # an empty list element ("fr, , en") is allowed
        if not _RANGE.fullmatch(tag) or len(params) > 1:
            continue
        quality = 1.0
        if params:
            weight = _WEIGHT.fullmatch(params[0].replace(" ", ""))
            if weight is None:
                continue
            quality = float(weight[1])
        if quality > 0:
            weighted.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(weighted)]


def page_locale(header: str | None) -> str:
    """The locale of a page for this Accept-Language header (:func:`cards.catalogs.negotiate`): a
    French range (fr, fr-FR, fr-CA, fr-CH...) preferred over English gives French with its
    region's formats ("fr-CA"; "fr" alone is France's); English, any other language, no header or
    a malformed one give en-US."""
    locale = negotiate(accept_language(header))
    if locale.language == DEFAULT:
        return DEFAULT_LOCALE
    return f"{locale.language}-{locale.territory}" if locale.territory else locale.language
