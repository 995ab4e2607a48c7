"""The gettext catalogs and the one locale negotiation.

Every visible string lives in ``cards/locale/<lang>/LC_MESSAGES/messages.po``; ``messages.pot``
beside them is extracted from the code (``pybabel extract -F babel.cfg``: see babel.cfg for the
keywords). Two kinds of msgid:

- a symbolic key (``btn.refresh``, ``audit.done.quote.settled``) for card, page and notice
  strings, looked up with ``t("btn.refresh")``: the English text is a translation like any other
  (en.po), so a wording can change without touching the code. A string about a count is looked
  up with ``t.plural("users.selected", "n", n=3)``: its msgid_plural is the name of the param
  that holds the count (gettext's n), its msgstr[i] the language's forms;
- the English template of a core :class:`core.errors.Message` (``Message.counted``: msgid and
  msgid_plural are its two English forms): the core writes English, the chat layer says it in
  the reader's language.

The ``.po`` files are read when this module is imported (no compiled ``.mo`` to go stale) and
shipped as package data. A language is one ``.po`` file: the folder's languages are the
supported ones, English first (the fallback of every lookup)."""

from __future__ import annotations

import functools
import gettext
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.core import get_global, parse_locale
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).with_name("locale")
DOMAIN = "messages"
DEFAULT = "en"
_KEY = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+")


def N_(key: str) -> str:
    """Marks a msgid that the code looks up later under a computed name (``t(f"status.{s}")``),
    so that extraction finds it; returns it unchanged."""
    return key


def NP_(key: str, count: str) -> str:
    """:func:`N_` for a string about a count (``count``: the param that holds it)."""
    return key


def is_key(msgid: str) -> bool:
    """A symbolic key ("btn.refresh"), not a core Message's English template."""
    return _KEY.fullmatch(msgid) is not None


def _two_forms(n: int) -> int:
    return int(n != 1)


@dataclass(frozen=True)
class Plural:
    """A catalog entry about a count: its forms in one language (gettext's msgstr[0..]) and the
    language's plural rule (the .po header's Plural-Forms) that picks one by the value of the
    param ``count`` (None for a core Message: the Message names its count)."""

    forms: tuple[str, ...]
    count: str | None = "n"
    rule: Callable[[int], int] = field(default=_two_forms, compare=False, repr=False)

    @property
    def one(self) -> str:
        return self.forms[0]

    @property
    def other(self) -> str:
        return self.forms[-1]

    def form(self, n: int) -> str:
        return self.forms[min(self.rule(abs(n)), len(self.forms) - 1)]

    def map(self, fn) -> Plural:
        return Plural(tuple(fn(f) for f in self.forms), self.count, self.rule)


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def _languages() -> tuple[str, ...]:
    found = sorted(p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
    return tuple(sorted(found, key=lambda lang: lang != DEFAULT))


SUPPORTED: tuple[str, ...] = _languages()


def read_catalog(lang: str) -> Catalog:
    with po_path(lang).open("rb") as fh:
        return read_po(fh, locale=lang, domain=DOMAIN)


def entries(catalog: Catalog) -> tuple[dict[str, str | Plural], dict[str, str | Plural], dict[tuple[str, str], str]]:
    """(symbolic keys, core Message templates, (msgctxt, key) of words that are not card text,
    e.g. the CSV's column names) -> their translation (a str, or a :class:`Plural`); an
    untranslated entry is left out (the lookup falls back to English)."""
    rule = gettext.c2py(catalog.plural_expr)
    keys: dict[str, str | Plural] = {}
    templates: dict[str, str | Plural] = {}
    contexts: dict[tuple[str, str], str] = {}
    for message in catalog:
        if not message.id:
            continue
        if message.context:
            if message.string and isinstance(message.id, str) and isinstance(message.string, str):
                contexts[(message.context, message.id)] = message.string
            continue
        if not isinstance(message.id, str):  # pluralizable: (msgid, msgid_plural)
            msgid, plural = message.id[0], message.id[1]
            forms = tuple(message.string or ())
            if not all(forms):
                continue
            value: str | Plural = Plural(forms, plural if is_key(msgid) else None, rule)
        else:
            msgid, value = message.id, message.string if isinstance(message.string, str) else ""
            if not value:
                continue
        (keys if is_key(msgid) else templates)[msgid] = value
    return keys, templates, contexts


# ------------------------------------------------------------------------------ negotiation

def _parse(tag: str) -> tuple[str, str | None] | None:
    """(language, region) of a BCP 47 / POSIX tag ("fr-CA", "fr_Latn_FR", "FR-ca"); a tag Babel
    cannot read whole is read by its first subtag; None when even that is not a language."""
    tag = tag.replace("_", "-").strip()
    for candidate in (tag, tag.split("-")[0]):
        try:
            lang, region = parse_locale(candidate, sep="-")[:2]
        except ValueError:
            continue
        return lang.lower(), region if region and region.isalpha() else None
    return None


@functools.lru_cache(maxsize=512)
def _negotiate(tags: tuple[str, ...]) -> Locale:
    for tag in tags:
        parsed = _parse(tag) if isinstance(tag, str) else None
        if parsed is None or parsed[0] not in SUPPORTED:
            continue
        lang, region = parsed
        if region:
            try:
                return Locale(lang, region)
            except (UnknownLocaleError, ValueError):
                pass  # a region CLDR does not know for it: the language alone
        return Locale(lang)
    return Locale(DEFAULT)


def negotiate(tags: Iterable[str] | str | None) -> Locale:
    """THE locale negotiation: the first tag (most preferred first; a Teams locale is one tag, an
    Accept-Language header its ranges) whose language has a catalog, as a Babel Locale with its
    region when the tag names one CLDR knows (``fr-CA`` -> fr_CA, ``fr-419`` -> fr); English
    when none does."""
    if tags is None or isinstance(tags, str):
        tags = () if not tags else (tags,)
    return _negotiate(tuple(tags))


def formats_locale(locale: Locale) -> str:
    """The Babel locale for formats: a language without a region takes its likely one
    (CLDR likely subtags: fr -> fr_FR, en -> en_US)."""
    if locale.territory:
        return str(locale)
    likely = get_global("likely_subtags").get(locale.language, "")
    region = parse_locale(likely)[1] if likely else None
    return f"{locale.language}_{region}" if region else locale.language
