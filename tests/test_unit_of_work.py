"""The unit of work (core.unit_of_work): one transaction per card action, the caller resolved
once per unit, a joined command's refusal undoing only that command and audited once, and the
operations that call an outside service refused inside a unit."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

import core.services.accounts as accounts
from cards.verbs import Verb
from core.errors import Busy, InvalidInput, Message, NoFreeSeat, NotAdmin
from core.models import AuditEvent, Seat
from core.views import Actor, ChatAddress
from dialogs.router import Router, Turn

MEGAN = "00000000-0000-0000-0000-0000000000021"


def _pool(lic, actor, plan: str, interval: str = "month"):
    return next(p for p in lic.pools.list_pools(actor) if (p.plan_code, p.interval) == (plan, interval))


def _audits(db, action: str, outcome: str | None = None) -> list[AuditEvent]:
    with db.read() as s:
        q = select(AuditEvent).where(AuditEvent.action == action)
        return list(s.scalars(q if outcome is None else q.where(AuditEvent.outcome == outcome)))


def _seat_of(db, user_id: int) -> list[int]:
    with db.read() as s:
        return list(s.scalars(select(Seat.pool_id).where(Seat.user_id == user_id)))


@contextmanager
def counting(db, monkeypatch):
    """Counts the transactions begun on ``db`` and the callers resolved meanwhile."""
    seen = {"transactions": 0, "callers": 0}

    def begun(_conn):
        seen["transactions"] += 1

    resolve = accounts.resolve_caller

    def counted_resolve(s, actor):
        seen["callers"] += 1
        return resolve(s, actor)

    monkeypatch.setattr(accounts, "resolve_caller", counted_resolve)
    event.listen(db.engine, "begin", begun)
    try:
        yield seen
    finally:
        event.remove(db.engine, "begin", begun)


def _free_user(lic, admin, family_pool) -> int:
    """A user of the account with no seat in that pool's family (one to assign)."""
    held = {u.id for p in lic.pools.list_pools(admin) if p.family == family_pool.family
            for u in lic.pools.pool_users(admin, p.id, page_size=50).items}
    page = lic.accounts.directory(admin, page_size=50)
    return next(u.id for u in page.items if u.id not in held)


# ---------------------------------------------------------------------------- joined commands


def test_a_joined_commands_refusal_rolls_back_only_it_and_is_audited_once(demo, db, admin):
    lic = demo
    pro = _pool(lic, admin, "pro", "year")
    user = _free_user(lic, admin, pro)
    before = len(_audits(db, "test.refused_op", "refused"))

    def refused_after_writing(u, caller):
        u.audit_ok(caller, "test.written_then_refused")  # a write the refusal must undo
        raise InvalidInput(Message("Refused on purpose."))

    def step():
        view = lic.seats.assign(admin, user, pro.id)  # joins the unit
        with pytest.raises(InvalidInput):
            lic.units.command(admin, "test.refused_op", refused_after_writing)
        return view

    view = lic.units.writing(admin, step)
    assert view.assigned == pro.assigned + 1
    assert pro.id in _seat_of(db, user)  # the first command is committed
    assert _audits(db, "seat.assigned", "ok")[-1].target == f"user:{user}"
    assert _audits(db, "test.written_then_refused") == []  # the refused command's write was undone
    refusals = _audits(db, "test.refused_op", "refused")
    assert len(refusals) == before + 1  # audited once, after the unit
    assert refusals[-1].message == "Refused on purpose."


def test_a_refusal_escaping_a_write_unit_is_audited_once_after_rollback(demo, db, admin):
    lic = demo
    pro = _pool(lic, admin, "pro", "year")
    user = _free_user(lic, admin, pro)

    def step():
        lic.seats.assign(admin, user, pro.id)
        for _ in range(pro.quantity):  # the pool fills up: the next assignment is refused
            other = _free_user(lic, admin, pro)
            lic.seats.assign(admin, other, pro.id)

    with pytest.raises(NoFreeSeat):
        lic.units.writing(admin, step)
    assert _seat_of(db, user) == []  # everything the unit did was rolled back
    assert _audits(db, "seat.assigned", "ok") == []
    refused = _audits(db, "seat.assign", "refused")
    assert len(refused) == 1 and refused[0].detail["code"] == NoFreeSeat.code


def test_a_refusal_of_a_joined_query_is_audited_once_when_the_read_unit_ends(demo, db, member):
    lic = demo
    with lic.units.reading(member):
        with pytest.raises(NotAdmin) as caught:
            lic.pools.list_pools(member)
        lic.audit.record_refusal(member, "pools.list", caught.value)  # (the same refusal again: once)
        assert _audits(db, "pools.list", "refused") == []  # not before the unit has ended
    assert len(_audits(db, "pools.list", "refused")) == 1


