"""Text that comes from people (names, e-mails, reasons, account names, discount labels, directory
entries) is shown as typed: never as Markdown in a card, never as HTML on the pay page.

Teams renders a Markdown subset in TextBlock text and in Fact titles and values ("Text formatting
in cards": bold, italic, lists, links; its clients run a CommonMark renderer). The cards are
read here the way such a renderer reads them: every TextBlock and Fact goes through markdown-it
(the CommonMark reference's behaviour), and the HTML it makes must hold paragraphs only, with
the hostile text in it word for word."""

from __future__ import annotations

import dataclasses
import html
import re

import pytest
from markdown_it import MarkdownIt

from cards import assign, audit, common, mylicense, pool_admin, purchase, requests, upgrade
from cards.base import plain, text
from cards.data import PickerPage
from core.views import AuditRow, Page
from tests.cardcheck import assert_valid_cards
from tests.harness import walk

HOSTILE = "**URGENT** [Approve here](https://evil.example/login) _now_ <b>x</b> `y` ~~z~~"
# what a hostile value becomes on its own line(s): a list, a heading, a quote, a code block
HOSTILE_LINES = "- one\n1. two\n# three\n> four\n    five\n==="
PERSON_FIELDS = {"name", "email", "reason", "decline_reason", "requester_name", "requester_email",
                 "created_by_name", "decided_by_name", "discount_label", "account_name", "actor", "message"}

_md = MarkdownIt("commonmark")
_TAG = re.compile(r"</?([a-zA-Z0-9]+)[^>]*>")


def markdown_texts(card: dict) -> list[str]:
    """Every string of the card that Teams reads as Markdown: TextBlock text, Fact titles and values."""
    out = []
    for el in walk(card):
        if el.get("type") == "TextBlock":
            out.append(el["text"])
        elif el.get("type") == "FactSet":
            for f in el["facts"]:
                out += [f["title"], f["value"]]
    return out


def live_markdown(value: str) -> set[str]:
    """The HTML elements a CommonMark renderer makes of ``value`` besides paragraphs and line breaks."""
    return {m[1].lower() for m in _TAG.finditer(_md.render(value))} - {"p", "br"}


def shown(value: str) -> str:
    """The text a reader sees once ``value`` is rendered (tags dropped, entities read, spaces collapsed)."""
    return " ".join(html.unescape(_TAG.sub(" ", _md.render(value))).split())


def hostile(view, value: str = HOSTILE):
    """A view (or a list of views) whose person-given fields all hold ``value``, nested views too."""
    if isinstance(view, list):
        return [hostile(v, value) for v in view]
    if not dataclasses.is_dataclass(view):
        return view
    changes = {}
    for f in dataclasses.fields(view):
        current = getattr(view, f.name)
        if f.name in PERSON_FIELDS and isinstance(current, str | type(None)):
            changes[f.name] = value
        elif isinstance(current, list) or dataclasses.is_dataclass(current):
            changes[f.name] = hostile(current, value)
    return dataclasses.replace(view, **changes)


def test_the_check_sees_live_markdown_and_plain_kills_it():
    """(The check can fail: a raw TextBlock with the hostile text is caught; escaped, it reads as typed.)"""
    raw = {"type": "TextBlock", "text": HOSTILE}
    assert live_markdown(raw["text"]) >= {"strong", "a", "em", "code"}
    assert live_markdown(HOSTILE_LINES) >= {"ul", "ol", "h1", "blockquote"}
    for value in (HOSTILE, HOSTILE_LINES, "a\\*b* \\[x](y)", "-$2.21", "Ada Lovelace (ada@example.com)"):
        assert live_markdown(text(value)["text"]) == set(), value
        assert shown(text(value)["text"]) == " ".join(value.replace("    ", "").split())
    ordinary = "Ada Lovelace (ada@example.com) · 3 × Pro: $14.69"
    assert plain(ordinary) == ordinary


