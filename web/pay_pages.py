"""The sandbox payment pages (``/pay/<token>``) in the payer's language: English or French,
chosen from the request's Accept-Language header; amounts and dates formatted as on the cards.

The server cannot know the payer's time zone: it writes every instant in UTC, inside a
``<time datetime="…Z" data-format="date|datetime">`` element, and a small inline script (allowed
by the page's Content-Security-Policy through a per-response nonce) rewrites those texts in the
browser's own zone, in the page's locale. Without JavaScript the page reads in UTC."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from cards.catalogs import DEFAULT, N_, negotiate
from cards.i18n import T
from core.views import PayPage

DEFAULT_LOCALE = "en-US"


# state -> (its title, its explanation or None, CSS class of the explanation)
_STATES = {
    "payable": (N_("pay.title.payable"), None, ""),
    "paid": (N_("pay.title.paid"), N_("pay.state.paid"), "paid"),
    "expired": (N_("pay.title.expired"), N_("pay.state.expired"), "bad"),
    "cancelled": (N_("pay.title.cancelled"), N_("pay.state.cancelled"), "bad"),
    "refund_needed": (N_("pay.title.refund_needed"), N_("pay.state.refund_needed"), "bad"),
    "unknown": (N_("pay.title.unknown"), N_("pay.state.unknown"), "bad"),
}

_templates = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                         autoescape=select_autoescape(["html"]))

# ------------------------------------------------------------------------------ Accept-Language

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


# ------------------------------------------------------------------------------ the page


def new_nonce() -> str:
    """A fresh nonce for one response's Content-Security-Policy (128 random bits)."""
    return secrets.token_urlsafe(16)


def content_security_policy(nonce: str) -> str:
    """The pay page's policy: nothing but its own nonce'd style and script, its form posting
    to this origin, no framing."""
    return (f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


def iso_utc(value: datetime) -> str:
    """An instant as ISO 8601 in UTC, to the second: "2027-07-19T22:49:18Z" (a naive one is UTC,
    as stored)."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _instant(t: T, key: str, placeholder: str, value: datetime, fmt: str) -> dict:
    """The string ``key`` around its one ``{placeholder}``: an instant ``value`` that the template
    puts in a ``<time>`` element, with the server's UTC wording ("date" or "datetime", as
    ``fmt``) inside; the sentence around it ("le {date}", "jusqu'au {time}") stays the
    translation's, whatever text the page's script puts in its place."""
    before, _, after = t(key).partition("{" + placeholder + "}")
    return {"before": before, "after": after, "iso": iso_utc(value), "format": fmt,
            "text": t.date(value) if fmt == "date" else t.datetime(value)}


def render_pay_page(page: PayPage, token: str, locale: str | None = DEFAULT_LOCALE, *,
                    nonce: str | None = None) -> str:
    """The HTML of the payment page for ``page`` in ``locale`` (a tag from :func:`page_locale`);
    ``nonce`` is the one of the response's :func:`content_security_policy` (a fresh one if not
    given)."""
    t = T(locale)
    heading, explanation, css = _STATES[page.state]
    ctx = {"t": t, "lang": t.lang, "locale": t.babel.replace("_", "-"), "nonce": nonce or new_nonce(),
           "title": t(heading), "message": t(explanation) if explanation else None, "state": page.state,
           "state_class": css, "token": token, "quote": page.quote, "account_name": page.account_name}
    q = page.quote
    if q is not None:
        cur = q.currency
        due_now = t.money(q.due_now, cur)
        rows = [{"role": role, "label": label,
                 "amount": t.signed(amount, cur) if role == "discount" else t.money(amount, cur)}
                for role, label, amount in t.quote_amounts(q) if role != "due"]
        ctx.update(lines=rows, due_now=due_now,
                   renewals=[{"label": _instant(t, N_("quote.renewal"), "date", r.date, "date"),
                              "amount": t.money(r.amount, cur)} for r in t.renewals(q)],
                   prepared_by=t("pay.prepared_by", name=q.created_by_name),
                   expires=_instant(t, N_("pay.expires"), "time", q.expires_at, "datetime"),
                   pay=t("btn.pay", amount=due_now))
    return _templates.get_template("pay.html").render(**ctx)
