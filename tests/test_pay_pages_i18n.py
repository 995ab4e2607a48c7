"""The sandbox payment pages in the payer's language (Accept-Language), through real HTTP: French
for a French browser with the amounts and dates as the French cards show them, English otherwise."""

from __future__ import annotations

import asyncio
import html as html_lib
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, select

from bootstrap import build_server
from cards.i18n import T
from cards.upgrade import quote_card
from cards.web_locale import accept_language, page_locale
from core.config import Settings
from core.models import AuditEvent, Pool, Subscription
from payments.sandbox.checkout import SandboxCheckout
from payments.sandbox.pages import iso_utc, render_pay_page
from tests.harness import amount_rows

FR_BROWSER = "fr-FR,fr;q=0.9,en;q=0.8"


class Page(HTMLParser):
    """What a person sees: the page's language, texts by element id, the table rows, all text;
    and what the browser gets besides: the <time> elements ({"datetime", "format", "text"}),
    the scripts ({"nonce", "text"}), the style elements' nonces, <html data-locale>."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.lang, self.locale, self.by_id, self.rows, self.texts = None, None, {}, [], []
        self.times: list[dict] = []
        self.scripts: list[dict] = []
        self.style_nonces: list[str | None] = []
        self._open: list[tuple[str, str | None]] = []
        self._cells: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(html)
        self.text = " ".join(" ".join(self.texts).split())

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "html":
            self.lang, self.locale = attrs.get("lang"), attrs.get("data-locale")
        elif tag == "time":
            self.times.append({"datetime": attrs.get("datetime"), "format": attrs.get("data-format"), "text": ""})
        elif tag == "script":
            self.scripts.append({"nonce": attrs.get("nonce"), "text": ""})
        elif tag == "style":
            self.style_nonces.append(attrs.get("nonce"))
        if tag in ("meta", "br", "input"):
            return
        key = attrs.get("id") or ("h1" if tag == "h1" else None)  # the heading has no id
        self._open.append((tag, key))
        if key:
            self.by_id[key] = ""
        if tag == "tr":
            self._cells = []
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None and self._cells is not None:
            self._cells.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._cells is not None:
            self.rows.append(tuple(self._cells))
            self._cells = None
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data):
        if any(t == "script" for t, _ in self._open):
            self.scripts[-1]["text"] += data
            return
        if any(t in ("style", "title") for t, _ in self._open):
            return
        if any(t == "time" for t, _ in self._open):
            self.times[-1]["text"] += data
        self.texts.append(data)
        if self._cell is not None:
            self._cell.append(data)
        for _, id_ in self._open:
            if id_:
                self.by_id[id_] += data

    def of(self, id_: str) -> str:
        """The text of the element with this id (spaces, even non-breaking, as single spaces)."""
        return " ".join(self.by_id[id_].split())

    @property
    def title(self) -> str:
        return self.of("h1")


@pytest.fixture
async def web_client(demo, db_url, aiohttp_client):
    settings = Settings(DATABASE_URL=db_url, PUBLIC_BASE_URL="http://127.0.0.1")
    return await aiohttp_client(build_server(settings, demo).app)


def _eco_pool_id(lic) -> int:
    with lic.db.read() as s:
        return s.scalars(select(Pool.id).join(Subscription, Subscription.id == Pool.subscription_id)
                         .where(Pool.plan_code == "eco", Subscription.interval == "month")).one()


async def _upgrade_link(lic, admin, n=2, plan="pro"):
    def make():
        pool = _eco_pool_id(lic)
        users = [u.id for u in lic.pools.pool_users(admin, pool, page_size=n).items]
        return lic.links.payment_link(admin, lic.quotes.quote_upgrade(admin, pool, users, plan).id)

    q = await asyncio.to_thread(make)
    return q, q.payment_url.rsplit("/", 1)[1]


async def _purchase_link(lic, admin):
    def make():
        return lic.links.payment_link(admin, lic.quotes.quote_purchase(admin, [{"plan": "advanced", "interval": "year",
                                                                   "quantity": 3}]).id)

    q = await asyncio.to_thread(make)
    return q, q.payment_url.rsplit("/", 1)[1]


async def _get(client, token, lang=None):
    resp = await client.get(f"/pay/{token}", headers={"Accept-Language": lang} if lang is not None else {})
    return resp, await resp.text()


async def _post(client, token, action, lang=None):
    resp = await client.post(f"/pay/{token}", data={"action": action},
                             headers={"Accept-Language": lang} if lang is not None else {})
    return resp, await resp.text()


def _settled(lic) -> int:
    with lic.db.read() as s:
        return s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "quote.settled"))


def _tr(locale: str, key: str, **kw) -> str:
    return " ".join(T(locale)(key, **kw).split())


# ---------------------------------------------------------------------------- the payable page


async def test_a_french_browser_gets_the_page_in_french(web_client, demo, admin):
    q, token = await _upgrade_link(demo, admin)
    resp, html = await _get(web_client, token, FR_BROWSER)
    page = Page(html)
    fr, en = T("fr-FR"), T("en-US")
    due = fr.money(q.due_now, q.currency)
    assert resp.status == 200
    assert page.lang == "fr" and resp.headers["Content-Language"] == "fr"
    assert "Accept-Language" in resp.headers["Vary"]
    assert page.of("due") == " ".join(due.split())
    assert page.of("pay") == _tr("fr-FR", "btn.pay", amount=due) and page.of("pay").startswith("Payer ")
    assert page.of("cancel") == _tr("fr-FR", "btn.cancel") != _tr("en-US", "btn.cancel")
    assert page.title == _tr("fr-FR", "pay.title.payable") != "Review and pay"
    # French number formats (no "$1,234.56"), French date of renewal and expiry
    assert en.money(q.due_now, q.currency) not in html and "," in due
    assert fr.date(q.renewal_date) in html and fr.datetime(q.expires_at) in html
    # no English caption left
    for key in ("pay.sandbox", "quote.due", "pay.close", "pay.quote"):
        assert _tr("fr-FR", key) in page.text and _tr("en-US", key) not in page.text, key
    # the account and people are data: shown as they are
    assert "Contoso" in page.text and q.created_by_name in page.text
    # same protections as in English
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("locale", ["fr-FR", "fr-CA"])
async def test_the_quote_lines_read_as_on_the_french_quote_card(web_client, demo, admin, locale):
    q, token = await _upgrade_link(demo, admin, n=3)
    _, html = await _get(web_client, token, f"{locale},en;q=0.5")
    rows = [r for r in Page(html).rows if len(r) == 2]
    card_rows = set(amount_rows(quote_card(locale, q)))  # character for character, no-break spaces too
    discounted = sum(ln.amount != ln.gross for ln in q.lines)  # each line's discount comes under it
    assert len(rows) == len(q.lines) + discounted + 1 + len(q.renewals)  # the lines, due now, the renewals
    for row in rows:
        assert row in card_rows, (row, card_rows)
    assert any(_tr(locale, "quote.credit", n=3, plan="Eco") == label for label, _ in rows)


async def test_a_purchase_quote_in_french(web_client, demo, admin):
    q, token = await _purchase_link(demo, admin)
    _, html = await _get(web_client, token, "fr")
    page = Page(html)
    [line] = q.lines
    assert (T("fr")("quote.purchase_line", n=3, plan=line.plan_name, interval=T("fr").interval("year")),
            T("fr").money(line.gross, q.currency)) in page.rows
    assert "annuel" in page.text and "yearly" not in page.text


async def test_a_canadian_browser_gets_canadian_french_amounts(web_client, demo, admin):
    q, token = await _upgrade_link(demo, admin)
    _, ca_html = await _get(web_client, token, "fr-CA")
    _, fr_html = await _get(web_client, token, "fr-FR")
    ca, fr = T("fr-CA").money(q.due_now, q.currency), T("fr-FR").money(q.due_now, q.currency)
    assert ca != fr  # the regional formats do differ (spaces, currency sign)
    assert Page(ca_html).of("due") == " ".join(ca.split()) and ca in ca_html and fr not in ca_html
    assert Page(ca_html).lang == "fr"


@pytest.mark.parametrize("lang", ["en-US", None, "en-GB,en;q=0.9", "de-DE,de;q=0.9", "*"])
async def test_english_for_english_other_languages_or_no_header(web_client, demo, admin, lang):
    q, token = await _upgrade_link(demo, admin)
    resp, html = await _get(web_client, token, lang)
    page = Page(html)
    due = T("en-US").money(q.due_now, q.currency)
    assert resp.status == 200 and page.lang == "en" and resp.headers["Content-Language"] == "en"
    assert page.of("due") == due and due.startswith("$")
    assert page.of("pay") == f"Pay {due}" and page.of("cancel") == "Cancel"
    assert page.title == "Review and pay"
    assert _tr("fr-FR", "pay.sandbox") not in page.text


async def test_french_is_chosen_by_quality_among_other_languages(web_client, demo, admin):
    q, token = await _upgrade_link(demo, admin)
    _, html = await _get(web_client, token, "de-DE,fr;q=0.5")
    assert Page(html).lang == "fr"
    assert Page(html).of("due") == " ".join(T("fr-FR").money(q.due_now, q.currency).split())
    _, html = await _get(web_client, token, "en;q=0.4,fr-CH;q=0.6")
    assert Page(html).lang == "fr" and T("fr-CH").money(q.due_now, q.currency) in html
    _, html = await _get(web_client, token, "fr;q=0.4,en;q=0.6")
    assert Page(html).lang == "en"
    _, html = await _get(web_client, token, "fr;q=0,en;q=0.1")  # q=0: French is not acceptable
    assert Page(html).lang == "en"


@pytest.mark.parametrize("header", ["!!!", ";;;,,,", "fr;q=abc", "fr-FR;q=1.5", "q=0.9", "fr;level=1",
                                    "français", "fr_FR", "x" * 4000, "fr-FR-" + "a" * 20])
async def test_a_malformed_header_gives_english_and_no_error(web_client, demo, admin, header):
    q, token = await _upgrade_link(demo, admin)
    resp, html = await _get(web_client, token, header)
    assert resp.status == 200 and "Traceback" not in html
    assert Page(html).lang == "en" and Page(html).of("due") == T("en-US").money(q.due_now, q.currency)


# ---------------------------------------------------------------------------- the other states


async def test_paying_and_cancelling_answer_in_french(web_client, demo, admin):
    q, token = await _upgrade_link(demo, admin)
    resp, html = await _post(web_client, token, "pay", FR_BROWSER)
    page = Page(html)
    assert resp.status == 200 and page.lang == "fr"
    assert 'data-state="paid"' in html and page.of("state") == _tr("fr", "pay.state.paid")
    assert page.title == _tr("fr", "pay.title.paid") and "pay" not in page.by_id
    assert _settled(demo) == 1

    q2, token2 = await _upgrade_link(demo, admin, n=1, plan="advanced")
    resp, html = await _post(web_client, token2, "cancel", "fr-CA")
    page = Page(html)
    assert resp.status == 200 and page.lang == "fr" and 'data-state="cancelled"' in html
    assert page.of("state") == _tr("fr", "pay.state.cancelled") != _tr("en", "pay.state.cancelled")
    assert page.title == _tr("fr", "pay.title.cancelled")
    # a paid page looked at again in French still says paid, in French
    _, html = await _get(web_client, token, "fr")
    assert Page(html).of("state") == _tr("fr", "pay.state.paid") and _settled(demo) == 1


async def test_an_expired_quote_in_french(web_client, demo, admin, clock):
    q, token = await _upgrade_link(demo, admin)
    clock.advance(minutes=45)
    resp, html = await _get(web_client, token, FR_BROWSER)
    page = Page(html)
    assert resp.status == 200 and page.lang == "fr" and 'data-state="expired"' in html
    assert page.title == _tr("fr", "pay.title.expired")
    assert page.of("state") == _tr("fr", "pay.state.expired") and "facturé" in page.of("state")
    resp, html = await _post(web_client, token, "pay", FR_BROWSER)
    assert 'data-state="expired"' in html and Page(html).lang == "fr" and "pay" not in Page(html).by_id
    assert _settled(demo) == 0


@pytest.mark.parametrize("token", ["nope", "%3Cscript%3E" * 3])
async def test_an_unknown_link_in_french(web_client, token):
    resp, html = await _get(web_client, token, FR_BROWSER)
    page = Page(html)
    assert resp.status == 404 and page.lang == "fr" and "Traceback" not in html
    assert page.title == _tr("fr", "pay.title.unknown") != "Link not found"
    assert page.of("state") == _tr("fr", "pay.state.unknown")
    assert "<script>" not in html
    resp, html = await _post(web_client, token, "pay", FR_BROWSER)
    assert resp.status == 404 and Page(html).lang == "fr"


# ---------------------------------------------------------------------------- instants in the browser's zone

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
CSP_NONCE = re.compile(r"script-src 'nonce-([A-Za-z0-9_-]+)'")


def _utc(value: datetime) -> datetime:
    """A core instant (naive ones are UTC, as stored), to the second as the page gives it."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).replace(microsecond=0)


