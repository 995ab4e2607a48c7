"""The audit journey through real HTTP: the last events of the account in chat (20 a page,
newest first, refused attempts standing out, en and fr), and the signed, short-lived CSV
download link with every way it can be refused (expired, tampered, another account, a
member, an administrator demoted since) — each refusal a clear page, audited, no change."""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
from datetime import UTC, timedelta

import pytest
from babel.dates import format_datetime
from sqlalchemy import insert, select, update

import web.audit_export
from cards.audit import action_label, clip
from cards.i18n import T
from core.config import Settings
from core.demo import TENANT, demo_account_id
from core.errors import InvalidInput, SeatsAssigned
from core.models import AuditEvent, Pool, Seat, User
from core.views import Actor
from tests.cardcheck import assert_valid_cards, card_size
from tests.harness import (
    ALEX,
    LEE,
    MEGAN,
    Watch,
    actions_of,
    add_fabrikam,
    audit_mark,
    audit_since,
    find_action,
    has_action,
    heading_of,
    running_desk,
    snapshot,
    text_of,
    tick,
    walk,
)
from web.audit_export import ExportLinks, language, link_secret

FAB_TENANT = "44444444-4444-4444-4444-444444444444"
FAB_ADMIN = "44444444-0000-0000-0000-000000000001"
FAB_WORKER = "44444444-0000-0000-0000-000000000002"
BUDGET = 28 * 1024


# ============================================================================ helpers


def rows_of(card: dict) -> list[dict]:
    """The audit rows of a card: their text (runs joined) and whether they stand out as refused."""
    out = []
    for el in walk(card):
        items = el.get("items") or []
        if el.get("type") == "Container" and items and items[0].get("type") == "RichTextBlock":
            lines = ["".join(r["text"] for r in rtb["inlines"]) for rtb in items if rtb["type"] == "RichTextBlock"]
            out.append({"text": "\n".join(lines), "refused": el.get("style") == "attention"})
    return out


def account_events(desk, account_id: int | None = None) -> list[AuditEvent]:
    """The account's events, newest first (what the card shows)."""
    account_id = account_id or demo_account_id(desk.lic)
    with desk.lic.db.read() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.account_id == account_id)
                              .order_by(AuditEvent.id.desc())))


def when(event, locale: str) -> str:
    return format_datetime(event.created_at, format="medium", tzinfo=UTC, locale=locale)


def make_fabrikam(desk) -> dict:
    """A second account with its own tenant, an admin, a member, a pool and a few events."""
    fab = add_fabrikam(desk.lic, tenant=FAB_TENANT, admin=FAB_ADMIN, worker=FAB_WORKER, seats=["admin"])
    desk.lic.seats.assign(Actor(FAB_TENANT, FAB_ADMIN), fab["worker"], fab["pool"])  # one "seat.assigned" event
    return fab


async def download(desk, url: str, lang: str | None = None):
    headers = {"Accept-Language": lang} if lang else {}
    async with desk.http.get(url, headers=headers) as r:
        return r.status, await r.text(), dict(r.headers)


# ============================================================================ in chat


