"""Dates and times on cards in the reader's time zone: read from the activity (``localTimezone``,
else the clientInfo entity), carried on the turn, stored with the delivery address for
notifications; with none known, UTC as before."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_datetime
from botbuilder.schema import Activity
from sqlalchemy import select

from bot.addresses import address_key, address_of, reader_of
from bot.identity import timezone_of
from cards.i18n import Reader, T, babel_locale, language
from core.errors import HeldByQuote, RequestClosed
from core.models import AuditEvent, DeliveryAddress
from core.views import ChatAddress
from tests.harness import (
    ALEX,
    LEE,
    MEGAN,
    amount_rows,
    choice_value,
    facts_of,
    heading_of,
    pool_button,
    text_of,
    tick,
)

PARIS = "Europe/Paris"
LATE = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)  # already 1 December in Paris (00:30 CET)


def activity(**fields) -> Activity:
    body = {"type": "message", "id": "1", "channelId": "msteams", "serviceUrl": "https://smba.example/emea/",
            "from": {"id": "29:a", "aadObjectId": "0000"}, "recipient": {"id": "28:bot"},
            "conversation": {"conversationType": "personal", "id": "a:1"}, "locale": "fr-FR", **fields}
    return Activity().deserialize(body)


def client_info(tz) -> list[dict]:
    return [{"type": "mention", "text": "<at>x</at>"},
            {"type": "clientInfo", "locale": "fr-FR", "country": "FR", "platform": "Web", "timezone": tz}]


# ============================================================================ reading the zone


def test_the_time_zone_is_read_from_local_timezone_then_client_info():
    assert timezone_of(activity(localTimezone=PARIS)) == PARIS
    assert timezone_of(activity(entities=client_info("America/Toronto"))) == "America/Toronto"
    assert timezone_of(activity(localTimezone=PARIS, entities=client_info("America/Toronto"))) == PARIS
    assert timezone_of(activity()) is None
    assert timezone_of(activity(entities=[{"type": "clientInfo", "locale": "en-US"}])) is None  # (no timezone)
    assert timezone_of(activity(localTimezone="UTC")) == "UTC"  # the Agents Playground's default


@pytest.mark.parametrize("bad", ["Mars/Olympus_Mons", "europe/paris", "Europe/Paris ", "../../etc/passwd",
                                 "/etc/localtime", "localtime", "Europe", "zone.tab", "", "Europe/" + "x" * 5000,
                                 "Europe/Paris\x00", 5, ["Europe/Paris"], {"id": PARIS}])
def test_an_unknown_or_malformed_zone_is_no_zone(bad):
    assert timezone_of(activity(localTimezone=bad)) is None
    assert timezone_of(activity(entities=client_info(bad))) is None
    # a bad localTimezone does not hide a good clientInfo one
    assert timezone_of(activity(localTimezone=bad, entities=client_info(PARIS))) == PARIS
    assert T(Reader("en-US", bad if isinstance(bad, str) else None)).datetime(LATE) == T("en-US").datetime(LATE)


def test_the_address_carries_the_zone_and_its_key_changes_with_it():
    paris, toronto, none = (activity(localTimezone=PARIS), activity(entities=client_info("America/Toronto")),
                            activity())
    assert address_of(paris).timezone == PARIS and address_of(paris).locale == "fr-FR"
    assert address_of(toronto).timezone == "America/Toronto"
    assert address_of(none).timezone is None  # the core keeps the one it knows
    assert len({address_key(paris), address_key(toronto), address_key(none)}) == 3
    assert reader_of(address_of(paris)) == Reader("fr-FR", PARIS)
    assert reader_of(None) == Reader(None, None) and reader_of(ChatAddress("r", locale=3, timezone=["x"])) == Reader()


# ============================================================================ formatting


def test_an_instant_near_midnight_utc_is_shown_on_the_local_day():
    en, fr = T(Reader("en-US", PARIS)), T(Reader("fr-FR", PARIS))
    assert en.date(LATE) == "Dec 1, 2026" and fr.date(LATE) == "1 déc. 2026"
    assert en.datetime(LATE).startswith("Dec 1, 2026, 12:30:00") and en.datetime(LATE).endswith(" CET")
    assert fr.datetime(LATE) == "1 déc. 2026, 00:30:00 CET"
    summer = datetime(2026, 7, 1, 22, 30, tzinfo=UTC)
    assert fr.datetime(summer) == "2 juil. 2026, 00:30:00 CEST" and fr.date(summer) == "2 juil. 2026"
    west = T(Reader("en-US", "America/Los_Angeles"))
    assert west.date(datetime(2026, 12, 1, 5, 0, tzinfo=UTC)) == "Nov 30, 2026"  # the other way
    assert west.datetime(datetime(2026, 12, 1, 5, 0, tzinfo=UTC)).startswith("Nov 30, 2026, 9:00:00")
    assert T(Reader("en-GB", "Asia/Dubai")).datetime(LATE) == "1 Dec 2026, 03:30:00 UTC+04"  # no abbreviation
    assert fr.datetime(datetime(2026, 11, 30, 23, 30)) == fr.datetime(LATE)  # naive: stored UTC
    assert fr.date(date(2026, 11, 30)) == "30 nov. 2026"  # a calendar date stays as it is


def test_without_a_zone_times_are_utc_as_before():
    for reader in ("en-US", Reader("en-US"), Reader("en-US", "UTC")):
        assert T(reader).datetime(LATE).startswith("Nov 30, 2026, 11:30:00")
        assert T(reader).datetime(LATE).endswith(" UTC") and T(reader).date(LATE) == "Nov 30, 2026"
    assert T(Reader("fr-FR")).datetime(LATE) == T("fr-FR").datetime(LATE) == "30 nov. 2026, 23:30:00 UTC"


def test_a_reader_is_taken_wherever_a_locale_is():
    reader = Reader("fr-CA", PARIS)
    assert language(reader) == "fr" and babel_locale(reader) == "fr_CA"
    t = T(reader)
    assert (t.locale, t.lang, t.babel) == ("fr-CA", "fr", "fr_CA")
    assert T(Reader()).locale == "en-US" and T(Reader()).lang == "en"


def test_refusals_say_their_times_in_the_readers_zone():
    held, decided = HeldByQuote("Megan Bowen", LATE, "q").message, RequestClosed.decided("declined", "Alex", LATE)
    assert "2026-11-30 23:30 UTC" in held  # the English text (logs, audit log): UTC
    for message in (held, decided.message):
        assert T("en-US").say(message) == str(message)
        assert "2026-12-01 00:30 CET" in T(Reader("en-US", PARIS)).say(message)
        assert "2026-12-01 à 00:30 CET" in T(Reader("fr-FR", PARIS)).say(message)
        assert "2026-11-30 à 23:30 UTC" in T("fr-FR").say(message)


# ============================================================================ through Teams


async def upgrade_quote(client, user: str):
    [pools] = await client.say("licenses")
    users = (await client.act(pools, pool_button(pools, "Eco", "monthly"))).expect_card()
    tiers = (await client.act(users, "Choose tier", users=tick(users, "users", user))).expect_card()
    return (await client.act(tiers, "Upgrade", plan=choice_value(tiers, "plan", "Pro"))).expect_card()


def expiry(text: str) -> str:
    [line] = [ln for ln in text.splitlines() if ln.startswith("This quote is valid until ")]
    return line.removeprefix("This quote is valid until ").split(". ")[0]


async def test_a_quote_expiry_is_shown_in_paris_time_when_teams_says_so(desk, clock):
    clock.advance(hours=11, minutes=10)  # 23:10 UTC: the quote expires at 23:40 UTC, 00:40 in Paris
    in_paris = await upgrade_quote(desk.client(ALEX, timezone=PARIS), "Adele Vance")
    assert expiry(text_of(in_paris)) == format_datetime(datetime(2026, 3, 11, 0, 40), "medium", locale="en_US") + " CET"
    in_utc = await upgrade_quote(desk.client(MEGAN), "Isaiah Langer")  # no time zone in her activities: as before
    assert expiry(text_of(in_utc)) == format_datetime(datetime(2026, 3, 10, 23, 40), "medium", locale="en_US") + " UTC"


async def test_a_notification_uses_the_zone_stored_with_the_address(desk, clock):
    clock.advance(hours=11, minutes=10)  # 23:10 UTC on 10 March: 11 March in Paris
    alex = desk.client(ALEX, timezone=PARIS)
    assert await alex.install()
    await desk.client(ALEX).say("help")  # an activity without a zone: the known one is kept
    with desk.lic.db.read() as s:
        address = s.get(DeliveryAddress, desk.user("Alex Wilber").id).address
    assert address.timezone == PARIS
    megan = desk.client(MEGAN)  # never talked to the bot: her chat is created, no zone known
    lee = desk.client(LEE)
    assert await lee.install()
    [mine] = await lee.say("mylicense")
    form = (await lee.act(mine, "Request an upgrade")).expect_card()
    (await lee.act(form, "Send the request", plan=choice_value(form, "plan", "Pro"))).expect_card()

    assert await desk.notify() == 2
    [for_alex], [for_megan] = alex.proactive_cards(), megan.proactive_cards()
    assert facts_of(for_alex)["Asked on"] == "Mar 11, 2026"
    assert facts_of(for_megan)["Asked on"] == "Mar 10, 2026"


async def test_a_card_updated_in_place_later_is_in_the_zone_its_reader_told_since(desk, clock):
    """A request card reaches an admin whose zone is not known yet (his install said none: UTC).
    He approves it from a client that says Paris: the quote replaces the card in Paris time, and
    so does the notifier's later update of that same message (it renders for the reader as known
    now, not as known when the card was posted)."""
    clock.advance(hours=11, minutes=10)  # 23:10 UTC on 10 March: 11 March in Paris
    alex, lee = desk.client(ALEX), desk.client(LEE)
    assert await alex.install() and await lee.install()
    [mine] = await lee.say("mylicense")
    form = (await lee.act(mine, "Request an upgrade")).expect_card()
    (await lee.act(form, "Send the request", plan=choice_value(form, "plan", "Pro"))).expect_card()
    assert await desk.notify() == 2
    [card] = alex.proactive_cards()
    assert facts_of(card)["Asked on"] == "Mar 10, 2026"  # no zone known yet

    in_paris = desk.client(ALEX, timezone=PARIS)  # the same chat, from a client that says its zone
    quote = (await in_paris.act(card, "Approve")).expect_card()
    assert heading_of(quote) == "Upgrade quote"
    assert expiry(text_of(quote)).endswith(" CET")
    with desk.lic.db.read() as s:  # his click told the bot his zone: kept for what comes later
        assert s.get(DeliveryAddress, desk.user("Alex Wilber").id).address.timezone == PARIS
    assert await desk.notify() >= 1  # the card update (and Lee's notice)
    [update] = in_paris.updates(card.message_id)
    after = in_paris.card_in(card.message_id)
    assert update["attachments"][0]["content"] == after
    assert heading_of(after) == "Upgrade quote"
    assert expiry(text_of(after)) == expiry(text_of(quote))
    assert amount_rows(after) == amount_rows(quote)


async def test_the_audit_log_is_shown_in_the_readers_zone(desk):
    [card] = await desk.client(ALEX, timezone=PARIS).say("audit")
    with desk.lic.db.read() as s:
        event = s.scalars(select(AuditEvent).order_by(AuditEvent.id)).first()  # the demo data, loaded at 12:00 UTC
    text = text_of(card)
    assert "times in Europe/Paris" in text
    assert format_datetime(event.created_at, "medium", tzinfo=ZoneInfo(PARIS), locale="en_US") in text
    [card] = await desk.client(ALEX).say("audit")
    assert "times in UTC" in text_of(card)
    assert format_datetime(event.created_at, "medium", tzinfo=UTC, locale="en_US") in text_of(card)


async def test_a_change_of_locale_or_zone_is_saved_at_once_also_back_to_one_seen_before(desk, clock):
    """Alex writes in English, then in French from Toronto, then in English from Paris again: the
    stored address follows each activity at once (the bot once remembered every address it had
    saved in the last hour, so going back to one seen before was not saved), and a card updated
    in place later (his quote, paid) comes out in English."""
    en = desk.client(ALEX, timezone=PARIS)
    assert await en.install()
    await desk.client(ALEX, locale="fr-FR", timezone="America/Toronto").say("aide")
    with desk.lic.db.read() as s:
        stored = s.get(DeliveryAddress, desk.user("Alex Wilber").id).address
    assert (stored.locale, stored.timezone) == ("fr-FR", "America/Toronto")
    quote = await upgrade_quote(en, "Adele Vance")  # back to English in Paris: saved again
    with desk.lic.db.read() as s:
        stored = s.get(DeliveryAddress, desk.user("Alex Wilber").id).address
    assert (stored.locale, stored.timezone) == ("en-US", PARIS)
    assert (await desk.post_form(en.open_url(quote, "Pay …"), {"action": "pay"})).status == 200
    assert await desk.notify() >= 1
    after = en.card_in(quote.message_id)
    assert en.updates(quote.message_id), "the quote card was updated in place"
    assert heading_of(after) == T("en-US")("paid.title") != T("fr-FR")("paid.title")