def _plain(fragment: str) -> str:
    """The text of an HTML fragment, as read without JavaScript."""
    return html_lib.unescape(re.sub(r"<[^>]*>", "", fragment))


def _instant(time: dict) -> datetime:
    assert ISO_UTC.fullmatch(time["datetime"]), time
    return datetime.fromisoformat(time["datetime"])


def _period_end(lic, pool_id: int) -> datetime:
    with lic.db.read() as s:
        return s.scalars(select(Subscription.period_end).join(Pool, Pool.subscription_id == Subscription.id)
                         .where(Pool.id == pool_id)).one()


@pytest.mark.parametrize("header", [None, "en-US", FR_BROWSER, "fr-CA"])
async def test_the_instants_are_time_elements_in_utc_with_todays_text(web_client, demo, admin, clock, header):
    q, token = await _upgrade_link(demo, admin)
    locale = page_locale(header)
    t = T(locale)
    _, html = await _get(web_client, token, header)
    page = Page(html)
    renewal, expiry = page.times  # the renewal date row, the link's expiry; nothing else is an instant
    # the instants are the core's: the end of the pool's billing period, the quote's expiry
    assert _instant(renewal) == _utc(q.renewal_date) == _utc(_period_end(demo, q.pool_id))
    assert _instant(expiry) == _utc(q.expires_at) == _utc(clock.now + timedelta(minutes=30))
    assert (renewal["format"], expiry["format"]) == ("date", "datetime")
    # without JavaScript the page reads as before: the server's UTC text inside
    assert renewal["text"] == t.date(q.renewal_date) and expiry["text"] == t.datetime(q.expires_at)
    assert expiry["text"].endswith(" UTC")
    [row] = [r for r in page.rows if r and renewal["text"] in r[0]]
    assert row == (t("quote.renewal", date=t.date(q.renewal_date)), t.money(q.renewal_amount, q.currency))
    [expires] = [_plain(p) for p in re.findall(r"<p>(.*?)</p>", html, re.S) if "<time" in p]
    assert expires == t("pay.expires", time=t.datetime(q.expires_at))
    # the script formats in the page's negotiated locale (fr alone is France's, as on the server)
    assert page.locale == {None: "en-US", "en-US": "en-US", FR_BROWSER: "fr-FR", "fr-CA": "fr-CA"}[header]