async def test_events_appear_after_actions_newest_first_refusals_stand_out(desk):
    alex, lee = desk.admin(), desk.member()
    [card] = await alex.say("audit")
    assert heading_of(card) == "Recent changes at Contoso"
    [row] = rows_of(card)
    assert row == {"text": f"{when(account_events(desk)[0], 'en_US')}  License Desk  Demo data loaded · account #"
                           f"{demo_account_id(desk.lic)}", "refused": False}
    assert "1 event, newest first · page 1 of 1" in text_of(card)

    # an upgrade quote through the chat, a member's refused attempt, an assignment
    [pools] = await alex.say("licenses")
    eco = next(a for a in actions_of(pools, "Action.Execute") if a["title"] == "24")
    users = (await alex.act(pools, eco)).expect_card()
    tiers = (await alex.act(users, "Choose tier", users=tick(users, "users", "Adele Vance"))).expect_card()
    quote = (await alex.act(tiers, "Upgrade")).expect_card()
    assert has_action(quote, "Pay …")
    [refusal] = await lee.say("licenses")
    assert heading_of(refusal) == "Administrators only"
    with desk.lic.db.read() as s:
        api_pool = s.scalar(select(Pool.id).where(Pool.plan_code == "api_advanced"))
        newcomer = s.scalars(select(User).where(~User.id.in_(select(Seat.user_id).where(Seat.family == "api")))
                             .order_by(User.id.desc())).first()
    desk.lic.seats.assign(Actor(TENANT, MEGAN), newcomer.id, api_pool)

    before = snapshot(desk.lic)
    mark = audit_mark(desk.lic)
    card = (await alex.act(card, "Refresh")).expect_card()
    assert audit_since(desk.lic, mark) == [] and snapshot(desk.lic) == before  # looking changes nothing
    events = account_events(desk)
    assert [e.action for e in events] == ["seat.assigned", "pools.list", "payment.link_created", "quote.upgrade",
                                          "demo.loaded"]
    rows = rows_of(card)
    qid = events[2].target.split(":")[1][:8]
    assert [r["text"] for r in rows] == [
        f"{when(events[0], 'en_US')}  Megan Bowen  License assigned · {newcomer.name}",
        f"{when(events[1], 'en_US')}  Lee Gu  View the license pools\nRefused: Only an administrator of your "
        "License Desk account can do this. Ask Alex Wilber or Megan Bowen.",
        f"{when(events[2], 'en_US')}  Alex Wilber  Payment link created · quote {qid}",
        f"{when(events[3], 'en_US')}  Alex Wilber  Upgrade quote prepared · quote {qid}",
        f"{when(events[4], 'en_US')}  License Desk  Demo data loaded · account #{demo_account_id(desk.lic)}",
    ]
    assert [r["refused"] for r in rows] == [False, True, False, False, False]
    assert not has_action(card, "Older") and not has_action(card, "Newer")
    assert has_action(card, "Export CSV", "Action.OpenUrl") and has_action(card, "License pools")
    # the pools card's "Recent changes" button leads here too
    [pools] = await alex.say("licenses")
    again = (await alex.act(pools, "Recent changes")).expect_card()
    assert rows_of(again) == rows  # (looking at the pools is not audited either)
    assert_valid_cards([card, again])


async def test_paging_over_more_than_20_events(desk):
    alex = desk.admin()
    lic = desk.lic
    for i in range(44):  # 44 refusals + the demo event = 45 events: pages of 20, 20, 5
        lic.audit.record_refusal(Actor(TENANT, LEE), "seat.assign", InvalidInput(f"refusal number {i}"),
                                 f"user:{i + 1}")
    events = account_events(desk)
    assert len(events) == 45
    [first] = await alex.say("audit")
    assert len(rows_of(first)) == 20 and "45 events, newest first · page 1 of 3" in text_of(first)
    assert rows_of(first)[0]["text"].endswith("Refused: refusal number 43")
    assert not has_action(first, "Newer")
    second = (await alex.act(first, "Older")).expect_card()
    assert "page 2 of 3" in text_of(second) and has_action(second, "Newer")
    assert [r["text"].rsplit(": ", 1)[1] for r in rows_of(second)] == [
        f"refusal number {i}" for i in range(23, 3, -1)]
    third = (await alex.act(second, "Older")).expect_card()
    assert "page 3 of 3" in text_of(third) and not has_action(third, "Older")
    assert [r["text"].rsplit(": ", 1)[-1] for r in rows_of(third)][:4] == [
        f"refusal number {i}" for i in range(3, -1, -1)]
    assert "Demo data loaded" in rows_of(third)[4]["text"] and len(rows_of(third)) == 5
    back = (await alex.act(third, "Newer")).expect_card()
    assert rows_of(back) == rows_of(second)
    # a page past the end (the log was shorter than the card thought) shows the last page;
    # nonsense page numbers show the first
    late = (await alex.execute("audit", {"page": 7}, message_id=third.message_id)).expect_card()
    assert "page 3 of 3" in text_of(late) and rows_of(late) == rows_of(third)
    for page in ("abc", -4, True, None, {"x": 1}, "1e9"):
        card = (await alex.execute("audit", {"page": page}, message_id=third.message_id)).expect_card()
        assert "page 1 of 3" in text_of(card), page
    assert all(card_size(c) < BUDGET for c in (first, second, third))
    assert_valid_cards([first, second, third])


