"""Delivers the core's outbox to Teams: notices to users' 1:1 chats (proactively, from a
stored conversation address, or by creating the 1:1 conversation from tenant + user), and
card updates in place (``update_activity``) where everyone must see a new state.

Each message is leased from the outbox, sent, then marked done; a failure is retried with
exponential backoff and jitter (honouring Retry-After); a user who blocked the bot is marked
unreachable and the record is kept.

**Pacing.** Teams throttles a bot per conversation (7 / 1 s, 8 / 2 s, 60 / 30 s,
1,800 / hour) and per tenant (about 30 / s), answering 429 beyond. The notifier keeps under
those limits itself (:class:`Pacer`) instead of provoking 429s and backing off: a fan-out
runs at the rate the limits allow. A 429, 412, 502 or 504 that still happens is retried
through the outbox (``available_at``; the lease is given back, nobody sleeps holding it).

**Lanes.** Messages are delivered per account (its tenants share its budget), one at a
time: a lane sends, records the result, then sends the next one. Throughput comes from many
accounts in parallel and from pacing, not from many requests in flight for one tenant. The
outbox is claimed by account with affinity (:meth:`core.services.outbox.Outbox.claim`):
one worker at a time delivers for an account, so two processes never both send for a tenant
(nor exceed its rate limit together).

**Exactly once, as far as it can be.** The Bot Connector's ``POST …/activities`` is not
idempotent and takes no idempotency key: if a process dies after Teams accepted a POST but
before the outbox recorded it, nothing can tell that POST from one that was lost, and the
message is sent again once the lease runs out. The window is kept small and deterministic:
a message is marked sent right after its POST returns, before its lane starts the next POST
(so at most one message per lane can be in it; the lanes' marks are committed together, each
lane waiting for its own), and every activity carries its outbox id
(``channelData.notificationId``), so that such a duplicate can at least be identified. A
message is only sent while its lease has time left for the whole POST (each POST is bounded
by ``send_timeout``; leases are renewed while messages wait in a lane), so a worker whose
lease ran out never sends what another worker has taken; its late answers do not count
(``locked_by``)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import timedelta

from background import worker_name
from bot.notifier.claims import Claims, LeaseLost
from bot.notifier.delivery import Delivery
from bot.notifier.failures import ANSWER_POLL, CardBeingAnswered, SendFailure, classify, retry_delay, retryable
from bot.notifier.pacing import Pacer
from core.kinds import Channel
from core.licensing import Licensing
from core.views import OutboxItem
from dialogs.router import Router

log = logging.getLogger(__name__)

LEASE_MARGIN = 5.0  # seconds of lease left, beyond the POST's own timeout, to start a POST
TURN_WAKE_INTERVAL = 0.25  # seconds: turns wake the notifier (a claim: a write transaction) at most this often


class Notifier:
    """``concurrency``: accounts delivered in parallel (one lane each, one request in flight
    per lane); ``lane_depth``: messages claimed ahead per account (about one second of the
    tenant limit); ``batch``: messages per claim of :meth:`run_once`; ``lease``: how long a
    claimed message is ours (renewed while it waits); ``send_timeout``: the longest a POST may
    take (a lease must outlast it)."""

    def __init__(self, adapter, router: Router, lic: Licensing, *, app_id: str = "", concurrency: int = 32,
                 batch: int = 50, lane_depth: int = 30, lease: timedelta = timedelta(seconds=60),
                 send_timeout: float | None = None, pacer: Pacer | None = None):
        self.lic = lic
        self.app_id = app_id or ""
        self.worker = worker_name("notifier")
        self.concurrency = concurrency
        self.batch = batch
        self.lane_depth = max(1, lane_depth)
        self.lease = lease
        seconds = lease.total_seconds()
        self.send_timeout = send_timeout if send_timeout is not None else max(0.5, min(20.0, seconds / 3))
        self.lease_margin = min(LEASE_MARGIN, seconds / 6)
        if self.send_timeout + self.lease_margin >= seconds:
            raise ValueError("the lease must outlast a POST (send_timeout) with some margin")
        self.pacer = pacer or Pacer()
        self.claim_interval = 0.05  # seconds between two claims of run_forever, at least
        # an account stays with this worker for its tenant's longest window after a send
        hold = timedelta(seconds=max((i.get_expiry() for i in self.pacer.tenant_items), default=0))
        self.claims = Claims(lic, self.worker, lease, hold=hold)
        self.delivery = Delivery(adapter, router, lic, self.pacer, self.claims, app_id=self.app_id,
                                 send_timeout=self.send_timeout, lease_margin=self.lease_margin)
        self.wake = asyncio.Event()
        self.turn_wake_interval = TURN_WAKE_INTERVAL
        self._poked_at: float | None = None
        self._poke_timer: asyncio.TimerHandle | None = None
        self._refill = asyncio.Event()
        self._lanes: dict[int, deque[OutboxItem]] = {}
        self._lane_tasks: dict[int, asyncio.Task] = {}

    # ------------------------------------------------------------------ loop

    def poke(self) -> None:
        """A turn ended and may have queued notifications: wake the loop, at most once per
        :attr:`turn_wake_interval` (each wake claims the outbox, a write transaction, and most
        turns queue nothing). A poke within the interval is not lost: the wake comes at its
        end. The loop still polls on its own (``run_forever``'s ``idle``)."""
        if self._poke_timer is not None:
            return  # a wake is already due
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._poked_at is None or now - self._poked_at >= self.turn_wake_interval:
            self._poked_at = now
            self.wake.set()
        else:
            self._poke_timer = loop.call_at(self._poked_at + self.turn_wake_interval, self._poke_due)

    def _poke_due(self) -> None:
        self._poke_timer = None
        self._poked_at = asyncio.get_running_loop().time()
        self.wake.set()

    async def run_once(self) -> int:
        """Claim one batch, deliver it, return how many messages it had."""
        items = await self._claim(self.batch)
        if items:
            self._dispatch(items)
            await self._drain()
        return len(items)

    async def run_forever(self, idle: float = 1.0) -> None:
        """Keep every lane fed: claim as lanes run low (by account, with affinity), deliver
        continuously, renew the leases of what waits. On cancellation, messages not yet
        attempted are given back and the requests in flight are let finish (bounded)."""
        heartbeat = asyncio.create_task(self.claims.heartbeat())
        limit = self.concurrency * self.lane_depth
        try:
            while True:
                self.wake.clear()
                self._refill.clear()
                try:
                    items = await self._claim(limit)
                except Exception:
                    log.exception("notifier loop failed; will try again")
                    items = []
                self._dispatch(items)
                if len(items) < limit:  # (a full claim: there may be more for other lanes at once)
                    waits = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(self._refill.wait())]
                    try:
                        await asyncio.wait(waits, timeout=idle, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        for w in waits:
                            w.cancel()
                await asyncio.sleep(self.claim_interval)  # lanes running low meanwhile are served together
        finally:
            heartbeat.cancel()
            await self._stop()

    async def _claim(self, limit: int) -> list[OutboxItem]:
        full = {a for a, q in self._lanes.items() if len(q) > self.lane_depth // 2}
        return await self.claims.claim(limit, per_account=self.lane_depth,
                                       max_accounts=max(1, self.concurrency - len(full)), skip_accounts=full)

    def _dispatch(self, items: list[OutboxItem]) -> None:
        for item in items:
            self._lanes.setdefault(item.account_id, deque()).append(item)
        for account in {i.account_id for i in items}:
            task = self._lane_tasks.get(account)
            if task is None or task.done():
                self._lane_tasks[account] = asyncio.create_task(self._lane(account))

    async def _lane(self, account: int) -> None:
        """One account's messages, one at a time, in order."""
        queue = self._lanes[account]
        try:
            while queue:
                item = queue.popleft()
                try:
                    await self.deliver(item)
                except Exception:  # recording the outcome failed (the database): the lease runs out
                    log.exception("outbox %s: could not record the delivery; due again when its lease ends", item.id)
                finally:
                    self.claims.done_with(item.id)
                    if len(queue) == self.lane_depth // 2:  # half way: time to claim more for it
                        self._refill.set()
        finally:
            if self._lanes.get(account) is queue and not queue:
                del self._lanes[account]
            if self._lane_tasks.get(account) is asyncio.current_task():
                del self._lane_tasks[account]
            self._refill.set()

    async def _drain(self) -> None:
        while self._lane_tasks:
            await asyncio.gather(*list(self._lane_tasks.values()), return_exceptions=True)

    async def _stop(self) -> None:
        queued = [item.id for q in self._lanes.values() for item in q]
        for q in self._lanes.values():
            q.clear()
        await self.claims.give_back(queued)
        tasks = list(self._lane_tasks.values())
        if tasks:  # requests in flight: let them finish and be recorded
            _, pending = await asyncio.wait(tasks, timeout=self.send_timeout + 1)
            for t in pending:
                t.cancel()

    # ------------------------------------------------------------------ one message

    async def deliver(self, item: OutboxItem) -> None:
        try:
            if item.channel == Channel.CARD:
                await self.delivery.update_card(item)
            else:
                await self.delivery.notify(item)
        except LeaseLost:
            log.info("outbox %s: lease lost to another worker; not sent here", item.id)
            return
        except CardBeingAnswered:  # nothing sent: tried again soon, not counted as an attempt
            await self.claims.give_back([item.id], after=ANSWER_POLL)
            return
        except Exception as exc:  # noqa: BLE001 - every failure is classified and recorded
            failure = exc if isinstance(exc, SendFailure) else classify(exc)
            if failure.blocked:
                log.info("outbox %s: user blocked the bot; marked unreachable", item.id)
                await asyncio.to_thread(self.lic.outbox.unreachable, item.id, self.worker, failure.detail)
                return
            if not retryable(failure):
                log.warning("outbox %s (%s) failed for good: %s", item.id, item.kind, failure.detail)
                await asyncio.to_thread(self.lic.outbox.failed, item.id, self.worker, failure.detail)
                return
            if failure.status == 429 and failure.retry_after is not None:
                self.pacer.pause(self.delivery.tenant_key(item), failure.retry_after)
            delay = retry_delay(item.attempts, failure.retry_after)
            log.warning("outbox %s (%s) failed: %s; retry in %.1fs", item.id, item.kind, failure.detail,
                        delay.total_seconds())
            await asyncio.to_thread(self.lic.outbox.retry, item.id, self.worker, delay, failure.detail)
            return
        await self.claims.mark_sent(item.id)
