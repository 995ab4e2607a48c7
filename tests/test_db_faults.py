"""A busy database or a conflicting transaction: the operation is retried, or refused with a
clear message, never half done."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from core.catalog import Catalog
from core.db import Database
from core.errors import Busy
from core.licensing import Licensing
from core.models import AuditEvent, Pool, Quote, QuoteHold
from payments.sandbox.gateway import SandboxGateway
from tests.conftest import BASE_URL


class Blocker:
    """Another client holding a write lock on the eco pool row (SQLite: the whole database)."""

    def __init__(self, db_url: str, pool_id: int):
        self.engine = sa.create_engine(db_url, connect_args={"check_same_thread": False}
                                       if db_url.startswith("sqlite") else {})
        self.pool_id = pool_id
        self.locked = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with self.engine.connect() as c:
            if self.engine.dialect.name == "sqlite":
                c.exec_driver_sql("BEGIN IMMEDIATE")
                c.exec_driver_sql("UPDATE pools SET quantity = quantity WHERE id = ?", (self.pool_id,))
            else:
                c.exec_driver_sql("SELECT id FROM pools WHERE id = %s FOR UPDATE", (self.pool_id,))
            self.locked.set()
            self.release.wait(30)
            c.rollback()

    def hold(self, seconds: float | None):
        self.thread.start()
        assert self.locked.wait(10)
        if seconds is not None:
            threading.Timer(seconds, self.release.set).start()
        return self

    def stop(self):
        self.release.set()
        self.thread.join(10)
        self.engine.dispose()


@pytest.fixture
def impatient(db_url, demo, clock):
    """The core on a database whose lock waits last 150 ms, retried 4 times."""
    database = Database(db_url, lock_timeout_ms=150, attempts=4)
    yield Licensing(database, Catalog.load(), SandboxGateway(BASE_URL), clock=clock, quote_ttl=timedelta(minutes=30))
    database.dispose()


def _eco(lic):
    with lic.db.read() as s:
        return s.scalar(select(Pool.id).where(Pool.plan_code == "eco"))


def test_a_short_conflict_is_retried_and_succeeds(db_url, impatient, admin):
    pool = _eco(impatient)
    users = [u.id for u in impatient.pools.pool_users(admin, pool, page_size=2).items]
    blocker = Blocker(db_url, pool).hold(0.3)  # longer than one lock wait, shorter than the retries
    try:
        started = time.monotonic()
        q = impatient.quotes.quote_upgrade(admin, pool, users, "pro")
        assert time.monotonic() - started >= 0.15  # it did wait for the other transaction
    finally:
        blocker.stop()
    assert q.status == "open" and len(q.users) == 2
    with impatient.db.read() as s:
        assert s.scalar(select(func.count()).select_from(QuoteHold)) == 2


def test_a_long_conflict_gets_a_clear_message_and_no_half_change(db_url, impatient, admin):
    pool = _eco(impatient)
    users = [u.id for u in impatient.pools.pool_users(admin, pool, page_size=2).items]
    blocker = Blocker(db_url, pool).hold(None)
    try:
        with pytest.raises(Busy) as err:
            impatient.quotes.quote_upgrade(admin, pool, users, "pro")
    finally:
        blocker.stop()
    assert "busy" in err.value.message and "Nothing was changed" in err.value.message
    assert "sqlite" not in err.value.message.lower() and "lock" not in err.value.message.lower()
    with impatient.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Quote)) == 0
        assert s.scalar(select(func.count()).select_from(QuoteHold)) == 0
        refused = s.scalars(select(AuditEvent).where(AuditEvent.outcome == "refused")).all()
    if impatient.db.is_sqlite:
        # SQLite locks the whole file: the refusal could not be audited while the other writer held it
        # (it is logged instead); PostgreSQL locks the row only, so the refusal is audited.
        assert refused == []
    else:
        assert [(e.action, e.detail.get("code")) for e in refused] == [("quote.upgrade", "busy")]
    # once the other transaction is gone, the same request goes through
    assert impatient.quotes.quote_upgrade(admin, pool, users, "pro").status == "open"