async def test_the_card_stays_small_and_inert_whatever_the_messages(desk):
    alex = desk.admin()
    account_id = demo_account_id(desk.lic)
    now = desk.lic.now()
    nasty = "[click me](https://evil.example) **bold** \u202e\x01\x07 " + "é😀" * 5000
    desk.lic.db.write(lambda s: s.execute(insert(AuditEvent), [
        {"account_id": account_id, "tenant_id": TENANT, "actor_id": None, "actor": nasty[:320],
         "action": ("x" * 55) + str(i), "outcome": "refused" if i % 2 else "ok", "target": nasty[:200],
         "message": nasty, "detail": {}, "created_at": now} for i in range(25)]))
    [card] = await alex.say("audit")
    assert card_size(card) < BUDGET, card_size(card)
    rows = rows_of(card)
    assert len(rows) == 20 and [r["refused"] for r in rows[:2]] == [False, True]  # newest: i = 24
    assert all("\u202e" not in r["text"] and "\x01" not in r["text"] for r in rows)
    assert "…" in rows[1]["text"] and "Refused: " in rows[1]["text"]
    # untrusted text is in TextRuns (never read as Markdown), not in TextBlocks
    blocks = [el["text"] for el in walk(card) if el.get("type") == "TextBlock"]
    assert not any("evil.example" in b for b in blocks)
    assert any("evil.example" in r["text"] for r in rows)
    assert_valid_cards([card])


async def test_french(desk):
    alex = desk.admin("fr-FR")
    desk.lic.audit.record_refusal(Actor(TENANT, LEE), "quote.upgrade", InvalidInput("Nope."), "pool:1")
    [card] = await alex.say("journal")
    events = account_events(desk)
    assert heading_of(card) == "Changements récents chez Contoso"
    assert "2 événements, du plus récent au plus ancien · page 1 sur 1 · heures UTC" in text_of(card)
    with desk.lic.db.read() as s:
        eco = s.get(Pool, 1)
    assert eco.plan_code == "eco"
    assert [r["text"] for r in rows_of(card)] == [
        f"{when(events[0], 'fr_FR')}  Lee Gu  Préparer un devis de mise à niveau · Eco (mensuel)\nRefusé: Nope.",
        f"{when(events[1], 'fr_FR')}  License Desk  Données de démonstration chargées · compte n° "
        f"{demo_account_id(desk.lic)}",
    ]
    assert when(events[0], "fr_FR").startswith("10 mars 2026")
    assert has_action(card, "Exporter en CSV", "Action.OpenUrl") and has_action(card, "Actualiser")
    assert "Le lien fonctionne pendant 10 minutes" in text_of(card)
    assert_valid_cards([card])


def test_action_names_in_words():
    en, fr = T("en-US"), T("fr-CA")
    assert action_label(en, "quote.settled") == "Quote paid and applied"
    assert action_label(fr, "quote.settled") == "Devis payé et appliqué"
    assert action_label(en, "seat.assigned") == "License assigned"
    assert action_label(en, "request.approved") == "Upgrade request approved"
    assert action_label(en, "quote.upgrade") == "Upgrade quote prepared"
    assert action_label(en, "quote.upgrade", "refused") == "Prepare an upgrade quote"
    assert action_label(fr, "pools.list", "refused") == "Voir les lots de licences"
    assert action_label(en, "card.pool.users", "refused") == "A card button"  # never the raw verb
    assert action_label(fr, "something.new") == "Une autre action"
    assert clip("a\x00b\u202e  c", 10) == "a b c" and clip("abcdef", 4) == "abc…" and clip("x", 0) == ""


async def test_only_administrators_see_the_audit(desk):
    lee = desk.member()
    stranger = desk.client("55555555-5555-5555-5555-555555555555", name="Sam Stranger")
    for client, verb_or_text, heading, message, action in (
            (lee, "audit", "Administrators only", "Only an administrator of your License Desk account can do "
             "this. Ask Alex Wilber or Megan Bowen.", "audit.list"),
            (stranger, "audit", "You are not set up yet", "Ask Alex Wilber or Megan Bowen to add you.",
             "audit.list")):
        watch = Watch(desk, action="audit.export")
        [card] = await client.say(verb_or_text)
        assert heading_of(card) == heading and message in text_of(card), text_of(card)
        assert watch.refused(action).message.endswith(message)
        watch.unchanged()
        watch = Watch(desk, action="audit.export")
        reply = await client.execute("audit", {"page": 1}, message_id=card.message_id)
        shown = reply.expect_card()
        assert heading_of(shown) == heading and not rows_of(shown)
        watch.refused(action)
        watch.unchanged()
    # an administrator of another account sees only their own account's events
    fab = make_fabrikam(desk)
    ada = desk.client(FAB_ADMIN, tenant_id=FAB_TENANT, name="Ada Fabrikam")
    [card] = await ada.say("audit")
    assert heading_of(card) == "Recent changes at Fabrikam"
    [row] = rows_of(card)
    assert "Ada Fabrikam  License assigned · Bo Fabrikam" in row["text"]
    assert "Contoso" not in text_of(card) and "Lee Gu" not in text_of(card)
    assert fab["account"] != demo_account_id(desk.lic)


