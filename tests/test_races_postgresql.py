"""Races between two server instances on one PostgreSQL database (issue 9, items 12-14).

Two ``python -m tests.desk_server`` processes share the test's database; the test plays Teams
(the harness's fake Bot Connector and Teams-shaped activities) and the payer's browser (the
sandbox pay page) against both at once, round after round (bounded), so that the two
transactions interleave. On SQLite these races cannot happen the same way: every write
transaction starts with ``BEGIN IMMEDIATE`` (core/db.py), so two writers, in threads or in
processes, run one after the other and each sees what the other committed. The tests need
PostgreSQL (``TEST_DATABASE_URL``; ``.ci/run`` runs the ``db`` tests there) and skip otherwise.

No test asserts a duration: the outcome of every round only (the waits are safety nets).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, insert, select

from core.db import Database
from core.models import AuditEvent, DeliveryAddress, OutboxMessage, Pool, Quote, Seat, Subscription
from tests.conftest import PG_URL
from tests.harness import add_account, audit_mark, heading_of, running_desk, text_of
from tests.test_outbox_faults import Worker

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.db,
    pytest.mark.skipif(not PG_URL, reason="two server processes racing on one database need PostgreSQL (on SQLite "
                                          "BEGIN IMMEDIATE serialises every write): set TEST_DATABASE_URL "
                                          "(.ci/run runs the db tests again on PostgreSQL)"),
]
START_WAIT = 60.0  # seconds: a safety net for a server that does not start, not a speed target
APOLOGY = "something went wrong"


class DeskProcess(Worker):
    """``python -m tests.desk_server`` (the whole app) in a process of its own (stopped as the
    notifier worker process is)."""

    def __init__(self, db_url: str, log: Path):
        self.log = log
        self._stderr = open(log, "a")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.desk_server", db_url], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self.url = ""

    async def ready(self) -> DeskProcess:
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), START_WAIT)
        assert line.startswith("ready "), f"the server did not start: {line!r}; see {self.log}"
        self.url = line.split()[1]
        return self


@pytest.fixture
async def local(db_url):
    """The harness (fake Bot Connector, Teams clients, an app instance for the set-up steps) on
    the shared database, on real time like the two server processes."""
    db = Database(db_url)
    try:
        async with running_desk(db=db, demo=False) as desk:
            yield desk
    finally:
        db.dispose()


@pytest.fixture
async def servers(db_url, tmp_path):
    """The base URLs of two app processes on the test's database."""
    procs = [DeskProcess(db_url, tmp_path / f"server{k}.log") for k in range(2)]
    try:
        await asyncio.gather(*(p.ready() for p in procs))
        yield [p.url for p in procs]
    finally:
        for p in procs:
            p.stop()
    for p in procs:
        log = p.log.read_text()
        assert "Traceback" not in log, f"a server logged a traceback:\n{log[-3000:]}"


def people(tag: str, n: int) -> list[tuple[str, str, str, str]]:
    """An administrator and ``n`` members (aad object id, e-mail, name, role) of a Fabrikam account."""
    out = [(f"{tag}-admin", f"admin.{tag}@fabrikam.com", f"Admin {tag}", "admin")]
    return out + [(f"{tag}-m{i:03d}", f"m{i}.{tag}@fabrikam.com", f"Member {tag} {i:03d}", "member")
                  for i in range(n)]


def tenant_of(k: int) -> str:
    return f"33333333-0000-0000-0000-{k:012d}"


# ============================================================================ 12: first subscription of an interval

ROUNDS_SETTLE = 12