async def test_the_sentences_keep_their_words_around_the_time_element(web_client, demo, admin):
    q, token = await _upgrade_link(demo, admin)
    _, fr = await _get(web_client, token, FR_BROWSER)
    _, en = await _get(web_client, token, "en-US")
    renewal, expiry = (f'<time datetime="{iso_utc(v)}" data-format="{f}">'
                       for v, f in ((q.renewal_date, "date"), (q.expires_at, "datetime")))
    # whatever text the script puts in the element, "le …" / "jusqu'au …" stay around it
    assert f"Puis au prochain cycle de facturation, le {renewal}{T('fr-FR').date(q.renewal_date)}</time></td>" in fr
    assert f"Ce lien est valable jusqu&#39;au {expiry}{T('fr-FR').datetime(q.expires_at)}</time>.</p>" in fr
    assert f"Then at the next billing cycle, {renewal}{T('en-US').date(q.renewal_date)}</time></td>" in en
    assert f"This link is valid until {expiry}{T('en-US').datetime(q.expires_at)}</time>.</p>" in en


async def test_the_script_is_allowed_by_the_policys_nonce_only(web_client, demo, admin):
    q, token = await _upgrade_link(demo, admin)
    resp, html = await _get(web_client, token, FR_BROWSER)
    page = Page(html)
    csp = resp.headers["Content-Security-Policy"]
    [nonce] = CSP_NONCE.findall(csp)
    [script] = page.scripts  # inline, once, at the end of the page
    assert script["nonce"] == nonce and page.style_nonces == [nonce] and len(nonce) >= 22
    assert "src" not in html.split("<script", 1)[1].split(">", 1)[0]
    assert re.search(r"</script>\s*</body>\s*</html>\s*$", html)
    for word in ("Intl.DateTimeFormat", "dateStyle", "timeStyle", "data-locale", "time[datetime]"):
        assert word in script["text"], word
    assert len(script["text"].strip().splitlines()) <= 40
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives == {"default-src": "'none'", "style-src": f"'nonce-{nonce}'", "script-src": f"'nonce-{nonce}'",
                          "form-action": "'self'", "base-uri": "'none'", "frame-ancestors": "'none'"}
    assert "unsafe" not in csp and "<form method=\"post\" action=\"/pay/" in html  # the form posts to this origin
    # a new nonce for every response; the other protections as before
    resp2, html2 = await _get(web_client, token, FR_BROWSER)
    [nonce2] = CSP_NONCE.findall(resp2.headers["Content-Security-Policy"])
    assert nonce2 != nonce and Page(html2).scripts[0]["nonce"] == nonce2 and nonce not in html2
    for r in (resp, resp2):
        assert r.headers["Cache-Control"] == "no-store" and r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Referrer-Policy"] == "no-referrer" and r.headers["Vary"] == "Accept-Language"