# ============================================================================ CSV export


async def test_export_csv_over_http(desk):
    alex = desk.admin()
    fab = make_fabrikam(desk)
    desk.lic.audit.record_refusal(Actor(TENANT, LEE), "pools.list", InvalidInput("=cmd|' /C calc'!A0"), None)
    [card] = await alex.say("audit")
    url = alex.open_url(card, "Export CSV")
    assert url.startswith(f"{desk.url}/audit/export/")
    before = snapshot(desk.lic)
    mark = audit_mark(desk.lic)
    status, body, headers = await download(desk, url)
    assert status == 200, body
    assert headers["Content-Type"].startswith("text/csv")
    assert headers["Content-Disposition"] == 'attachment; filename="license-desk-audit-contoso-2026-03-10.csv"'
    assert headers["Cache-Control"] == "no-store"
    [exported] = audit_since(desk.lic, mark)
    assert (exported.action, exported.outcome, exported.actor) == ("audit.exported", "ok", "Alex Wilber")
    assert snapshot(desk.lic) == before
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0] == ["id", "created_at", "tenant_id", "actor", "action", "outcome", "target", "message"]
    events = list(reversed(account_events(desk)))
    assert [int(r[0]) for r in rows[1:]] == [e.id for e in events]  # every event of Contoso, oldest first
    assert [r[4] for r in rows[1:]] == ["demo.loaded", "pools.list", "audit.exported"]
    assert rows[2][5] == "refused" and rows[2][7] == "'=cmd|' /C calc'!A0"  # formulas neutralised
    assert "Fabrikam" not in body
    # a HEAD (link checkers) downloads nothing and records nothing
    async with desk.http.head(url) as r:
        assert r.status == 405
    assert len(audit_since(desk.lic, mark)) == 1
    # the link can be used again while it is valid (each download audited)
    assert (await download(desk, url))[0] == 200
    assert [e.action for e in audit_since(desk.lic, mark)] == ["audit.exported", "audit.exported"]
    # Fabrikam's administrator gets Fabrikam's log only
    ada = desk.client(FAB_ADMIN, tenant_id=FAB_TENANT, name="Ada Fabrikam")
    [fab_card] = await ada.say("audit")
    status, body, headers = await download(desk, ada.open_url(fab_card, "Export CSV"))
    assert status == 200 and "license-desk-audit-fabrikam-" in headers["Content-Disposition"]
    ids = [int(r[0]) for r in list(csv.reader(io.StringIO(body)))[1:]]
    assert ids == [e.id for e in reversed(account_events(desk, fab["account"]))]
    assert "Contoso" not in body and "Alex Wilber" not in body


async def test_a_refusal_is_said_in_the_readers_language_in_the_audit_and_its_csv(desk):
    """A refusal's audit row keeps its Message's template and params (in ``detail``): the French
    audit card and the French CSV say it in French, with French column names; a row stored
    without them (written by an older version) shows its stored text."""
    account_id = demo_account_id(desk.lic)
    eco = next(p for p in desk.lic.pools.list_pools(Actor(TENANT, ALEX)) if (p.plan_code, p.interval) == ("eco",
                                                                                                          "month"))
    with pytest.raises(SeatsAssigned):
        desk.lic.seats.remove_seats(Actor(TENANT, ALEX), eco.id, 7)  # 6 free
    desk.lic.db.write(lambda s: s.execute(insert(AuditEvent), [
        {"account_id": account_id, "tenant_id": TENANT, "actor_id": None, "actor": "Old Version",
         "action": "seat.assign", "outcome": "refused", "target": None, "message": "Stored English text.",
         "detail": {"code": "refused"}, "created_at": desk.lic.now()}]))
    said = {"en": "Only 6 seats of this pool are free. Unassign users first, then remove their seats.",
            "fr": "Ce lot n'a que 6 licences libres. Retirez d'abord des utilisateurs, puis supprimez leurs licences."}
    url = desk.root.links.url(account_id, desk.user("Alex Wilber").id)
    for lang, locale in (("en", "en-US"), ("fr", "fr-FR")):
        [card] = await desk.admin(locale).say("audit" if lang == "en" else "journal")
        texts = [r["text"] for r in rows_of(card)]
        assert any(t.endswith(said[lang]) for t in texts), texts
        assert any(t.endswith("Stored English text.") for t in texts)
        status, body, _ = await download(desk, url, locale)
        rows = list(csv.reader(io.StringIO(body)))
        assert status == 200 and rows[0] == {
            "en": ["id", "created_at", "tenant_id", "actor", "action", "outcome", "target", "message"],
            "fr": ["id", "date", "locataire", "acteur", "action", "résultat", "cible", "message"]}[lang]
        messages = [r[7] for r in rows[1:]]
        assert said[lang] in messages and "Stored English text." in messages
    assert said["en"] in desk.lic.audit.export_csv(account_id)  # (the command line's export: English, as stored)


