"""The sandbox payment pages (``/pay/<token>``) in the payer's language: English or French,
chosen from the request's Accept-Language header; amounts and dates formatted as on the cards.

The server cannot know the payer's time zone: it writes every instant in UTC, inside a
``<time datetime="…Z" data-format="date|datetime">`` element, and a small inline script (allowed
by the page's Content-Security-Policy through a per-response nonce) rewrites those texts in the
browser's own zone, in the page's locale. Without JavaScript the page reads in UTC."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from cards.catalogs import N_
from cards.i18n import T
from cards.web_locale import DEFAULT_LOCALE
from payments.sandbox.checkout import PayPage

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
    """The HTML of the payment page for ``page`` in ``locale`` (a tag from :func:`cards.web_locale.page_locale`);
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