async def test_every_state_with_a_quote_shows_its_renewal_date_as_an_instant(web_client, demo, admin, clock):
    q, token = await _upgrade_link(demo, admin)
    resp, html = await _post(web_client, token, "pay", FR_BROWSER)
    page = Page(html)
    assert 'data-state="paid"' in html and [(_instant(x), x["format"]) for x in page.times] == [
        (_utc(q.renewal_date), "date")]  # no expiry once paid
    assert len(page.scripts) == 1 and page.scripts[0]["nonce"] in resp.headers["Content-Security-Policy"]

    q2, token2 = await _upgrade_link(demo, admin, n=1, plan="advanced")
    _, html = await _post(web_client, token2, "cancel", "en-US")
    assert 'data-state="cancelled"' in html
    assert [(_instant(x), x["text"]) for x in Page(html).times] == [(_utc(q2.renewal_date),
                                                                     T("en-US").date(q2.renewal_date))]

    q3, token3 = await _upgrade_link(demo, admin, n=1)
    clock.advance(minutes=45)
    _, html = await _get(web_client, token3, "fr-CA")
    assert 'data-state="expired"' in html
    assert [(_instant(x), x["text"]) for x in Page(html).times] == [(_utc(q3.renewal_date),
                                                                     T("fr-CA").date(q3.renewal_date))]