# OWASP "CSV injection": a cell that begins with = + - @, a tab or a carriage return is a formula; spreadsheets
# skip leading blanks and line breaks before reading it, so those count as the beginning too.
SNEAKY_FORMULAS = ["  =1+1", " \t=HYPERLINK(\"http://x\")", "\n=cmd|' /C calc'!A0", "\r\n-2+3", " @SUM(A1)",
                   "\u00a0+1", "\tx", "\rx"]


async def test_export_neutralises_formulas_behind_blanks_and_line_breaks(desk):
    account_id = demo_account_id(desk.lic)
    now = desk.lic.now()
    desk.lic.db.write(lambda s: s.execute(insert(AuditEvent), [
        {"account_id": account_id, "tenant_id": TENANT, "actor_id": None, "actor": value, "action": "seat.assign",
         "outcome": "refused", "target": value, "message": value, "detail": {}, "created_at": now}
        for value in SNEAKY_FORMULAS]))
    rows = list(csv.reader(io.StringIO(desk.lic.audit.export_csv(account_id))))
    cells = [r[i] for r in rows if r[4] == "seat.assign" for i in (3, 6, 7)]
    assert cells == ["'" + value for value in SNEAKY_FORMULAS for _ in range(3)]  # as typed, behind an apostrophe
    others = [c for r in rows[1:] if r[4] != "seat.assign" for c in r]
    assert others and not any(c.startswith("'") for c in others)  # (ordinary cells are left alone)


async def test_a_long_log_is_streamed_whole(desk):
    account_id = demo_account_id(desk.lic)
    now = desk.lic.now()
    desk.lic.db.write(lambda s: s.execute(insert(AuditEvent), [
        {"account_id": account_id, "tenant_id": TENANT, "actor_id": None, "actor": f"Person {i}",
         "action": "seat.assigned", "outcome": "ok", "target": f"user:{i}", "message": "m" * 200, "detail": {},
         "created_at": now} for i in range(3000)]))
    url = desk.root.links.url(account_id, desk.user("Alex Wilber").id)
    status, body, headers = await download(desk, url)
    assert status == 200 and len(body) > 5 * 64 * 1024
    rows = list(csv.reader(io.StringIO(body)))
    assert len(rows) == 1 + 1 + 3000 + 1  # header, demo, the 3000, the export itself
    assert rows[-1][4] == "audit.exported" and rows[-2][3] == "Person 2999"


async def test_expired_link_is_refused(desk, clock):
    alex = desk.admin()
    [card] = await alex.say("audit")
    url = alex.open_url(card, "Export CSV")
    clock.advance(minutes=9, seconds=59)
    assert (await download(desk, url))[0] == 200
    clock.advance(seconds=1)  # 10 minutes after the link was made: the core's clock decides
    watch = Watch(desk, action="audit.export")
    status, body, headers = await download(desk, url)
    assert status == 410 and "<h1>Link expired</h1>" in body and "Export CSV again" in body
    assert headers["Content-Type"].startswith("text/html") and "Traceback" not in body
    event = watch.refused()
    assert event.actor == "Alex Wilber" and event.account_id == demo_account_id(desk.lic)
    assert "expired" in event.message
    watch.unchanged()
    # a fresh card gives a fresh link
    card = (await alex.act(card, "Refresh")).expect_card()
    assert (await download(desk, alex.open_url(card, "Export CSV")))[0] == 200
    # the page speaks French to a French browser
    status, body, _ = await download(desk, url, "fr-FR,fr;q=0.9,en;q=0.5")
    assert status == 410 and "<h1>Lien expiré</h1>" in body and 'lang="fr"' in body


