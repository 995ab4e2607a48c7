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