async def test_two_first_purchases_of_an_interval_paid_at_once_in_two_processes_both_settle(local, servers):
    """Each round: a new account without a monthly subscription, two purchase quotes (each priced
    as a new period from its own time), both paid at the same moment, one on each server. Both
    payers get their page (never a 5xx) and both purchases are in the one monthly subscription the
    first settlement created; the second paid a full period from its own time and its seats join
    a period that ends no earlier than the one it was quoted (in the customer's favour)."""
    for r in range(ROUNDS_SETTLE):
        acc = add_account(local.lic, tenant=tenant_of(r), people=people(f"s{r}", 0), plan=None, name=f"Buyer {r}")
        admin = acc.actors[0]
        quotes = [local.lic.quotes.quote_purchase(admin, [{"plan": "eco", "interval": "month", "quantity": 2 + k}])
                  for k in range(2)]
        paths = [urlsplit(local.lic.links.payment_link(admin, q.id).payment_url).path for q in quotes]
        answers = await asyncio.gather(*(local.post_form(base + path, {"action": "pay"})
                                         for base, path in zip(servers, paths, strict=True)))
        assert [a.status for a in answers] == [200, 200], f"round {r}: {[(a.status, a.text[:300]) for a in answers]}"
        with local.lic.db.read() as s:
            subs = s.scalars(select(Subscription).where(Subscription.account_id == acc.account_id)).all()
            assert [sub.interval for sub in subs] == ["month"], f"round {r}"
            pools = s.execute(select(Pool.plan_code, Pool.quantity).where(Pool.subscription_id == subs[0].id)).all()
            assert pools == [("eco", 5)], f"round {r}: {pools}"
            stored = {q.id: q for q in s.scalars(select(Quote).where(Quote.account_id == acc.account_id))}
            assert {q.status for q in stored.values()} == {"paid"}, f"round {r}"
            for q in quotes:
                assert stored[q.id].due_now == q.due_now  # charged what was quoted
                quoted_end = max(ln["period_end"] for ln in stored[q.id].lines)
                assert subs[0].period_end.isoformat() >= quoted_end, f"round {r}: the period is shorter than quoted"
            settled = s.scalar(select(func.count()).select_from(AuditEvent).where(
                AuditEvent.account_id == acc.account_id, AuditEvent.action == "quote.settled"))
            assert settled == 2, f"round {r}"


async def test_two_upgrades_into_a_plan_without_a_pool_yet_paid_at_once_in_two_processes_both_settle(local, servers):
    """Each round: an account with Eco and Advanced pools and no Pro pool yet; one user of each
    pool is quoted an upgrade to Pro, and both quotes are paid at the same moment, one on each
    server. Both settle into the one Pro pool the first settlement created."""
    for r in range(ROUNDS_SETTLE):
        acc = add_account(local.lic, tenant=tenant_of(300 + r), people=people(f"u{r}", 2), plan="eco", quantity=3,
                          seats=[1], name=f"Upgrader {r}")
        adv = add_second_pool(local.lic, acc.account_id, "advanced", 3)
        admin = acc.actors[0]
        local.lic.seats.assign(admin, acc.user_ids[2], adv)
        quotes = [local.lic.quotes.quote_upgrade(admin, pool, [uid], "pro")
                  for pool, uid in ((acc.pool_id, acc.user_ids[1]), (adv, acc.user_ids[2]))]
        paths = [urlsplit(local.lic.links.payment_link(admin, q.id).payment_url).path for q in quotes]
        answers = await asyncio.gather(*(local.post_form(base + path, {"action": "pay"})
                                         for base, path in zip(servers, paths, strict=True)))
        assert [a.status for a in answers] == [200, 200], f"round {r}: {[(a.status, a.text[:300]) for a in answers]}"
        with local.lic.db.read() as s:
            pools = dict(s.execute(select(Pool.plan_code, Pool.quantity)
                                   .where(Pool.account_id == acc.account_id)).all())
            assert pools == {"eco": 2, "advanced": 2, "pro": 2}, f"round {r}: {pools}"
            held = s.execute(select(Seat.user_id, Pool.plan_code).join(Pool, Pool.id == Seat.pool_id)
                             .where(Seat.account_id == acc.account_id)).all()
            assert sorted(held) == [(acc.user_ids[1], "pro"), (acc.user_ids[2], "pro")], f"round {r}"
            assert {q.status for q in s.scalars(select(Quote).where(Quote.account_id == acc.account_id))} == {"paid"}


# ============================================================================ 13: one user, two pools of a family


ROUNDS_ASSIGN = 15


def add_second_pool(lic, account_id: int, plan: str, quantity: int) -> int:
    """A pool of ``plan`` in the account's monthly subscription."""

    def work(s) -> int:
        sub = s.scalars(select(Subscription).where(Subscription.account_id == account_id)).one()
        return s.execute(insert(Pool).values(account_id=account_id, subscription_id=sub.id, plan_code=plan,
                                             quantity=quantity, removal_scheduled=0, created_at=lic.now())
                         .returning(Pool.id)).scalar_one()

    return lic.db.write(work)


