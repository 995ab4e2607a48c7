"""The unit of work: one transaction, the clock read once, the caller resolved once.

Every core operation runs in a :class:`Unit`. :class:`Units` opens them with today's rules: a
command is one write transaction (retried whole by :meth:`Database.write`), a query one read
transaction, and a refused operation (a :class:`DomainError`) writes nothing but its audit
event. A flow may open one unit for a whole card action (:meth:`Units.reading`,
:meth:`Units.writing`): the commands and queries called inside JOIN it (propagation
"REQUIRED", through a context variable), so that the card is built from one snapshot; a joined
command runs in a SAVEPOINT, so that its refusal undoes only that operation.

Refusals are collected by the unit and audited in a transaction of their own once the unit
has ended (committed or rolled back), exactly once each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from core.catalog import Catalog
from core.db import Database
from core.errors import Busy, DomainError, Message, NotAdmin
from core.kinds import OutboxKind, OutboxStatus, Outcome
from core.models import AccountTenant, AuditEvent, OutboxMessage, User
from core.payments import LinkTraits
from core.services import accounts
from core.services.shared import chunks, execute_core, table_of
from core.views import SYSTEM, Actor, CallerView

log = logging.getLogger(__name__)

_AUDIT_INSERT = insert(table_of(AuditEvent))

_OPEN: ContextVar[Unit | None] = ContextVar("licensing_unit", default=None)


class Unit:
    """One transaction: its session ``s``, its instant ``now`` and the callers it resolved."""

    def __init__(self, s: Session, now: datetime, catalog: Catalog, *, write: bool, actor: Actor | None = None,
                 link_traits: Mapping[str, LinkTraits] | None = None):
        self.s = s
        self.now = now
        self.catalog = catalog
        self._link_traits = link_traits or {}
        self.write = write
        self.actor = actor
        self.refusals: list[tuple[Actor | None, str, DomainError, str | None]] = []
        # the commands that joined this unit: refused together if the unit itself cannot commit
        self.commands: list[tuple[Actor, str, str | None]] = []
        self._callers: dict[Actor, CallerView] = {}

    def caller(self, actor: Actor, admin: bool) -> CallerView:
        """The account and user behind ``actor``, read once per unit; NotAdmin when ``admin`` is
        asked of a member (with whom to ask)."""
        caller = self._callers.get(actor) if isinstance(actor, Actor) else None
        if caller is None:
            caller = accounts.resolve_caller(self.s, actor)
            self._callers[actor] = caller
        if admin and not caller.is_admin:
            whom, admins = accounts.whom_to_ask(self.s, caller.account_id)
            if whom:
                message = Message("Only an administrator of your License Desk account can do this. Ask {whom}.",
                                  whom=whom)
            else:
                message = Message("Only an administrator of your License Desk account can do this. Ask one of them.")
            raise NotAdmin(message, **admins)
        return caller

    def link_traits(self, provider: str) -> LinkTraits:
        """How the payment links of ``provider`` are treated (a provider not known: as a remote one's)."""
        return self._link_traits.get(provider) or LinkTraits()

    def audit(self, *, account_id: int | None, tenant_id: str | None, actor_id: int | None, actor: str | None,
              action: str, outcome: Outcome = Outcome.OK, target: str | None = None, message: str | None = None,
              detail: dict | None = None) -> None:
        if isinstance(message, Message):  # its template and params too: said in the reader's language later
            detail = {**(detail or {}), "message": message.to_json()}
        # a row of columns written at once (after what is pending: an account it names, say), not
        # an ORM object for the flush to order and write (a card action audits once or twice)
        execute_core(self.s, _AUDIT_INSERT, {
            "account_id": account_id, "tenant_id": tenant_id, "actor_id": actor_id, "actor": actor,
            "action": action, "outcome": outcome, "target": target,
            "message": None if message is None else str(message),  # (the English text: a plain str)
            "detail": detail or {}, "created_at": self.now})

    def audit_ok(self, caller: CallerView | None, action: str, target: str | None = None,
                 detail: dict | None = None, account_id: int | None = None) -> None:
        self.audit(account_id=caller.account_id if caller else account_id,
                   tenant_id=caller.tenant_id if caller else None, actor_id=caller.user_id if caller else None,
                   actor=caller.name if caller else SYSTEM, action=action, target=target, detail=detail)

    def outbox(self, *, account_id: int, kind: OutboxKind, dedupe_key: str, payload: dict,
               user_id: int | None = None) -> None:
        """Queue a message, once per dedupe key (a replayed change queues nothing new), on the
        channel of its kind (who delivers it)."""
        s = self.s
        if s.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)) is not None:
            return
        s.add(OutboxMessage(account_id=account_id, channel=kind.channel, kind=kind, user_id=user_id, payload=payload,
                            dedupe_key=dedupe_key, status=OutboxStatus.PENDING, attempts=0, available_at=self.now,
                            created_at=self.now))

    def outbox_many(self, *, account_id: int, kind: OutboxKind, payload: dict, users: dict[str, int]) -> None:
        """Queue one message of ``kind`` and ``payload`` to each of ``users`` (dedupe key -> user
        id), once per dedupe key as :meth:`outbox` does, in set-based statements: one read of the
        keys queued already and one multi-row insert per 500 (a settlement telling 1,000 users
        costs a few round trips, not 2,000)."""
        s = self.s
        to_queue = dict(users)
        for chunk in chunks(list(to_queue)):
            for queued in s.scalars(select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.in_(chunk))):
                del to_queue[queued]
        rows = [{"account_id": account_id, "channel": kind.channel, "kind": kind, "user_id": user_id,
                 "payload": payload, "dedupe_key": key, "status": OutboxStatus.PENDING, "attempts": 0,
                 "available_at": self.now, "created_at": self.now} for key, user_id in to_queue.items()]
        for chunk in chunks(rows):
            s.execute(insert(OutboxMessage), chunk)


