"""Card strings from the gettext catalogs (cards/catalogs.py) in the reader's language, and
locale-aware formatting (Babel) in the reader's time zone."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TypeAlias
from zoneinfo import ZoneInfo, available_timezones

from babel.dates import format_date, format_datetime

from cards.catalogs import N_, NP_, SUPPORTED, Plural, entries, formats_locale, negotiate, read_catalog
from core.errors import Message
from core.money import money as _money

__all__ = ["MESSAGES", "MESSAGES_FR", "N_", "NP_", "STRINGS", "SUPPORTED", "Locale", "Plural", "Reader", "T",
           "babel_locale", "forms", "french_typography", "language", "zone"]


def forms(value: str | Plural) -> tuple[str, ...]:
    """Every text of a catalog entry: each of its forms for a :class:`Plural`."""
    return value.forms if isinstance(value, Plural) else (value,)


_FR_VOWELS = frozenset("aeiouyàâäéèêëîïôöùûüœæ")
_PLACEHOLDER = re.compile(r"(\{[^{}]*\})")
_FR_BEFORE = re.compile(r"[ \u00a0\u202f]*([:;!?»%])(?=[\s)»,.]|$)")  # a colon, not that of "https://" or "10:30"
_FR_AFTER = re.compile(r"«[ \u00a0\u202f]*")


def french_typography(template: str) -> str:
    """A French template with a no-break space (U+00A0) before : ; ! ? % and » and after «, as
    French typography wants (and so that a line never starts with a colon); the placeholders
    and their format specs are left as they are."""
    parts = _PLACEHOLDER.split(template)
    for i in range(0, len(parts), 2):  # the text between placeholders
        parts[i] = _FR_AFTER.sub("«\u00a0", _FR_BEFORE.sub("\u00a0\\1", parts[i]))
    return "".join(parts)



def _typeset(lang: str, value: str | Plural) -> str | Plural:
    """A translation as it is shown: French with its no-break spaces (:func:`french_typography`;
    the .po already holds them, this keeps a new entry right)."""
    if lang != "fr":
        return value
    return value.map(french_typography) if isinstance(value, Plural) else french_typography(value)


def _load() -> tuple[dict, dict, dict]:
    strings: dict[str, dict[str, str | Plural]] = {}
    messages: dict[str, dict[str, str | Plural]] = {}
    contexts: dict[str, dict[tuple[str, str], str]] = {}
    for lang in SUPPORTED:
        keys, templates, contexts[lang] = entries(read_catalog(lang))
        strings[lang] = {k: _typeset(lang, v) for k, v in keys.items()}
        messages[lang] = {k: _typeset(lang, v) for k, v in templates.items()}
    return strings, messages, contexts


# The catalogs, read once: STRINGS[lang][key] and MESSAGES[lang][English template] -> a str or a
# Plural (what the .po files say, French typeset); CONTEXTS[lang][(msgctxt, key)]: words that
# are not card text (the CSV's column names), as they are.
STRINGS, MESSAGES, CONTEXTS = _load()
MESSAGES_FR = MESSAGES["fr"]


# a billing interval: (adjective, unit), catalog keys
_INTERVALS = {"month": (N_("interval.month"), N_("unit.month")), "year": (N_("interval.year"), N_("unit.year"))}


@dataclass(frozen=True)
class Reader:
    """Who reads a card: their locale and, when known, their IANA time zone (e.g.
    "Europe/Paris"). Data like any other card input: :class:`T`, :func:`language` and
    :func:`babel_locale` take a Reader wherever they take a locale string, so a card builder's
    ``locale`` argument may be either (a plain locale: times in UTC, as before)."""

    locale: str | None = None
    timezone: str | None = None


# What a card builder's ``locale`` argument is: a Reader, a plain locale ("fr-CA"; times in UTC) or
# None (English).
Locale: TypeAlias = str | Reader | None


def _locale(locale: Locale) -> str | None:
    return locale.locale if isinstance(locale, Reader) else locale


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones() - {"localtime"})  # (the server's own zone: not a name a client sends)


def zone(name) -> ZoneInfo | None:
    """The time zone with that IANA name; None for anything else (unknown, malformed, not a str)."""
    if not isinstance(name, str) or len(name) > 64 or name not in _zone_names():
        return None
    try:
        return ZoneInfo(name)
    except Exception:  # noqa: BLE001 - a name in the list whose file cannot be read: no zone
        return None


def language(locale: Locale) -> str:
    """The catalog language for a locale ("fr-CA" -> "fr"; anything unsupported: "en")."""
    return negotiate(_locale(locale)).language


def babel_locale(locale: Locale) -> str:
    """The Babel locale of the formats: 'fr-CA' -> 'fr_CA', 'fr' -> 'fr_FR'; anything
    unsupported falls back to en_US."""
    return formats_locale(negotiate(_locale(locale)))


class T:
    """Translator bound to one reader (a :class:`Reader`, or a plain locale): ``t("key", n=3)``;
    also formats money, and dates and times in the reader's time zone (UTC when not known)."""

    def __init__(self, locale: Locale):
        self.zone = zone(locale.timezone) if isinstance(locale, Reader) else None
        locale = _locale(locale)
        self.locale = locale or "en-US"
        negotiated = negotiate(locale)
        self.lang = negotiated.language
        self.babel = formats_locale(negotiated)

    def __call__(self, key: str, **kw) -> str:
        """The string ``key`` formatted with ``kw``; a value that is a Message is said first."""
        text = STRINGS[self.lang].get(key) or STRINGS["en"][key]
        if isinstance(text, Plural):
            text = text.form(kw[text.count])  # type: ignore[index]  # a key's Plural names its count
        if not kw:
            return text
        values = {k: self.say(v) if isinstance(v, Message) else v for k, v in kw.items()}
        if self.lang == "fr":  # "de API Pro" is "d'API Pro": French elides "de" before a vowel
            for k, v in values.items():
                if isinstance(v, str) and v[:1].lower() in _FR_VOWELS:
                    text = re.sub(r"\b([dD])e \{" + re.escape(k) + r"\}", r"\1'{" + k + "}", text)
        return text.format(**values)

    def plural(self, key: str, count: str, /, **kw) -> str:
        """The string ``key`` about the count in ``kw[count]`` (gettext's ngettext: extraction
        writes ``count`` as the msgid_plural of a symbolic key); formatted as :meth:`__call__`."""
        entry = STRINGS["en"][key]
        if not isinstance(entry, Plural) or entry.count != count:
            raise KeyError(f"{key} is not a string counted by {count} in the catalog")
        return self(key, **kw)

    def pgettext(self, context: str, key: str) -> str:
        """Words in a context other than card text (``"csv"``: the export's column names)."""
        return CONTEXTS[self.lang].get((context, key)) or CONTEXTS["en"][(context, key)]

    def say(self, message) -> str:
        """A :class:`~core.errors.Message` in this language: its template's translation formatted
        with the same params (those that are Messages said too, instants in the reader's time
        zone); the English text when there is none. Anything else (a plain or already
        translated str) is returned as it is."""
        if not isinstance(message, Message):
            return str(message)
        template = MESSAGES.get(self.lang, {}).get(message.template)
        if template is None:
            if self.zone is None:
                return str(message)
            template = message.template  # the English text, its instants in the reader's zone
            if message.plural is not None:
                template = Plural((message.template, message.plural), message.count)
        if isinstance(template, Plural):
            template = template.form(message.params[message.count])
        return template.format(**{k: self._param(v) for k, v in message.params.items()})

    def _param(self, value):
        if isinstance(value, Message):
            return self.say(value)
        if isinstance(value, datetime) and value.tzinfo is not None and self.zone is not None:
            return _Local(value.astimezone(self.zone))
        return value

    def money(self, amount: int, currency: str) -> str:
        return _money(amount, currency, self.babel)

    def _local(self, value: datetime) -> datetime:
        """An instant in the reader's zone (a naive one is taken as UTC, as stored)."""
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(self.zone)

    def date(self, value: date) -> str:
        """The calendar date of an instant in the reader's time zone (a ``date`` as it is)."""
        if isinstance(value, datetime) and self.zone is not None:
            value = self._local(value)
        return format_date(value, format="medium", locale=self.babel)

    def datetime(self, value: datetime) -> str:
        """An instant in the reader's time zone, with the zone's abbreviation ("CET", "EST", or
        an offset: "UTC+04"); in UTC with " UTC" when the zone is not known."""
        if self.zone is None:
            return format_datetime(value, format="medium", tzinfo=value.tzinfo, locale=self.babel) + " UTC"
        local = self._local(value)
        return f"{format_datetime(local, format='medium', tzinfo=self.zone, locale=self.babel)} {zone_abbr(local)}"

    def interval(self, interval: str) -> str:
        """A billing interval as an adjective: "monthly", "yearly"."""
        return self(_INTERVALS[interval][0])

    def unit(self, interval: str) -> str:
        """A billing interval as a unit: "month", "year" ("per seat per {unit}")."""
        return self(_INTERVALS[interval][1])

    def quote_line(self, line) -> str:
        """A quote line's label (a ``QuoteLineView``: credit, charge or purchase), as the quote
        card, the cart and the payment page show it."""
        if line.kind == "credit":
            return self(N_("quote.credit"), n=line.quantity, plan=line.plan_name)
        if line.kind == "charge":
            return self(N_("quote.charge"), n=line.quantity, plan=line.plan_name)
        return self(N_("quote.purchase_line"), n=line.quantity, plan=line.plan_name,
                    interval=self.interval(line.interval))

    def signed(self, amount: int, currency: str) -> str:
        """An amount with its sign always shown ("+$0.75", "-$1.51"): a discount on a credit adds."""
        return ("+" if amount > 0 else "") + self.money(amount, currency)

    def discount_label(self, q) -> str:
        """The discount in our words around its name from the account's data ("Discount (15%):
        Partner discount"), or without a name."""
        percent = self.percent(q.discount_percent)
        if q.discount_label:
            return self(N_("quote.discount"), label=q.discount_label, percent=percent)
        return self(N_("quote.discount_unnamed"), percent=percent)

    def quote_amounts(self, q) -> list[tuple[str, str, int]]:
        """A quote's amounts as the quote card, the cart and the payment page show them:
        (role, label, amount), role one of line | discount | carried | due. The discount is
        applied line by line (DESIGN.md), so each line's discount comes right under it: every
        amount above "Due now" adds up to it, to the cent."""
        rows = []
        for ln in q.lines:
            rows.append(("line", self.quote_line(ln), ln.gross))
            if ln.amount != ln.gross:
                rows.append(("discount", self.discount_label(q), ln.amount - ln.gross))
        if q.carried:
            rows.append(("carried", self(N_("quote.carried")), -q.carried))
        rows.append(("due", self(N_("quote.due")), q.due_now))
        return rows

    @staticmethod
    def renewals(q) -> list:
        """The quote's renewal dates and amounts, earliest first (``RenewalView``)."""
        from core.views import RenewalView

        return list(q.renewals) or [RenewalView(q.renewal_date, q.renewal_amount)]

    @staticmethod
    def percent(value) -> str:
        """A discount percentage (a Decimal, or None: "0") without trailing zeros: "15", "12.5"."""
        return f"{value.normalize():f}" if value is not None else "0"


def zone_abbr(local: datetime) -> str:
    """The abbreviation of a local time's zone: "CET", "EDT"; "UTC+04" where the time zone
    database has only an offset ("+04")."""
    name = local.tzname() or ""
    return f"UTC{name}" if name[:1] in ("+", "-") else name


class _Local:
    """A local time in a Message's params: "{until:%Y-%m-%d %H:%M %Z}" with the zone's name as
    cards show it (:func:`zone_abbr`)."""

    def __init__(self, local: datetime):
        self.local = local

    def __format__(self, spec: str) -> str:
        return format(self.local, spec.replace("%Z", zone_abbr(self.local)))