async def test_one_user_assigned_into_two_pools_of_a_family_at_once_gets_already_holds(local, servers):
    """Each round: the administrator saves the same user into Eco on one server and into Advanced
    (same family) on the other, at the same moment. One assignment is made; the other answer is
    the "already holds" refusal a second, later assignment gets, audited as refused, and nothing
    else is written for it."""
    tenant = tenant_of(100)
    acc = add_account(local.lic, tenant=tenant, people=people("a", ROUNDS_ASSIGN), plan="eco",
                      quantity=ROUNDS_ASSIGN, age=timedelta(days=3))
    eco = acc.pool_id
    adv = add_second_pool(local.lic, acc.account_id, "advanced", ROUNDS_ASSIGN)
    admin_aad = acc.actors[0].aad_object_id
    alex = local.client(admin_aad, tenant_id=tenant, name="Admin a")
    at = [local.client(admin_aad, tenant_id=tenant, name="Admin a", server=url) for url in servers]
    [picker] = await alex.say("assign")
    for r, uid in enumerate(acc.user_ids[1:]):
        plans = (await alex.act(picker, "Choose plan", user=str(uid))).expect_card()
        mark = audit_mark(local.lic)
        replies = await asyncio.gather(at[0].act(plans, "Save", to_pool=str(eco)),
                                       at[1].act(plans, "Save", to_pool=str(adv)))
        cards = [reply.expect_card() for reply in replies]
        shown = [(heading_of(c), text_of(c)) for c in cards]
        assert not any(APOLOGY in t.lower() for _, t in shown), f"round {r}: {shown}"
        assert sorted(h for h, _ in shown) == ["Already assigned", "License assigned"], f"round {r}: {shown}"
        refusal = next(t for h, t in shown if h == "Already assigned")
        assert "already holds a" in refusal and "(Standard family)" in refusal, refusal
        with local.lic.db.read() as s:
            seats = s.scalars(select(Seat.pool_id).where(Seat.user_id == uid)).all()
            assert len(seats) == 1 and seats[0] in (eco, adv), f"round {r}: {seats}"
            told = s.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.user_id == uid))
            assert told == 1, f"round {r}: {told} notices for one assignment"
            events = s.execute(select(AuditEvent.action, AuditEvent.outcome, AuditEvent.detail)
                               .where(AuditEvent.id > mark).order_by(AuditEvent.id)).all()
        assert sorted((a, o) for a, o, _ in events) == [("seat.assign", "refused"), ("seat.assigned", "ok")], \
            f"round {r}: {events}"
        refused = next(d for a, _, d in events if a == "seat.assign")
        assert refused["code"] == "seat_already_held"  # the same refusal as a sequential second assignment,
        assert refused["message"]["params"]["family"] == "Standard"  # its Message kept to be said in any language


# ============================================================================ 14: a new user's first activities


USERS_FIRST = 50  # 100 activities


async def test_a_new_users_first_activities_at_two_instances_at_once_all_go_through(local, servers):
    """Each of 50 new users sends their first message to both servers at once (Teams delivers a
    user's activities to any instance): both are answered normally, never with the apology, and
    one delivery address is stored for the user."""
    tenant = tenant_of(200)
    acc = add_account(local.lic, tenant=tenant, people=people("f", USERS_FIRST), plan=None)
    members = acc.actors[1:]
    for r, actor in enumerate(members):
        clients = [local.client(actor.aad_object_id, tenant_id=tenant, name=f"Member {r}", server=url)
                   for url in servers]
        mark = local.connector.mark()
        results = await asyncio.gather(*(c.send(c.activity("message", text="my license", textFormat="plain"))
                                         for c in clients))
        assert all(res.status < 300 for res in results), f"user {r}: {[(x.status, x.text[:300]) for x in results]}"
        cards = [c for call in local.connector.since(mark, conversation_id=clients[0].conversation_id)
                 if call.kind == "reply" for c in call.cards]
        shown = [(heading_of(c), text_of(c)) for c in cards]
        assert len(shown) == 2 and not any(APOLOGY in t.lower() for _, t in shown), f"user {r}: {shown}"
        assert [h for h, _ in shown] == ["Your licenses", "Your licenses"], f"user {r}: {shown}"
    with local.lic.db.read() as s:
        stored = s.scalar(select(func.count()).select_from(DeliveryAddress).where(
            DeliveryAddress.user_id.in_(acc.user_ids[1:])))
    assert stored == USERS_FIRST