async def test_a_purchase_page_has_its_renewal_date_and_expiry_as_instants(web_client, demo, admin):
    q, token = await _purchase_link(demo, admin)
    _, html = await _get(web_client, token, "fr")
    renewal, expiry = Page(html).times
    assert _instant(renewal) == _utc(q.renewal_date) == _utc(q.lines[0].period_end)  # a year from now
    assert _instant(expiry) == _utc(q.expires_at)
    assert renewal["text"] == T("fr").date(q.renewal_date) and expiry["text"] == T("fr").datetime(q.expires_at)


@pytest.mark.parametrize("token", ["nope"])
async def test_an_unknown_link_has_no_instant_and_no_script(web_client, token):
    resp, html = await _get(web_client, token, FR_BROWSER)
    page = Page(html)
    assert resp.status == 404 and page.times == [] and page.scripts == []
    assert "Content-Security-Policy" in resp.headers and "<time" not in html


@pytest.mark.parametrize(("value", "iso"), [
    (datetime(2027, 7, 19, 22, 49, 18, 999_999, tzinfo=UTC), "2027-07-19T22:49:18Z"),  # to the second, as shown
    (datetime(2027, 7, 19, 22, 49, 18), "2027-07-19T22:49:18Z"),  # naive: UTC, as stored
    (datetime(2027, 7, 20, 0, 49, 18, tzinfo=timezone(timedelta(hours=2))), "2027-07-19T22:49:18Z"),
])
def test_iso_utc(value, iso):
    assert iso_utc(value) == iso


