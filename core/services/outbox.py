"""The outbox, for its delivery workers: messages leased to a worker (claims by account, with
affinity, for the notifier), renewed, given back, and marked sent, retried or failed."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.orm import Session

from core.kinds import Channel, OutboxStatus
from core.models import AccountTenant, DeliveryAddress, OutboxMessage, User
from core.services.shared import MAX_OUTBOX_ATTEMPTS, chunks
from core.views import ChatAddress, OutboxItem

if TYPE_CHECKING:
    from core.unit_of_work import Units

OUTBOX_CLAIM_LOCK = 0x4C44_4F42  # pg_advisory_xact_lock key serialising claims by account ("LDOB")


class Outbox:
    """Each call is one short transaction of its own (the workers run outside any unit)."""

    def __init__(self, units: Units):
        self.db = units.db
        self.now = units.now

    def claim(self, worker: str, *, channels: tuple[str, ...] = tuple(Channel), limit: int = 50,
                     lease: timedelta = timedelta(seconds=60), per_account: int | None = None,
                     max_accounts: int | None = None, skip_accounts: Collection[int] = ()) -> list[OutboxItem]:
        """Lease up to ``limit`` due messages to ``worker``. Several workers (even in several
        processes) share the outbox: rows are locked with SKIP LOCKED on PostgreSQL, and a
        lease that runs out (a crashed worker) makes a message due again.

        ``per_account`` (the notifier) claims by account, with affinity: at most that many
        messages per account (the oldest first, accounts taken in turn), and none of an account
        whose messages another worker holds (an unexpired lease on one of these channels), so
        that one worker at a time delivers for an account: its pacing then holds for the
        tenant's rate limit across processes, and a tenant has at most one message in flight.
        Accounts this worker holds already come first; ``max_accounts`` bounds the accounts of
        one claim and ``skip_accounts`` leaves some out (their queue is full). Such claims are
        serialised (an advisory lock on PostgreSQL; SQLite writes are serial anyway), so two
        workers never both take a free account."""
        now = self.now()

        def due():
            return (OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.available_at <= now,
                    OutboxMessage.channel.in_(channels),
                    or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until <= now))

        def by_account(s: Session) -> list[int]:
            assert per_account is not None, "claims by account only"
            if not self.db.is_sqlite:
                s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": OUTBOX_CLAIM_LOCK})
            # live leases, and accounts another worker sent for a moment ago (outbox_done_many's
            # hold): ix_outbox_locked_until
            held = s.execute(select(OutboxMessage.account_id, OutboxMessage.locked_by).distinct().where(
                OutboxMessage.locked_until > now, OutboxMessage.channel.in_(channels))).all()
            mine = {a for a, w in held if w == worker}
            excluded = {a for a, w in held if w != worker} | set(skip_accounts)
            # accounts with messages waiting, those this worker holds first, then the longest waiting
            # (an index-only scan of ix_outbox_status_account_available; exact checks per account)
            waiting = s.execute(select(OutboxMessage.account_id, func.min(OutboxMessage.available_at))
                                .where(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.available_at <= now)
                                .group_by(OutboxMessage.account_id)).all()
            order = [a for a, _ in sorted(waiting, key=lambda r: (r[0] not in mine, r[1], r[0])) if a not in excluded]
            wanted = len(order) if max_accounts is None else max_accounts
            per: list[list[int]] = []
            for tried, account in enumerate(order):  # each an index range
                if len(per) >= wanted or tried >= 3 * wanted + len(mine):
                    break
                q = (select(OutboxMessage.id).where(OutboxMessage.status == OutboxStatus.PENDING,
                                                    OutboxMessage.account_id == account, *due()[1:])
                     .order_by(OutboxMessage.available_at, OutboxMessage.id).limit(per_account))
                if not self.db.is_sqlite:
                    q = q.with_for_update(skip_locked=True)
                ids = list(s.scalars(q))
                if ids:
                    per.append(ids)
            taken: list[int] = []  # accounts in turn, up to the limit
            for rank in range(per_account):
                taken.extend(ids[rank] for ids in per if rank < len(ids))
            return taken[:limit]

        def work(s: Session) -> list[OutboxItem]:
            if per_account is not None:
                ids = by_account(s)
            else:
                q = select(OutboxMessage.id).where(*due()).order_by(OutboxMessage.available_at,
                                                                    OutboxMessage.id).limit(limit)
                ids = list(s.scalars(q if self.db.is_sqlite else q.with_for_update(skip_locked=True)))
            if not ids:
                return []
            s.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(
                locked_by=worker, locked_until=now + lease, attempts=OutboxMessage.attempts + 1),
                execution_options={"synchronize_session": False})
            rows = s.execute(select(OutboxMessage.id, OutboxMessage.account_id, OutboxMessage.channel,
                                    OutboxMessage.kind, OutboxMessage.user_id, OutboxMessage.payload,
                                    OutboxMessage.attempts).where(OutboxMessage.id.in_(ids))
                             .order_by(OutboxMessage.available_at, OutboxMessage.id)).all()
            user_ids = {r.user_id for r in rows if r.user_id}
            info: dict[int, tuple] = {}
            for chunk in chunks(sorted(user_ids)):
                for uid, aad, tenant, ref, chat_user_id, locale, tz in s.execute(
                        select(User.id, User.aad_object_id, AccountTenant.tenant_id, DeliveryAddress.ref,
                               DeliveryAddress.chat_user_id, DeliveryAddress.locale, DeliveryAddress.timezone)
                        .join(AccountTenant, AccountTenant.account_id == User.account_id)
                        .outerjoin(DeliveryAddress, DeliveryAddress.user_id == User.id)
                        .where(User.id.in_(chunk))):
                    address = None if ref is None else ChatAddress(ref, chat_user_id, locale, tz)
                    info.setdefault(uid, (aad, tenant, address))
            out = []
            for r in rows:
                aad, tenant, address = info.get(r.user_id, (None, None, None))
                out.append(OutboxItem(id=r.id, account_id=r.account_id, channel=r.channel, kind=r.kind,
                                      user_id=r.user_id, payload=r.payload, attempts=r.attempts, address=address,
                                      tenant_id=tenant, aad_object_id=aad))
            return out

        return self.db.write(work)

    def extend(self, message_ids: Collection[int], worker: str, lease: timedelta) -> set[int]:
        """Renew ``worker``'s lease on these messages for ``lease`` from now; the ids it still
        holds (pending and leased to it: a message another worker took once the lease ran out
        is not its own any more, and must not be sent by it)."""
        now, ids = self.now(), sorted(set(message_ids))

        def work(s: Session) -> set[int]:
            held: set[int] = set()
            for chunk in chunks(ids):
                held.update(s.scalars(update(OutboxMessage).where(
                    OutboxMessage.id.in_(chunk), OutboxMessage.locked_by == worker,
                    OutboxMessage.status == OutboxStatus.PENDING).values(locked_until=now + lease)
                    .returning(OutboxMessage.id), execution_options={"synchronize_session": False}))
            return held

        return self.db.write(work) if ids else set()

    def release(self, message_ids: Collection[int], worker: str, *, after: timedelta | None = None) -> None:
        """Give back messages leased but not attempted (a worker stopping; a card its reader is
        acting on): due again at once, or ``after`` that, for any worker, and the claim does not
        count as an attempt."""
        ids = sorted(set(message_ids))
        due = {"available_at": self.now() + after} if after is not None else {}

        def work(s: Session) -> None:
            for chunk in chunks(ids):
                s.execute(update(OutboxMessage).where(
                    OutboxMessage.id.in_(chunk), OutboxMessage.locked_by == worker,
                    OutboxMessage.status == OutboxStatus.PENDING).values(
                    locked_until=None, attempts=func.max(OutboxMessage.attempts - 1, 0)
                    if self.db.is_sqlite else func.greatest(OutboxMessage.attempts - 1, 0), **due),
                    execution_options={"synchronize_session": False})

        if ids:
            self.db.write(work)

    def done(self, message_id: int, worker: str) -> None:
        self._outbox_update(message_id, worker, status=OutboxStatus.SENT, sent_at=self.now(), locked_until=None)

    def done_many(self, message_ids: Collection[int], worker: str, *, hold: timedelta | None = None) -> None:
        """:meth:`done` for several messages in one transaction (the notifier's lanes
        record their sends together: one commit instead of one per message). ``hold`` keeps the
        account with this worker that long after its last send (``locked_until`` of the sent
        message: claims by account skip it for other workers), so that an account changes
        hands only once its tenant's rate window has passed."""
        ids, now = sorted(set(message_ids)), self.now()
        until = now + hold if hold else None

        def work(s: Session) -> None:
            for chunk in chunks(ids):
                s.execute(update(OutboxMessage).where(
                    OutboxMessage.id.in_(chunk), OutboxMessage.locked_by == worker,
                    OutboxMessage.status == OutboxStatus.PENDING).values(
                        status=OutboxStatus.SENT, sent_at=now, locked_until=until),
                    execution_options={"synchronize_session": False})

        if ids:
            self.db.write(work)

    def retry(self, message_id: int, worker: str, delay: timedelta, error: str) -> None:
        def work(s: Session):
            m = s.get(OutboxMessage, message_id)
            if m is None or m.locked_by != worker or m.status != OutboxStatus.PENDING:
                return
            m.last_error = error[:500]
            m.locked_until = None
            if m.attempts >= MAX_OUTBOX_ATTEMPTS:
                m.status = OutboxStatus.FAILED
            else:
                m.available_at = self.now() + delay

        self.db.write(work)

    def failed(self, message_id: int, worker: str, error: str) -> None:
        """A delivery that cannot succeed (e.g. a request the Bot Connector refuses as
        malformed): failed at once, the error kept, not retried."""
        self._outbox_update(message_id, worker, status=OutboxStatus.FAILED, last_error=error[:500], locked_until=None)

    def unreachable(self, message_id: int, worker: str, error: str) -> None:
        """The user blocked the bot: keep the record, stop retrying, mark the user."""

        def work(s: Session):
            m = s.get(OutboxMessage, message_id)
            if m is None or m.locked_by != worker:
                return
            m.status, m.last_error, m.locked_until = OutboxStatus.UNREACHABLE, error[:500], None
            if m.user_id:
                s.execute(update(User).where(User.id == m.user_id).values(unreachable=True))

        self.db.write(work)

    def _outbox_update(self, message_id: int, worker: str, **values) -> None:
        self.db.write(lambda s: s.execute(update(OutboxMessage).where(
            OutboxMessage.id == message_id, OutboxMessage.locked_by == worker,
            OutboxMessage.status == OutboxStatus.PENDING).values(**values)))

    def counts(self) -> dict[str, int]:
        with self.db.read() as s:
            return dict(s.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))
                        .tuples().all())