def _tamper(url: str) -> dict[str, str]:
    base, token = url.rsplit("/", 1)
    account, user, exp, sig = token.split(".")
    flip = "A" if sig[5] != "A" else "B"
    return {
        "other account": f"{base}/{int(account) + 1}.{user}.{exp}.{sig}",
        "other user": f"{base}/{account}.{int(user) + 1}.{exp}.{sig}",
        "later expiry": f"{base}/{account}.{user}.{int(exp) + 86400}.{sig}",
        "signature changed": f"{base}/{account}.{user}.{exp}.{sig[:5]}{flip}{sig[6:]}",
        "signature cut": f"{base}/{account}.{user}.{exp}.{sig[:-1]}",
        "no signature": f"{base}/{account}.{user}.{exp}",
        "garbage": f"{base}/..%2F..%2Fetc%2Fpasswd",
        "very long": f"{base}/{'9' * 3000}",
    }


async def test_tampered_links_are_refused(desk):
    alex = desk.admin()
    [card] = await alex.say("audit")
    url = alex.open_url(card, "Export CSV")
    for case, bad in _tamper(url).items():
        watch = Watch(desk, action="audit.export")
        status, body, headers = await download(desk, bad)
        assert status == 403, (case, status, body[:200])
        assert "<h1>Link not valid</h1>" in body and headers["Cache-Control"] == "no-store", case
        event = watch.refused(case=case)
        assert event.account_id is None and "altered" in event.message, case
        watch.unchanged(case)
    assert (await download(desk, url))[0] == 200  # the genuine link still works


async def test_links_of_another_account_a_member_or_a_demoted_admin_are_refused(desk):
    alex = desk.admin()
    fab = make_fabrikam(desk)
    links: ExportLinks = desk.root.links
    contoso = demo_account_id(desk.lic)
    lee = desk.user("Lee Gu")
    cases = [
        # properly signed (as if the secret had leaked, or a bug made them): the database still decides
        ("Fabrikam's admin on Contoso", links.url(contoso, fab["admin"]), None, "no longer a user"),
        ("Contoso's admin on Fabrikam", links.url(fab["account"], desk.user("Alex Wilber").id), None,
         "no longer a user"),
        ("a member's link", links.url(contoso, lee.id), "Lee Gu", "Only an administrator"),
        ("a member of Fabrikam", links.url(fab["account"], fab["worker"]), "Bo Fabrikam", "Only an administrator"),
    ]
    # a member who edits an administrator's link to name themselves breaks the signature
    [card] = await alex.say("audit")
    real = alex.open_url(card, "Export CSV")
    base, token = real.rsplit("/", 1)
    parts = token.split(".")
    parts[1] = str(lee.id)
    cases.append(("a member's edited link", f"{base}/{'.'.join(parts)}", None, "altered"))
    for case, url, actor, message in cases:
        watch = Watch(desk, action="audit.export")
        status, body, _ = await download(desk, url)
        assert status == 403, (case, status)
        assert ("<h1>Link not valid</h1>" if message == "altered" else "<h1>Administrators only</h1>") in body, case
        assert "id,created_at" not in body, case
        event = watch.refused(case=case)
        assert message in event.message, (case, event.message)
        if actor:
            assert event.actor == actor, case
        watch.unchanged(case)

    # an administrator demoted after the link was made
    desk.lic.db.write(lambda s: s.execute(update(User).where(User.aad_object_id == ALEX).values(role="member")))
    watch = Watch(desk, action="audit.export")
    status, body, _ = await download(desk, real, "fr")
    assert status == 403 and "<h1>Réservé aux administrateurs</h1>" in body
    event = watch.refused()
    assert event.actor == "Alex Wilber" and event.detail["code"] == "not_admin"
    watch.unchanged()
    # Megan, still an administrator, is not affected
    megan = desk.client(MEGAN)
    [card] = await megan.say("audit")
    assert (await download(desk, megan.open_url(card, "Export CSV")))[0] == 200