# ---------------------------------------------------------------------------- escaping and negotiation


async def test_data_stay_escaped_in_french(demo, admin):
    q, token = await _upgrade_link(demo, admin)
    page = await asyncio.to_thread(SandboxCheckout(demo).page, token)
    evil = "<script>alert('x')</script>"
    page = replace(page, account_name=evil, quote=replace(page.quote, created_by_name=evil, discount_label=evil))
    for locale in ("fr-FR", "en-US"):
        html = render_pay_page(page, token, locale)
        discounted = sum(ln.amount != ln.gross for ln in q.lines)  # the discount's name under each such line
        assert evil not in html and html.count("&lt;script&gt;") == 2 + discounted
        assert f"<html lang=\"{locale[:2]}\" data-locale=\"{locale}\">" in html


@pytest.mark.parametrize(("header", "ranges", "locale"), [
    (None, [], "en-US"),
    ("", [], "en-US"),
    ("fr", ["fr"], "fr"),
    ("fr-FR", ["fr-FR"], "fr-FR"),
    ("fr-CA", ["fr-CA"], "fr-CA"),
    ("fr-CH", ["fr-CH"], "fr-CH"),
    ("FR-ca", ["FR-ca"], "fr-CA"),
    ("fr-Latn-FR", ["fr-Latn-FR"], "fr-FR"),
    ("fr-419", ["fr-419"], "fr"),
    (FR_BROWSER, ["fr-FR", "fr", "en"], "fr-FR"),
    ("de-DE,fr;q=0.5", ["de-DE", "fr"], "fr"),
    ("en;q=0.5, fr-CA;q=0.8", ["fr-CA", "en"], "fr-CA"),
    ("fr;q=0.5, fr-BE;q=0.9", ["fr-BE", "fr"], "fr-BE"),
    ("en-US,fr-FR", ["en-US", "fr-FR"], "en-US"),
    ("en-GB", ["en-GB"], "en-US"),
    ("fr;q=0, en", ["en"], "en-US"),
    ("fr ; q=0.8 , , de", ["de", "fr"], "fr"),
    ("de, *", ["de", "*"], "en-US"),
    ("fr;q=abc", [], "en-US"),
    ("fr;q=1.001", [], "en-US"),
    ("fr;x=1", [], "en-US"),
    ("fr\x00", [], "en-US"),
    ("fé", [], "en-US"),
    (",".join(["de"] * 40 + ["fr"]), ["de"] * 32, "en-US"),  # only the first elements are read
])
def test_accept_language(header, ranges, locale):
    assert accept_language(header) == ranges
    assert page_locale(header) == locale
