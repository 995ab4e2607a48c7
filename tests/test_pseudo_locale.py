"""Every visible string comes through the catalogs: with a pseudo translation built from the
catalogs at test time (every translation wrapped in ⟦…⟧, placeholders intact), a crawl of every
card reachable from the commands (every button of every card, as an administrator and as a
member), the notifications those clicks queue, the payment and export pages and the rate-limit
text show no word outside ⟦…⟧ but data (names, plans, e-mails, amounts, dates, ids: every
string of the database and the plan catalog, and the formats' own words: month names, UTC)."""

from __future__ import annotations

import html
import inspect
import json
import re
from collections import Counter, deque
from pathlib import Path

import pytest
from babel.dates import get_day_names, get_month_names
from sqlalchemy import text as sa_text

import cards.i18n as i18n
from bot.ratelimit import slow_down_text
from cards import assign, audit, common, mylicense, pool_admin, purchase, requests, upgrade
from cards.base import card, text
from cards.i18n import Plural
from core.demo import TENANT
from core.views import Actor
from dialogs.base import Turn
from dialogs.router import Router
from payments.sandbox.checkout import SandboxCheckout
from payments.sandbox.pages import render_pay_page
from tests.harness import shown, walk
from web import audit_export

OPEN, CLOSE = "⟦", "⟧"
_INNERMOST = re.compile(f"{OPEN}[^{OPEN}{CLOSE}]*{CLOSE}")
_WORD = re.compile(r"[^\W\d_]{2,}")
# the words formats bring (Babel's month and day names, the zone), not the catalogs
FORMAT_WORDS = ({w for kind in ("abbreviated", "wide") for w in get_month_names(kind, locale="en_US").values()}
                | {w for kind in ("abbreviated", "wide") for w in get_day_names(kind, locale="en_US").values()}
                | {"UTC", "AM", "PM", "US"})
MAX_CARDS = 2000
CLICKS_PER_VERB = 40


def _wrap(text: str) -> str:
    return f"{OPEN}{text}{CLOSE}"


def pseudo(value):
    return value.map(_wrap) if isinstance(value, Plural) else _wrap(value)


@pytest.fixture
def pseudo_en(monkeypatch):
    """English replaced by the pseudo translation of every entry of the catalogs (the command
    words the router reads once, at its start, are not: build routers first)."""
    def install():
        monkeypatch.setitem(i18n.STRINGS, "en", {k: v if k.startswith("alias.") else pseudo(v)
                                                 for k, v in i18n.STRINGS["en"].items()})
        monkeypatch.setitem(i18n.MESSAGES, "en", {k: pseudo(v) for k, v in i18n.MESSAGES["en"].items()})
    return install


def leaks(text: str, data_words: set[str]) -> list[str]:
    """The words of ``text`` that are neither inside ⟦…⟧ nor data."""
    previous = None
    while previous != text:
        previous, text = text, _INNERMOST.sub(" ", text)
    return [w for w in _WORD.findall(text) if w not in data_words and w not in FORMAT_WORDS]


def visible(card: dict) -> list[str]:
    """Every text a reader sees on a card: TextBlocks, TextRuns, facts, choices, input labels and
    placeholders, toggles, action titles, image alt texts and the card's fallback text."""
    out = [card.get("fallbackText") or ""]
    for el in walk(card):
        t = str(el.get("type"))
        if t == "TextBlock":
            out.append(shown(el.get("text", "")))
        elif t == "TextRun":
            out.append(str(el.get("text", "")))
        elif t == "FactSet":
            out += [shown(f.get("title")) + " " + shown(f.get("value")) for f in el.get("facts") or []]
        elif t.startswith("Input."):
            out += [str(el.get(k) or "") for k in ("label", "placeholder", "title", "errorMessage")]
            out += [str(c.get("title", "")) for c in el.get("choices") or []]
        elif t.startswith("Action."):
            out.append(str(el.get("title", "")))
        elif t == "Image":
            out.append(str(el.get("altText", "")))
    return [s for s in out if s]


def page_text(page: str) -> str:
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", page))


# the columns whose text the cards show as data (an audit event's actor: a person's name, or the
# payment provider that told a payment, "sandbox" or "stripe", shown as it is)
DATA_COLUMNS = {"audit_events": ("actor",), "accounts": ("name",), "users": ("name", "email"), "discounts": ("label",),
                "quotes": ("id", "discount_label"), "upgrade_requests": ("reason", "decline_reason")}


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def data_words(lic) -> set[str]:
    """The words of the data: people's names and e-mails, the account's, discount labels, the
    reasons people wrote, and every value (not key) of the plan catalog (plan and family names)."""
    strings = []
    with lic.db.read() as s:
        for table, columns in DATA_COLUMNS.items():
            for column in columns:
                values = [v for (v,) in s.execute(sa_text(f"SELECT {column} FROM {table}")) if v]  # noqa: S608
                strings += values + [v[:8] for v in values]  # (a quote's id is shown by its first 8 characters)
    with (Path(i18n.__file__).parent.parent / "core" / "catalog.json").open(encoding="utf-8") as fh:
        strings += [v for v in _strings(json.load(fh)) if not v.isascii() or not v.islower()]  # (not codes: "eco")
    return {w for s in strings for w in _WORD.findall(s)}


