"""Shared fixtures: a migrated database per test (SQLite by default, PostgreSQL when
TEST_DATABASE_URL is set), a controllable clock, the core on top of both, and the app over
HTTP on them (``desk``, from tests/harness.py)."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from core.catalog import Catalog
from core.db import Database
from core.demo import ADMIN_AAD, TENANT, load_demo
from core.licensing import Licensing
from core.migrate import upgrade
from core.models import Base
from core.views import Actor
from payments.sandbox.gateway import SandboxGateway

pytest.register_assert_rewrite("tests.harness")  # before the import: its asserts keep pytest's messages

from tests.fakes.fake_stripe import FakeStripe  # noqa: E402
from tests.harness import running_desk, texts_of  # noqa: E402

PG_URL = os.environ.get("TEST_DATABASE_URL")
BASE_URL = "http://127.0.0.1:3978"
_FAKE_PLURAL = re.compile(r"\w\(s\)")  # "user(s)", "licence(s)": a count's word must agree with the count


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "db_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)


class Clock:
    """A settable UTC clock: ``clock.now`` is returned; ``advance`` moves it."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw) -> datetime:
        self.now += timedelta(**kw)
        return self.now


@pytest.fixture(scope="session")
def _template(tmp_path_factory):
    if PG_URL:
        schema = f"t_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(PG_URL)
        with admin.begin() as c:
            c.exec_driver_sql(f"CREATE SCHEMA {schema}")
        url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"
        upgrade(url)
        yield url
        with admin.begin() as c:
            c.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()
    else:
        path = tmp_path_factory.mktemp("tmpl") / "template.db"
        upgrade(f"sqlite:///{path}")
        yield path


@pytest.fixture
def db_url(_template, tmp_path):
    """A freshly migrated, empty database for this test."""
    if PG_URL:
        engine = sa.create_engine(_template)
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        with engine.begin() as c:
            c.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        engine.dispose()
        return _template
    path = tmp_path / "test.db"
    shutil.copy(_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def clock():
    return Clock(datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC))


@pytest.fixture
def db(db_url):
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def lic(db, clock):
    return Licensing(db, Catalog.load(), SandboxGateway(BASE_URL), clock=clock, quote_ttl=timedelta(minutes=30))


@pytest.fixture
def demo(lic):
    assert load_demo(lic)
    return lic


@pytest.fixture
def admin():
    return Actor(TENANT, ADMIN_AAD)


@pytest.fixture
def admin2():
    return Actor(TENANT, "00000000-0000-0000-0000-0000000000021")


@pytest.fixture
def member():
    return Actor(TENANT, "00000000-0000-0000-0000-0000000000022")


@pytest.fixture
def fake_stripe():
    """A fake Stripe API server (tests/fakes/fake_stripe.py) on a free port, for one test."""
    server = FakeStripe().start()
    yield server
    server.stop()


@pytest.fixture
async def desk(db, clock):
    """The app over real HTTP (tests.harness.Desk) on this test's database and clock, with the
    demo account (Contoso) loaded."""
    async with running_desk(db=db, clock=clock) as d:
        yield d
        faked = [t for card in d.shown_cards() for t in texts_of(card) if _FAKE_PLURAL.search(t)]
        assert not faked, f"a card fakes a plural with (s) instead of saying the count's form: {faked[:5]}"
        # Teams refreshes a card without refresh.userIds for every viewer of a chat of up to 60
        unlisted = [c["refresh"]["action"].get("verb") for c in d.shown_cards()
                    if "refresh" in c and "userIds" not in c["refresh"]]
        assert not unlisted, f"cards that refresh for every viewer (no refresh.userIds): {unlisted[:5]}"
