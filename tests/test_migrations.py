"""The schema is made by Alembic only: from empty to head, and ``migrate`` is idempotent."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from core.config import ROOT
from core.migrate import alembic_config, upgrade
from core.models import Base

PG_URL = os.environ.get("TEST_DATABASE_URL")
pytestmark = pytest.mark.db


@pytest.fixture
def empty_url(tmp_path):
    """An empty database: a new SQLite file, or a new PostgreSQL schema in CI."""
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    schema = f"m_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as c:
        c.exec_driver_sql(f"CREATE SCHEMA {schema}")
    yield f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"
    with admin.begin() as c:
        c.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _head() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def _current(url: str) -> str | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            return c.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    finally:
        engine.dispose()


def test_upgrade_from_empty_creates_every_table(empty_url):
    assert _tables(empty_url) == set()
    upgrade(empty_url)
    assert _tables(empty_url) == {t.name for t in Base.metadata.sorted_tables} | {"alembic_version"}
    assert _current(empty_url) == _head()


def test_migrate_twice_is_a_no_op(empty_url):
    upgrade(empty_url)
    engine = sa.create_engine(empty_url)
    with engine.begin() as c:
        c.exec_driver_sql("INSERT INTO accounts (name, currency, created_at) VALUES ('Keep me', 'USD', "
                          "'2026-01-01 00:00:00')")
    engine.dispose()
    upgrade(empty_url)
    engine = sa.create_engine(empty_url)
    with engine.connect() as c:
        assert c.exec_driver_sql("SELECT name FROM accounts").scalars().all() == ["Keep me"]
    engine.dispose()
    assert _current(empty_url) == _head()


def test_the_models_match_the_migrations(empty_url):
    """Autogenerate finds nothing to add: the ORM and the migrations describe one schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    upgrade(empty_url)
    engine = sa.create_engine(empty_url)
    with engine.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c), Base.metadata)
    engine.dispose()
    assert diff == []


def test_downgrade_to_base_and_up_again(empty_url):
    upgrade(empty_url)
    command.downgrade(alembic_config(empty_url), "base")
    assert _tables(empty_url) <= {"alembic_version"}
    upgrade(empty_url)
    assert _current(empty_url) == _head()