SAMPLE_TEXT = "Qwvx"  # what the crawl types into a text box (a data word: the card may show it back)


def _inputs(el: dict) -> dict[str, dict]:
    return {i["id"]: i for i in walk(el, into_show_cards=False)
            if str(i.get("type", "")).startswith("Input.") and i.get("id")}


def _scopes(card: dict):
    """(inputs, actions) a click sends, as Teams collects them: the card's own, and each ShowCard's
    with its parent's inputs too."""
    stack = [(card, {})]
    while stack:
        el, outer = stack.pop()
        inputs = {**outer, **_inputs(el)}
        actions = [a for a in walk(el, into_show_cards=False) if a.get("type") in ("Action.Execute", "Action.Submit")]
        yield inputs, actions
        stack += [(a["card"], inputs) for a in walk(el, into_show_cards=False)
                  if a.get("type") == "Action.ShowCard" and a is not el and isinstance(a.get("card"), dict)]


def _sample(el: dict) -> str | None:
    kind = el.get("type")
    if kind == "Input.ChoiceSet":
        return str(el["choices"][0]["value"]) if el.get("choices") else None
    if kind == "Input.Text":
        return SAMPLE_TEXT
    if kind == "Input.Number":
        return str(el.get("min", 1))
    if kind == "Input.Toggle":
        return str(el.get("valueOn", "true"))
    return None


def _click(inputs: dict[str, dict], action: dict, fill: bool) -> dict | None:
    """The data of a click with the inputs at their values (``fill``: the empty ones given a
    sample); None when a required input is left empty."""
    data = dict(action.get("data") or {})
    if action.get("associatedInputs") == "none":
        return data
    for input_id, el in inputs.items():
        value = el.get("value")
        if value in (None, "") and fill:
            value = _sample(el)
        if value in (None, ""):
            if el.get("isRequired"):
                return None
            continue
        data[input_id] = str(value)
    return data


def crawl(router: Router, turn: Turn, commands: list[str]) -> list[dict]:
    """Every card reachable from ``commands`` by clicking every button, with the inputs as they
    are and with every empty one filled, breadth first; each (verb, data) once, each verb at most
    CLICKS_PER_VERB times (other pages, other rows of the same card)."""
    queue = deque(router.on_text(turn, c) for c in commands)
    seen_clicks: set[str] = set()
    per_verb: Counter = Counter()
    cards = []
    while queue and len(cards) < MAX_CARDS:
        card = queue.popleft()
        if not card:
            continue
        cards.append(card)
        for inputs, actions in _scopes(card):
            for action, fill in ((a, f) for a in actions for f in (False, True)):
                data = _click(inputs, action, fill)
                verb = action.get("verb") or (data or {}).pop("verb", None)
                key = json.dumps([verb, data], sort_keys=True, default=str)
                if data is None or verb is None or key in seen_clicks or per_verb[verb] >= CLICKS_PER_VERB:
                    continue
                seen_clicks.add(key)
                per_verb[verb] += 1
                queue.append(router.on_action(turn, verb, data))
    return cards


def _pay_every_link(lic) -> None:
    with lic.db.read() as s:
        tokens = [t for (t,) in s.execute(sa_text("SELECT external_id FROM payments WHERE provider = 'sandbox'"))]
    for token in tokens:
        if SandboxCheckout(lic).page(token).state == "payable":
            SandboxCheckout(lic).pay(token)


def _outbox_cards(lic, router: Router) -> list[dict]:
    cards = []
    for item in lic.outbox.claim("pseudo-test", limit=500):
        for render in (router.notification, router.card_update):
            card = render(item, "en-US")
            if card:
                cards.append(card)
    return cards


def test_the_check_sees_a_string_that_does_not_come_through_the_catalog():
    words = {"Contoso", "Eco"}
    assert leaks("⟦License pools of Contoso⟧", words) == []
    assert leaks("Eco ⟦(monthly)⟧ · $4.00 · Nov 30, 2026, 11:30:00 UTC", words) == []
    assert leaks("⟦Ask ⟦Ada or Bo⟧ to add you.⟧", words) == []
    assert leaks("Slow down", words) == ["Slow", "down"]
    assert leaks("⟦Status⟧: Expired", words) == ["Expired"]


# the card modules whose public functions build what a reader sees
CARD_MODULES = (assign, audit, common, mylicense, pool_admin, purchase, requests, upgrade)
# builders the crawl cannot reach on the demo data, each with why (the journeys' tests render them)
NOT_REACHED = {
    "cards.mylicense.names_of": "a helper: joins names the caller gives",
    "cards.mylicense.declined_notice": "the demo has one pending request: the crawl approves it first",
    "cards.requests.decline_card": "the same: no request is left pending to decline",
    "cards.requests.reopened_notice": "a request reopens when its quote expires or is cancelled unpaid",
    "cards.purchase.refund_notice": "a payment arriving after the quote was closed",
    "cards.pool_admin.downgrade_applied_notice": "a downgrade applies at the renewal (the clock)",
}