async def test_links_are_bound_to_their_secret(desk, clock, caplog, monkeypatch):
    lic = desk.lic
    monkeypatch.setattr(web.audit_export, "_warned", threading.Event())
    with caplog.at_level(logging.WARNING, logger="web.audit_export"):
        assert link_secret(Settings(LINK_SECRET="s3cret")) == b"s3cret"
        assert not caplog.records
        random_a = link_secret(Settings())
        assert random_a == link_secret(Settings()) and len(random_a) == 32  # one per process
    [warning] = caplog.records  # said once, at startup
    assert "only work on the instance that made them" in warning.getMessage()
    one = ExportLinks("http://x", b"one", lic.now)
    two = ExportLinks("http://x", b"two", lic.now)
    token = one.token(1, 2)
    claim = one.read(token)
    assert (claim.account_id, claim.user_id) == (1, 2)
    assert claim.expires_at == lic.now() + timedelta(minutes=10)
    assert two.read(token) is None and one.read(token + "x") is None and one.read("") is None
    # an app configured with LINK_SECRET signs with it: links survive a restart / work on any instance
    async with running_desk(db=lic.db, clock=clock, demo=False, LINK_SECRET="shared") as other:
        token = desk.root.links.token(demo_account_id(lic), desk.user("Alex Wilber").id)
        status, _, _ = await download(other, f"{other.url}/audit/export/{token}")
        assert status == 403  # made with this process's random secret: refused elsewhere
        shared = ExportLinks(other.url, b"shared", lic.now)
        status, body, _ = await download(other, shared.url(demo_account_id(lic), desk.user("Alex Wilber").id))
        assert status == 200 and body.startswith("id,created_at")


def test_page_language():
    assert language(None) == "en" and language("") == "en"
    assert language("fr-CA") == "fr" and language("de-DE,fr;q=0.8,en;q=0.5") == "fr"
    assert language("fr;q=0.2,en;q=0.9") == "en" and language("es") == "en"
    assert language("fr;q=0, en;q=0.1") == "en" and language("fr-CA;q=0.5, de") == "fr"


async def test_card_data_cannot_aim_at_another_account(desk):
    """The audit verb carries only a page number: whatever else the data says, the caller's
    own account is shown."""
    fab = make_fabrikam(desk)
    alex = desk.admin()
    [card] = await alex.say("audit")
    reply = await alex.execute("audit", {"page": 0, "account": fab["account"], "user": fab["admin"]},
                               message_id=card.message_id)
    shown = reply.expect_card()
    assert heading_of(shown) == "Recent changes at Contoso" and "Fabrikam" not in json.dumps(shown)
    url = find_action(shown, "Export CSV", "Action.OpenUrl")["url"]
    claim = desk.root.links.read(url.rsplit("/", 1)[1])
    assert (claim.account_id, claim.user_id) == (demo_account_id(desk.lic), desk.user("Alex Wilber").id)
    with desk.lic.db.read() as s:
        assert s.scalar(select(User.id).where(User.aad_object_id == ALEX)) == claim.user_id


def test_every_audit_action_the_code_writes_has_words_in_both_languages():
    """No raw code (``buy.start``) reaches a person: each action written by the core, the dialogs,
    the bot or the web app has a label in English and French; anything else is said generically."""
    import pathlib
    import re

    from cards.audit import _DONE, _TRIED
    from core.kinds import AuditAction

    root = pathlib.Path(__file__).resolve().parent.parent
    src = "\n".join(p.read_text() for d in ("core", "dialogs", "bot", "web", "payments")
                    for p in (root / d).rglob("*.py"))
    # the code writes AuditAction members (tests/test_kinds.py refuses a literal where an action goes),
    # and any literal left behind is scanned for as before
    written = {a.value for a in AuditAction}
    written |= set(re.findall(r'action="([a-z_]+\.[a-z_.]+|[a-z_]+)"', src))
    written |= set(re.findall(r'record_refusal\([^"\n]*"([a-z_.]+)"', src))
    written |= set(re.findall(r'self\.units\.(?:query|command)\(\s*\w+,\s*"([a-z_.]+)"', src))
    assert len(written) > 20 and "quote.settled" in written  # (the scan sees what it looks for)
    assert sorted(written - set(_DONE) - set(_TRIED)) == []
    for locale in ("en-US", "fr-FR"):
        t = T(locale)
        for action in written:
            assert action_label(t, action) != action and action_label(t, action, "refused") != action
        assert action_label(t, "buy.start") not in ("buy.start", "") and "buy" not in action_label(t, "card.buy.start")