def test_app_migrate_command_twice(empty_url):
    env = dict(os.environ, DATABASE_URL=empty_url)
    for _ in range(2):
        out = subprocess.run([sys.executable, "app.py", "migrate"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "up to date" in out.stdout
    assert _current(empty_url) == _head()



def test_seats_plan_since_is_backfilled_from_assignments_upgrades_and_downgrades(empty_url):
    """0007: a seat's plan_since is its assignment, or the later settlement of a paid upgrade
    into its plan, or the later downgrade into it at a renewal; the quote holds survive the
    table rebuild SQLite needs for it."""
    from datetime import datetime

    upgrade(empty_url, "0004")
    jan, feb, mar, apr = (datetime(2026, 1, 5, 9), datetime(2026, 2, 7, 10), datetime(2026, 3, 5, 9, 1),
                          datetime(2026, 3, 20, 8))
    engine = sa.create_engine(empty_url)
    old = sa.MetaData()
    old.reflect(engine)
    t = old.tables
    with engine.begin() as c:
        c.execute(t["accounts"].insert(), [{"id": 1, "name": "A", "currency": "USD", "created_at": jan}])
        c.execute(t["users"].insert(), [
            {"id": u, "account_id": 1, "aad_object_id": f"aad{u}", "email": f"u{u}@a.example", "name": f"U{u}",
             "sort_key": f"u{u}", "role": "member", "unreachable": False, "created_at": jan} for u in (1, 2, 3, 4)])
        c.execute(t["subscriptions"].insert(), [
            {"id": 1, "account_id": 1, "interval": "month", "anchor_at": jan, "period_number": 2, "period_start": jan,
             "period_end": datetime(2026, 4, 5, 9), "created_at": jan}])
        c.execute(t["pools"].insert(), [
            {"id": p, "account_id": 1, "subscription_id": 1, "plan_code": plan, "quantity": 5, "removal_scheduled": 0,
             "created_at": jan} for p, plan in ((1, "eco"), (2, "pro"), (3, "advanced"))])
        # 1: assigned Eco in January; 2: upgraded Eco -> Pro in February; 3: moved to Advanced at the
        # March renewal; 4: in the same upgrade, then unassigned and assigned Pro again in late March
        c.execute(t["seats"].insert(), [
            {"id": sid, "account_id": 1, "pool_id": pid, "user_id": uid, "family": "standard", "sort_key": f"u{uid}",
             "assigned_at": at} for sid, pid, uid, at in ((1, 1, 1, jan), (2, 2, 2, jan), (3, 3, 3, jan),
                                                          (4, 2, 4, apr))])
        c.execute(t["quotes"].insert(), [
            {"id": qid, "account_id": 1, "kind": "upgrade", "status": status, "created_by": 1, "created_at": at,
             "priced_at": at, "expires_at": at, "currency": "USD", "pool_id": 1, "from_plan": "eco", "to_plan": "pro",
             "user_ids": users, "lines": [], "gross": 0, "discount": 0, "due_now": 0, "renewal_amount": 0,
             "renewal_date": at, "carried": 0, "closed_at": closed}
            for qid, status, at, users, closed in (("q-paid", "paid", feb, [2, 4], feb),
                                                   ("q-open", "open", apr, [1], None))])
        c.execute(t["quote_holds"].insert(), [{"seat_id": 1, "quote_id": "q-open", "expires_at": apr}])
        c.execute(t["audit_events"].insert(), [
            {"account_id": 1, "actor": "system", "action": "seat.downgraded", "outcome": "ok", "target": "user:3",
             "detail": {"from": "pro", "to": "advanced"}, "created_at": mar}])
    upgrade(empty_url)
    with engine.connect() as c:
        since = dict(c.exec_driver_sql("SELECT id, plan_since FROM seats").all())
        holds = c.exec_driver_sql("SELECT seat_id, quote_id FROM quote_holds").all()
    engine.dispose()
    assert {k: str(v)[:19] for k, v in since.items()} == {1: str(jan), 2: str(feb), 3: str(mar), 4: str(apr)}
    assert holds == [(1, "q-open")]


def test_addresses_become_an_opaque_ref_beside_the_facts_the_core_needs(empty_url):
    """0010: a stored JSON address (a serialised conversation reference with the locale and
    time zone the bot added) becomes ``ref`` (the reference without them, read by bot/ only),
    ``chat_user_id`` (the person's channel id; none when the notifier named them by directory
    id), ``locale`` and ``timezone``; in delivery_addresses and posted_cards alike. Downgraded:
    the JSON address again."""
    import json
    from datetime import datetime

    from bot.addresses import conversation_of, person_of, reference_of
    from core.views import ChatAddress

    upgrade(empty_url, "0008")
    jan = datetime(2026, 1, 5, 9)
    told = {"channelId": "msteams", "serviceUrl": "https://smba.example/emea/", "locale": "fr-FR",
            "timezone": "Europe/Paris", "bot": {"id": "28:bot", "name": "License Desk"},
            "user": {"id": "29:lee", "aadObjectId": "aad-lee", "name": "Lee"},
            "conversation": {"id": "a:lee", "conversationType": "personal", "tenantId": "t1"}}
    created = {"channelId": "msteams", "serviceUrl": "https://smba.example/emea/", "locale": "en-US",
               "user": {"id": "aad-ada", "aadObjectId": "aad-ada"}, "conversation": {"id": "a:ada"}}
    engine = sa.create_engine(empty_url)
    old = sa.MetaData()
    old.reflect(engine)
    t = old.tables
    with engine.begin() as c:
        c.execute(t["accounts"].insert(), [{"id": 1, "name": "A", "currency": "USD", "created_at": jan}])
        c.execute(t["users"].insert(), [
            {"id": u, "account_id": 1, "aad_object_id": aad, "email": f"u{u}@a.example", "name": f"U{u}",
             "sort_key": f"u{u}", "role": "admin", "unreachable": False, "created_at": jan}
            for u, aad in ((1, "aad-lee"), (2, "aad-ada"))])
        c.execute(t["delivery_addresses"].insert(), [{"user_id": 1, "address": told, "updated_at": jan},
                                                     {"user_id": 2, "address": created, "updated_at": jan}])
        c.execute(t["posted_cards"].insert(), [
            {"id": 7, "account_id": 1, "subject": "quote", "subject_id": "q1", "message_ref": "m1",
             "address": dict(told, activityId="act-1"), "created_at": jan}])
    upgrade(empty_url)
    with engine.connect() as c:
        rows = {r.user_id: r for r in c.exec_driver_sql(
            "SELECT user_id, ref, chat_user_id, locale, timezone FROM delivery_addresses")}
        card = c.exec_driver_sql("SELECT ref, chat_user_id, locale, timezone FROM posted_cards").one()
        columns = {col["name"] for col in sa.inspect(c).get_columns("delivery_addresses")}
    assert "address" not in columns
    lee = ChatAddress(rows[1].ref, rows[1].chat_user_id, rows[1].locale, rows[1].timezone)
    assert (lee.chat_user_id, lee.locale, lee.timezone) == ("29:lee", "fr-FR", "Europe/Paris")
    assert json.loads(lee.ref) == {k: v for k, v in told.items() if k not in ("locale", "timezone")}
    assert (conversation_of(lee), person_of(lee)) == ("a:lee", "aad-lee")  # bot/ reads the ref it wrote
    assert reference_of(lee).service_url == told["serviceUrl"] and reference_of(lee).locale == "fr-FR"
    assert (rows[2].chat_user_id, rows[2].locale, rows[2].timezone) == (None, "en-US", None)
    assert tuple(card) == (lee.ref, "29:lee", "fr-FR", "Europe/Paris")  # (the card's activity id left out)
    command.downgrade(alembic_config(empty_url), "0008")
    with engine.connect() as c:
        back = dict(c.execute(sa.select(t["delivery_addresses"].c.user_id, t["delivery_addresses"].c.address)).all())
        card_back = c.execute(sa.select(t["posted_cards"].c.address)).scalar_one()
    engine.dispose()
    assert back == {1: told, 2: created} and card_back == told