def _record_builders(monkeypatch) -> tuple[set[str], set[str]]:
    every, called = set(), set()
    for module in CARD_MODULES:
        for name, fn in list(vars(module).items()):
            if inspect.isfunction(fn) and fn.__module__ == module.__name__ and not name.startswith("_"):
                every.add(f"{module.__name__}.{name}")

                def recorded(*args, _fn=fn, _name=f"{module.__name__}.{name}", **kw):
                    called.add(_name)
                    return _fn(*args, **kw)
                monkeypatch.setattr(module, name, recorded)
    return every, called


def _pay_an_upgrade(lic, admin) -> str:
    """An upgrade quote of two users, paid: its id."""
    pool = next(p for p in lic.pools.list_pools(admin) if p.assigned > 0 and p.plan_code == "eco")
    users = [u.id for u in lic.pools.pool_users(admin, pool.id, page_size=2).items]
    q = lic.links.payment_link(admin, lic.quotes.quote_upgrade(admin, pool.id, users, "pro").id)
    SandboxCheckout(lic).pay(q.payment_url.rsplit("/", 1)[1])
    return q.id


def test_every_card_and_notification_comes_through_the_catalog(demo, admin, member, pseudo_en, monkeypatch):
    every, called = _record_builders(monkeypatch)
    routers = Router(demo), Router(demo)
    pseudo_en()
    stranger = Actor(TENANT, "00000000-0000-0000-0000-0000000000099")
    shown_cards = crawl(routers[1], Turn(member, "en-US"), ["mylicense", "help", "licenses"])
    shown_cards += crawl(routers[1], Turn(stranger, "en-US"), ["mylicense", "licenses"])
    shown_cards += crawl(routers[0], Turn(admin, "en-US"),
                         ["licenses", "buy", "assign", "requests", "audit", "mylicense", "help", "what is this"])
    shown_cards += _outbox_cards(demo, routers[0])
    _pay_every_link(demo)  # (the paid, refund and upgraded notices; the quotes' cards as paid)
    paid = demo.quotes.quote(admin, _pay_an_upgrade(demo, admin))
    shown_cards += _outbox_cards(demo, routers[0]) + [upgrade.quote_card("en-US", paid)]
    shown_cards += crawl(routers[0], Turn(admin, "en-US"), ["licenses", "requests", "audit"])
    commands = list(common.COMMANDS)
    shown_cards += [common.welcome("en-US", is_admin=True, commands=commands),
                    common.welcome("en-US", is_admin=False, commands=commands), common.apology_card("en-US"),
                    card([text(assign.directory_busy("en-US", 30))],
                                [assign.buy_action("en-US", {})])]
    assert len(shown_cards) > 100
    missing = every - called - set(NOT_REACHED)
    assert not missing, f"card builders the test renders nowhere: {missing}"
    words = data_words(demo) | {SAMPLE_TEXT}  # (with what the crawl wrote: requests' reasons, quotes...)
    found = {text: leaked for card in shown_cards for text in visible(card) if (leaked := leaks(text, words))}
    assert not found, f"visible text that is not from the catalogs: {list(found.items())[:10]}"


def _eco_pool(lic, actor):
    return next(p for p in lic.pools.list_pools(actor) if (p.plan_code, p.interval) == ("eco", "month"))


@pytest.mark.parametrize("state", ["payable", "paid", "cancelled", "expired", "unknown"])
def test_every_pay_page_comes_through_the_catalog(demo, admin, clock, pseudo_en, state):
    pool = _eco_pool(demo, admin)
    users = [u.id for u in demo.pools.pool_users(admin, pool.id, page_size=2).items]
    q = demo.links.payment_link(admin, demo.quotes.quote_upgrade(admin, pool.id, users, "pro").id)
    token = q.payment_url.rsplit("/", 1)[1]
    if state == "paid":
        SandboxCheckout(demo).pay(token)
    elif state == "cancelled":
        demo.quotes.cancel_quote(admin, q.id)
    elif state == "expired":
        clock.advance(minutes=45)
    elif state == "unknown":
        token = "x" * 32
    page = SandboxCheckout(demo).page(token)
    assert page.state == state
    pseudo_en()
    leaked = leaks(page_text(render_pay_page(page, token, "en-US")), data_words(demo))
    assert not leaked, f"pay page ({state}) words not from the catalogs: {leaked}"


@pytest.mark.parametrize("state", ["invalid", "expired", "not_admin", "unavailable"])
def test_every_export_page_and_the_rate_limit_text_come_through_the_catalog(pseudo_en, state):
    pseudo_en()
    assert not leaks(page_text(audit_export.page(state, "en", 400).text), set())
    assert not leaks(" ".join(slow_down_text("en-US")), set())