def _cards(lic, admin, member, locale: str) -> dict[str, dict]:
    """One card of each builder that shows person-given text, built from real views with hostile values."""
    pools = lic.pools.list_pools(admin)
    pool = next(p for p in pools if p.assigned >= 2)
    page = lic.pools.pool_users(admin, pool.id)
    users = hostile(page.items)
    hpage = dataclasses.replace(page, items=users)
    options = lic.quotes.upgrade_options(admin, pool.id, [u.id for u in page.items[:2]])
    quote = hostile(lic.quotes.quote_upgrade(admin, pool.id, [u.id for u in page.items[:2]], options[0].code))
    cart = hostile(lic.quotes.cart_preview(admin, [{"plan": pools[0].plan_code, "interval": "month", "quantity": 3},
                                            {"plan": pools[0].plan_code, "interval": "year", "quantity": 2}]))
    request = hostile(lic.requests.request_upgrade(member, "advanced", "x"))
    declined = dataclasses.replace(request, status="declined", decided_at=request.created_at)
    person = assign.DirectoryChoice("aad-1", HOSTILE, HOSTILE)
    audit_rows = Page([AuditRow(1, request.created_at, HOSTILE, None, "request.create", "refused", "user:1",
                                HOSTILE)], 1, 0, 20)
    plans = lic.plan_views.plans()
    return {
        "pools": upgrade.pools_card(locale, HOSTILE, pools),
        "tiers": upgrade.tiers_card(locale, pool, users, len(users), options, [u.id for u in users]),
        "quote": upgrade.quote_card(locale, quote),
        "paid": upgrade.quote_card(locale, dataclasses.replace(quote, status="paid")),
        "cart": purchase.buy_card(locale, plans, {}, cart.currency, cart, key="k"),
        "purchase_quote": upgrade.quote_card(locale, cart),
        "refund": purchase.refund_notice(locale, cart, HOSTILE),
        "request": requests.request_card(locale, request),
        "request_declined": requests.request_card(locale, declined),
        "decline_form": requests.decline_card(locale, request),
        "requests_list": requests.requests_list_card(locale, Page([request], 1, 0, 20)),
        "already": requests.request_card(locale, declined, note=requests.already_note(locale, declined)),
        "my_license": mylicense.my_license_card(locale, [], [request], {}, admins=[HOSTILE]),
        "request_sent": mylicense.request_sent_card(locale, request),
        "not_user": mylicense.not_user_card(locale, HOSTILE, [HOSTILE]),
        "approved_notice": mylicense.approved_notice(locale, request, HOSTILE),
        "declined_notice": mylicense.declined_notice(locale, declined, HOSTILE, HOSTILE),
        "picker": assign.picker_card(locale, hpage, [person], {}, dataset="people"),
        "assign_plans": assign.plans_card(locale, users[0], pools, {}, back=PickerPage(), reason=HOSTILE),
        "assigned": assign.assigned_card(locale, users[0], pool),
        "assigned_notice": assign.assigned_notice(locale, pool.plan_name, pool.interval, HOSTILE),
        "unassign": pool_admin.unassign_confirm(locale, pool, users, [u.id for u in users]),
        "downgrade": pool_admin.downgrade_card(locale, pool, users, [u.id for u in users], plans[:1],
                                               pool_total=len(users), max_users=50),
        "unassigned_notice": pool_admin.unassigned_notice(locale, pool.plan_name, HOSTILE),
        "audit": audit.audit_card(locale, HOSTILE, audit_rows, users={1: HOSTILE}),
        "help": common.help_card(locale, is_admin=True, commands=["help"], unknown=HOSTILE),
        "error": common.error_card(locale, HOSTILE),
    }


@pytest.mark.parametrize("locale", ["en-US", "fr-FR"])
def test_no_card_renders_person_text_as_markdown(demo, admin, member, locale):
    cards = _cards(demo, admin, member, locale)
    where = {}
    for name, card in cards.items():
        for value in markdown_texts(card):
            assert live_markdown(value) == set(), f"{name}: {value!r} renders {live_markdown(value)}"
        # TextRuns and choice titles render no Markdown: they show the text as it is
        as_is = [el["text"] for el in walk(card) if el.get("type") == "TextRun"]
        as_is += [c["title"] for el in walk(card) if el.get("type") == "Input.ChoiceSet" for c in el["choices"]]
        seen = [shown(v) for v in markdown_texts(card)] + as_is
        where[name] = any("**URGENT** [Approve here](https://evil.example/login)" in v for v in seen)
    missing = sorted(name for name, found in where.items() if not found)
    assert missing == [], ", ".join(missing)  # each card shows the hostile text
    assert_valid_cards(list(cards.values()))


def test_a_multiline_reason_makes_no_list_heading_or_code(demo, admin, member):
    request = hostile(demo.requests.request_upgrade(member, "advanced", "x"), HOSTILE_LINES)
    card = requests.request_card("en-US", request)
    values = markdown_texts(card)
    assert all(live_markdown(v) == set() for v in values)
    assert any("- one 1. two # three > four five ===" in shown(v) for v in values)


def test_our_own_words_need_no_escape():
    """(So that escaping every TextBlock never shows a backslash in a text of ours, on a client that
    would not read CommonMark escapes.)"""
    import bot.handler  # noqa: F401 - loads every module that adds strings
    from cards.i18n import MESSAGES_FR, STRINGS, forms

    ours = [text for value in [*(v for d in STRINGS.values() for v in d.values()), *MESSAGES_FR,
                               *MESSAGES_FR.values()] for text in forms(value)]
    placeholders = re.compile(r"\{[^}]*\}")
    assert [v for v in ours if plain(placeholders.sub("x", v)) != placeholders.sub("x", v)] == []


@pytest.mark.parametrize("locale", ["en-US", "fr-FR"])
def test_the_pay_page_shows_person_text_as_text(demo, admin, locale):
    """The sandbox pay page (Jinja, autoescaped): names, account and discount labels never become HTML."""
    from payments.sandbox.checkout import PayPage
    from payments.sandbox.pages import render_pay_page

    pool = next(p for p in demo.pools.list_pools(admin) if p.assigned >= 2)
    users = demo.pools.pool_users(admin, pool.id).items[:2]
    options = demo.quotes.upgrade_options(admin, pool.id, [u.id for u in users])
    quote = hostile(demo.quotes.quote_upgrade(admin, pool.id, [u.id for u in users], options[0].code),
                    '<script>alert(1)</script> <a href="https://evil.example">x</a> & "q"')
    page = render_pay_page(PayPage("payable", quote, '<img src=x onerror=alert(1)>'), "tok", locale)
    assert "<script>alert" not in page and "<img" not in page and '<a href="https://evil' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=alert(1)&gt;" in page
