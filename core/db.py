"""Database access: engine, sessions and a unit of work with retries.

SQLite (the default) runs in WAL mode and write transactions start with ``BEGIN IMMEDIATE``
so that two writers serialise instead of failing half-way; PostgreSQL uses row locks.
A write transaction that meets a busy database or a serialisation conflict is retried
(tenacity) and, if it still fails, surfaces as a :class:`core.errors.Busy` error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import DateTime, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from core.errors import Busy, Message


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in Python; naive UTC in the database (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def conflict_insert(s: Session, model):
    """``INSERT`` with ``ON CONFLICT`` clauses (``on_conflict_do_nothing`` / ``_do_update``) in the
    session's dialect (PostgreSQL and SQLite both have them): a row that another transaction may
    be inserting at the same moment is written without a unique-violation error."""
    return (sqlite.insert if s.get_bind().dialect.name == "sqlite" else postgresql.insert)(model)


def _is_transient(exc: BaseException) -> bool:
    if not isinstance(exc, OperationalError | DBAPIError):
        return False
    text = str(getattr(exc, "orig", exc)).lower()
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return (
        "database is locked" in text
        or "database is busy" in text
        or code in {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock not available
    )


def make_engine(url: str, *, lock_timeout_ms: int = 5000) -> Engine:
    """An engine whose connections wait at most ``lock_timeout_ms`` for a lock held by another
    transaction (then the unit of work retries, see :meth:`Database.write`)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": lock_timeout_ms / 1000, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(lock_timeout_ms)}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)

    @event.listens_for(engine, "connect")
    def _pg_connect(dbapi_conn, _record):
        with dbapi_conn.cursor() as cur:
            cur.execute(f"SET lock_timeout = {int(lock_timeout_ms)}")
        dbapi_conn.commit()

    return engine


class Database:
    def __init__(self, url: str, engine: Engine | None = None, *, lock_timeout_ms: int = 5000, attempts: int = 4):
        self.url = url
        self.engine = engine or make_engine(url, lock_timeout_ms=lock_timeout_ms)
        self.attempts = attempts
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        writer = self.engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else self.engine
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(writer, expire_on_commit=False)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as s, s.begin():
            yield s

    def write(self, fn, *, attempts: int | None = None):
        """Run ``fn(session)`` in one write transaction, retried on transient conflicts (a busy
        database, a lock wait that timed out, a serialisation failure or a deadlock). Each try
        is a whole transaction: a failed one leaves nothing behind."""
        retry = Retrying(
            retry=retry_if_exception(_is_transient),
            stop=stop_after_attempt(attempts or self.attempts),
            wait=wait_random_exponential(multiplier=0.05, max=1),
            reraise=True,
        )
        try:
            for attempt in retry:
                with attempt, self._write() as s, s.begin():
                    return fn(s)
        except (OperationalError, DBAPIError) as exc:
            if _is_transient(exc):
                raise Busy(Message("The database is busy right now. Nothing was changed; please try again.")) from exc
            raise

    def dispose(self) -> None:
        self.engine.dispose()
