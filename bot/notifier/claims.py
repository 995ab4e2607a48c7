"""The notifier's side of the outbox: leasing messages from the core, keeping the leases
while the messages wait in a lane, giving back what was not attempted, and recording sends
(group commit: the lanes' sent ids written together, one transaction per round).

A send that Teams accepted is recorded however long the database takes: a failed write of
the sent ids is tried again (the messages' leases renewed meanwhile) instead of leaving them
pending, which would send them again once their lease ran out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection, Iterable
from datetime import timedelta

from bot.notifier.failures import LeaseLost
from core.kinds import Channel
from core.licensing import Licensing
from core.views import OutboxItem

log = logging.getLogger(__name__)

RECORD_RETRY = (0.05, 0.2, 0.5, 1.0, 2.0)  # seconds between attempts to record sends (the last one repeats)


class Claims:
    """The messages this worker holds: ``deadlines`` maps each id to the monotonic time its
    lease runs out (as far as this worker knows)."""

    def __init__(self, lic: Licensing, worker: str, lease: timedelta, *, hold: timedelta | None = None,
                 channels: tuple[str, ...] = (Channel.CHAT, Channel.CARD)):
        self.lic = lic
        self.worker = worker
        self.lease = lease
        self.hold = hold
        self.channels = channels
        self.deadlines: dict[int, float] = {}
        self._sent_queue: list[tuple[int, asyncio.Future]] = []
        self._sent_writer: asyncio.Task | None = None

    async def claim(self, limit: int, *, per_account: int, max_accounts: int,
                    skip_accounts: Collection[int] = ()) -> list[OutboxItem]:
        """Lease up to ``limit`` due messages (by account, with affinity); the ones not already
        held here (a message re-claimed after its lease ran out while it waited is held once)."""
        started = time.monotonic()
        items = await asyncio.to_thread(
            self.lic.outbox.claim, self.worker, channels=self.channels, limit=limit, lease=self.lease,
            per_account=per_account, max_accounts=max_accounts, skip_accounts=set(skip_accounts))
        deadline = started + self.lease.total_seconds()
        fresh = []
        for item in items:
            if item.id not in self.deadlines:
                fresh.append(item)
            self.deadlines[item.id] = deadline
        return fresh

    def done_with(self, message_id: int) -> None:
        """The message's outcome is recorded (or given up): its lease is no longer renewed."""
        self.deadlines.pop(message_id, None)

    async def ensure(self, message_id: int, seconds: float) -> None:
        """Before a POST: the lease must have ``seconds`` left (renewed if need be), else
        :class:`LeaseLost`. A message delivered outside a claim of this worker passes."""
        deadline = self.deadlines.get(message_id)
        if deadline is None or deadline - time.monotonic() >= seconds:
            return
        started = time.monotonic()
        held = await asyncio.to_thread(self.lic.outbox.extend, [message_id], self.worker, self.lease)
        if message_id not in held:
            raise LeaseLost(message_id)
        self.deadlines[message_id] = started + self.lease.total_seconds()

    async def heartbeat(self) -> None:
        """Renew the leases of the messages this worker holds, every third of a lease."""
        every = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            ids = list(self.deadlines)
            if not ids:
                continue
            started = time.monotonic()
            try:
                held = await asyncio.to_thread(self.lic.outbox.extend, ids, self.worker, self.lease)
            except Exception:
                log.exception("could not renew the leases of %d outbox message(s)", len(ids))
                continue
            for i in ids:
                if i in self.deadlines:
                    # a message we lost is checked again (and dropped) before any POST
                    self.deadlines[i] = started + self.lease.total_seconds() if i in held else 0.0

    async def give_back(self, message_ids: Iterable[int], *, after: timedelta | None = None) -> None:
        """Release messages not attempted (``after``: due again then), quietly on failure when stopping."""
        ids = list(message_ids)
        if not ids:
            return
        if after is None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.lic.outbox.release, ids, self.worker)
        else:
            await asyncio.to_thread(self.lic.outbox.release, ids, self.worker, after=after)
        for i in ids:
            self.deadlines.pop(i, None)

    # ------------------------------------------------------------------ recording sends

    async def mark_sent(self, message_id: int) -> None:
        """Record a send before the lane goes on. Lanes' records are written together (group
        commit: whatever queued while the previous write ran), one transaction per round; a
        round that fails is tried again (it raises only once the lease is lost)."""
        future = asyncio.get_running_loop().create_future()
        self._sent_queue.append((message_id, future))
        if self._sent_writer is None or self._sent_writer.done():
            self._sent_writer = asyncio.create_task(self._write_sent())
        await future

    async def _write_sent(self) -> None:
        failures = 0
        while self._sent_queue:
            batch, self._sent_queue = self._sent_queue, []
            try:
                await asyncio.to_thread(self.lic.outbox.done_many, [i for i, _ in batch], self.worker,
                                        hold=self.hold)
            except Exception as e:  # noqa: BLE001 - e.g. the database locked for longer than its retries
                failures += 1
                pause = RECORD_RETRY[min(failures, len(RECORD_RETRY)) - 1]
                log.warning("could not record %d sent outbox message(s) (%s); trying again in %.2fs",
                            len(batch), type(e).__name__, pause)
                kept = await self._still_held(batch, e)
                await asyncio.sleep(pause)
                self._sent_queue = kept + self._sent_queue
            else:
                failures = 0
                for _, f in batch:
                    if not f.done():
                        f.set_result(None)

    async def _still_held(self, batch: list[tuple[int, asyncio.Future]], error: Exception):
        """The sends of ``batch`` to record again: those whose lease this worker still holds
        (renewed now, so that it outlasts the retry); the others' lanes hear of ``error``."""
        ids = [i for i, f in batch if not f.done()]
        try:
            held = set(await asyncio.to_thread(self.lic.outbox.extend, ids, self.worker,
                                               self.lease)) if ids else set()
        except Exception:  # noqa: BLE001 - the database is still unavailable: keep them all, try again
            log.debug("could not renew the leases of sends waiting to be recorded", exc_info=True)
            return [(i, f) for i, f in batch if not f.done()]
        kept = []
        now = time.monotonic()
        for i, f in batch:
            if f.done():
                continue
            if i in held:
                if i in self.deadlines:
                    self.deadlines[i] = now + self.lease.total_seconds()
                kept.append((i, f))
            else:
                f.set_exception(error)
        return kept