def test_a_command_cannot_join_a_read_unit(demo, admin):
    lic = demo
    pro = _pool(lic, admin, "pro", "year")
    with lic.units.reading(admin), pytest.raises(RuntimeError, match="cannot join a read unit"):
        lic.seats.cancel_removal(admin, pro.id)


# ---------------------------------------------------------------------------- outside services


def test_payment_link_inside_a_unit_raises(demo, db, admin):
    lic = demo
    eco = _pool(lic, admin, "eco")
    users = [u.id for u in lic.pools.pool_users(admin, eco.id, page_size=2).items]
    quote = lic.quotes.quote_upgrade(admin, eco.id, users, "pro")
    with lic.units.reading(admin), pytest.raises(RuntimeError, match="outside service"):
        lic.links.payment_link(admin, quote.id)
    with pytest.raises(RuntimeError, match="outside service"):
        lic.units.writing(admin, lambda: lic.links.payment_link(admin, quote.id))
    assert lic.quotes.quote(admin, quote.id).payment_url is None  # no link was made
    assert lic.links.payment_link(admin, quote.id).payment_url  # outside a unit: made


# ---------------------------------------------------------------------------- one transaction per card action


def test_the_pool_users_page_card_action_runs_in_one_transaction(demo, db, admin, monkeypatch):
    lic = demo
    router = Router(lic)
    eco = _pool(lic, admin, "eco")
    with counting(db, monkeypatch) as seen:
        router.on_action(Turn(admin), Verb.POOL_USERS, {"pool": eco.id, "page": 1})
    assert seen == {"transactions": 1, "callers": 1}


def test_the_tiers_card_action_runs_in_one_transaction(demo, db, admin, monkeypatch):
    """The tiers card reads the options, the pool and the selected users: one snapshot (it was
    three transactions, each resolving the caller)."""
    lic = demo
    router = Router(lic)
    eco = _pool(lic, admin, "eco")
    users = [u.id for u in lic.pools.pool_users(admin, eco.id, page_size=2).items]
    with counting(db, monkeypatch) as seen:
        router.on_action(Turn(admin), Verb.UPGRADE_TIERS, {"pool": eco.id, "sel": users})
    assert seen == {"transactions": 1, "callers": 1}


def test_the_upgrade_quote_action_reads_its_admins_and_link_in_the_quotes_own_transaction(demo, db, admin,
                                                                                         monkeypatch):
    """Upgrade: the quote written with whom its card is kept live for (the card's ``admins``)
    and what its payment link needs, then the link's write: two transactions, one caller
    resolved (the admins were a third, the link's read a fourth)."""
    lic = demo
    router = Router(lic)
    lic.addresses.save_address(admin.tenant_id, admin.aad_object_id, ChatAddress("<opaque>", chat_user_id="29:alex"))
    eco = _pool(lic, admin, "eco")
    users = [u.id for u in lic.pools.pool_users(admin, eco.id, page_size=2).items]
    data = {"pool": eco.id, "sel": users, "qkey": "ab" * 16, "plan": "pro"}
    with counting(db, monkeypatch) as seen:
        card = router.on_action(Turn(admin), Verb.UPGRADE_QUOTE, data)
    assert seen == {"transactions": 2, "callers": 1}
    assert card["refresh"]["userIds"] == ["29:alex"]
    assert lic.quotes.quote(admin, "ab" * 16).payment_url  # (the link was made in those two)


def test_the_request_card_refresh_runs_in_one_transaction(demo, db, admin, monkeypatch):
    lic = demo
    router = Router(lic)
    megan = Actor(admin.tenant_id, MEGAN)  # an admin holding Advanced: asks for Pro
    req = lic.requests.request_upgrade(megan, "pro", "for the API")
    with counting(db, monkeypatch) as seen:
        router.on_action(Turn(admin), Verb.REQUEST_REFRESH, {"request": req.id})
    assert seen == {"transactions": 1, "callers": 1}


def test_a_write_unit_the_database_cannot_commit_audits_each_command_that_joined_it(demo, db, admin, monkeypatch):
    """Busy after every retry (a lasting lock): nothing the unit did is kept, and each command
    that joined it is audited as refused by it, as a command of its own transaction would be."""
    lic = demo
    pro = _pool(lic, admin, "pro", "year")
    user = _free_user(lic, admin, pro)
    write, locked = db.write, [True]

    def locked_through_every_retry(fn, **kw):  # (the unit's own transaction; the audit after it goes through)
        if not locked or not locked.pop():
            return write(fn, **kw)

        def then_busy(s):
            fn(s)
            raise OperationalError("COMMIT", {}, Exception("database is locked"))
        return write(then_busy, attempts=1)

    monkeypatch.setattr(db, "write", locked_through_every_retry)
    with pytest.raises(Busy):
        lic.units.writing(admin, lambda: lic.seats.assign(admin, user, pro.id))
    assert _seat_of(db, user) == []
    refused = _audits(db, "seat.assign", "refused")
    assert [(r.target, r.detail["code"]) for r in refused] == [(f"user:{user}", Busy.code)]