class Units:
    """Opens units on ``db`` with ``clock``; the one place that decides transactions."""

    def __init__(self, db: Database, catalog: Catalog, clock: Callable[[], datetime],
                 link_traits: Mapping[str, LinkTraits] | None = None):
        self.db = db
        self.catalog = catalog
        self.clock = clock
        self.link_traits = dict(link_traits or {})  # payment provider name -> how its links are treated

    def now(self) -> datetime:
        return self.clock().replace(microsecond=0)

    def _unit(self, s: Session, *, write: bool, actor: Actor | None = None) -> Unit:
        return Unit(s, self.now(), self.catalog, write=write, actor=actor, link_traits=self.link_traits)

    @staticmethod
    def current() -> Unit | None:
        """The unit a flow opened for this turn, if any."""
        return _OPEN.get()

    def outside(self, what: str) -> None:
        """Refuse to run ``what`` inside an open unit: it talks to an outside service between its
        transactions (holding a transaction over a network call would hold SQLite's write lock,
        or deadlock against it)."""
        if _OPEN.get() is not None:
            raise RuntimeError(f"{what} calls an outside service between transactions: it must not run inside an "
                               "open unit of work (call it after the unit)")

    # ------------------------------------------------------------------ flows: one unit per card action

    @contextmanager
    def reading(self, actor: Actor | None = None) -> Iterator[Unit]:
        """One read transaction (one snapshot) for a whole step; joins the open unit if there is one."""
        joined = _OPEN.get()
        if joined is not None:
            yield joined
            return
        unit = None
        try:
            with self.db.read() as s:
                unit = self._unit(s, write=False, actor=actor)
                token = _OPEN.set(unit)
                try:
                    yield unit
                finally:
                    _OPEN.reset(token)
        finally:
            if unit is not None:
                self._audit_refusals(unit.refusals)

    def writing(self, actor: Actor | None, fn: Callable[[], object]):
        """``fn()`` in one write transaction, retried whole on a transient conflict (refusals are
        collected per attempt: only the last attempt's are audited). Joins an open write unit."""
        joined = _OPEN.get()
        if joined is not None:
            if not joined.write:
                raise RuntimeError("a write unit cannot be opened inside a read unit")
            return fn()
        last: list[Unit] = []

        def attempt(s: Session):
            unit = self._unit(s, write=True, actor=actor)
            last[:] = [unit]
            token = _OPEN.set(unit)
            try:
                return fn()
            finally:
                _OPEN.reset(token)

        try:
            return self.db.write(attempt)
        except Busy as e:  # the database stayed locked through every retry: each command that joined was refused
            if last and last[0].commands and not e._refusal_audited:  # (none joined: the caller audits it)
                last[0].refusals.extend((a, action, e, target) for a, action, target in last[0].commands)
                e._refusal_audited = True
            raise
        finally:
            if last:
                self._audit_refusals(last[0].refusals)

    # ------------------------------------------------------------------ operations

    def command(self, actor: Actor, action: str, fn: Callable[[Unit, CallerView], object], *, admin: bool = True,
                target=None):
        """A write operation for ``actor``: ``fn(unit, caller)``. Refused: rolled back, audited."""
        unit = _OPEN.get()
        if unit is None:  # a transaction of its own (no savepoint needed: a refusal rolls all of it back)
            try:
                return self.writing(actor, lambda: self._run(_OPEN.get(), actor, action, fn, admin,  # type: ignore[arg-type]  # writing() opened it
                                                             target))
            except DomainError as e:  # e.g. Busy: the database stayed locked through every retry
                self.refuse(actor, action, e, target)
                raise
        if not unit.write:
            raise RuntimeError(f"{action} writes: it cannot join a read unit (open a write unit for the step)")
        unit.commands.append((actor, action, None if target is None else str(target)))
        with unit.s.begin_nested():  # (a refusal rolls back this operation only)
            return self._run(unit, actor, action, fn, admin, target)

    def _run(self, unit: Unit, actor: Actor, action: str, fn, admin: bool, target):
        try:
            return fn(unit, unit.caller(actor, admin))
        except DomainError as e:
            self.refuse(actor, action, e, target)
            raise

    def query(self, actor: Actor, action: str, fn: Callable[[Unit, CallerView], object], *, admin: bool = True,
              target=None):
        """A read operation for ``actor``: ``fn(unit, caller)``. Refused: audited."""
        unit = _OPEN.get()
        if unit is None:
            with self.reading(actor) as unit:
                return self._run(unit, actor, action, fn, admin, target)
        return self._run(unit, actor, action, fn, admin, target)

    def system_write(self, fn: Callable[[Unit], object]):
        """A write of the system's (jobs, deliveries, bookkeeping): joins an open write unit."""
        unit = _OPEN.get()
        if unit is not None and unit.write:
            with unit.s.begin_nested():
                return fn(unit)
        if unit is not None:
            raise RuntimeError("a write of the system cannot join a read unit")
        return self.db.write(lambda s: fn(self._unit(s, write=True)))

    @contextmanager
    def system_read(self) -> Iterator[Unit]:
        """A read of the system's: joins the open unit if there is one."""
        with self.reading(None) as unit:
            yield unit

    # ------------------------------------------------------------------ refusals

    def refuse(self, actor: Actor | None, action: str, error: DomainError, target=None) -> None:
        """Audit a refused attempt once: with the open unit's refusals (written when it ends), or now."""
        if getattr(error, "_refusal_audited", False):
            return
        error._refusal_audited = True
        refusal = (actor, action, error, None if target is None else str(target))
        unit = _OPEN.get()
        if unit is not None:
            unit.refusals.append(refusal)
            return
        self._audit_refusals([refusal])

    def _audit_refusals(self, refusals) -> None:
        for refusal in refusals:
            self._refused(*refusal)

    def _refused(self, actor: Actor | None, action: str, error: DomainError, target: str | None) -> None:
        """Audit a refused attempt in its own transaction (the refused one was rolled back)."""

        def work(s: Session):
            account_id = user_id = None
            name = actor.aad_object_id if actor else SYSTEM
            tenant = actor.tenant_id.lower() if actor and actor.tenant_id else None
            if actor and actor.tenant_id:
                account_id = s.scalar(select(AccountTenant.account_id).where(AccountTenant.tenant_id == tenant))
                if account_id and actor.aad_object_id:
                    u = s.execute(select(User.id, User.name).where(
                        User.account_id == account_id, User.aad_object_id == actor.aad_object_id)).first()
                    if u:
                        user_id, name = u
            self._unit(s, write=True).audit(
                account_id=account_id, tenant_id=tenant, actor_id=user_id, actor=(name or "")[:320], action=action,
                outcome=Outcome.REFUSED, target=(target or "")[:200] or None, message=error.message,
                detail={"code": error.code})

        try:
            self.db.write(work)
        except Exception:  # the refusal itself must reach the person even if auditing fails
            log.exception("could not audit a refused %s", action)
