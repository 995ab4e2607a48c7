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
outbox is claimed by account with affinity (:meth:`core.services.outbox.Outbox.claim_outbox`):
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
import contextlib
import logging
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parsedate_to_datetime

from botbuilder.core import CardFactory, MessageFactory, TurnContext
from botbuilder.schema import Activity, ActivityTypes, ChannelAccount, ConversationParameters, ConversationReference
from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from tenacity import RetryCallState, wait_random, wait_random_exponential

from bot.identity import address_of, chat_member_id, person_of, reader_now, reader_of
from core.licensing import Licensing
from core.views import OutboxItem
from dialogs.router import Router
from web.workers import worker_name

log = logging.getLogger(__name__)

RETRYABLE = {408, 412, 429, 500, 502, 503, 504}
BLOCKED_MARKERS = ("MessageWritesBlocked", "ConversationBlockedByUser", "BotDisabledByAdmin")

# Teams' limits (per bot): per tenant, in ``limits`` notation; per conversation, (count, seconds).
TENANT_LIMITS = ("30/second",)
CONVERSATION_LIMITS = ((7, 1.0), (8, 2.0), (60, 30.0), (1800, 3600.0))
MAX_RETRY_AFTER = 3600.0  # a Retry-After beyond an hour is taken as an hour
LEASE_MARGIN = 5.0  # seconds of lease left, beyond the POST's own timeout, to start a POST
TURN_WAKE_INTERVAL = 0.25  # seconds: turns wake the notifier (a claim: a write transaction) at most this often

_BACKOFF = wait_random_exponential(multiplier=1, max=300)  # full jitter: uniform(0, min(300, 2^(n-1))) s
_JITTER = wait_random(0, 1)  # added to a Retry-After, so that throttled messages do not come back together


@dataclass(frozen=True)
class SendFailure(Exception):
    status: int | None
    retry_after: float | None
    blocked: bool
    detail: str


class LeaseLost(Exception):
    """The message's lease ran out and another worker took it: not ours to send or mark."""


class CardBeingAnswered(Exception):
    """The card to update is being acted on: its update waits for the action's answer."""


ANSWER_POLL = timedelta(milliseconds=250)  # how soon an update held by an action is tried again


def parse_retry_after(value) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP date)."""
    if value is None or value == "":
        return None
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, float(value))
    with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
        when = parsedate_to_datetime(str(value))
        return max(0.0, when.timestamp() - time.time())
    return None


def classify(exc: Exception) -> SendFailure:
    """Turn a connector error into what the outbox needs to know."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    headers = getattr(response, "headers", None) or {}
    body = ""
    with contextlib.suppress(Exception):
        body = response.text if isinstance(getattr(response, "text", None), str) else ""
    retry_after = None
    with contextlib.suppress(Exception):
        retry_after = parse_retry_after(headers.get("Retry-After"))
    blocked = status == 403 and any(m in body for m in BLOCKED_MARKERS)
    return SendFailure(status, retry_after, blocked, f"{type(exc).__name__} {status or ''}".strip())


def retryable(failure: SendFailure) -> bool:
    """Whether trying again may succeed: no answer at all (network, timeout), 401 (a token
    refreshed), throttling and server errors. Other 4xx answers (a malformed request, a
    conversation that is gone...) fail the same way every time."""
    s = failure.status
    return s is None or s in RETRYABLE or s == 401 or s >= 500


def retry_delay(attempt: int, retry_after: float | None = None) -> timedelta:
    """When to try again (tenacity's wait functions): the Retry-After asked for plus up to one
    second of jitter, else exponential backoff with full jitter (``attempt`` counts from 1)."""
    state = RetryCallState(None, None, (), {})
    state.attempt_number = max(1, attempt)
    if retry_after is not None:
        return timedelta(seconds=min(retry_after, MAX_RETRY_AFTER) + _JITTER(state))
    return timedelta(seconds=_BACKOFF(state))


async def _proactive(start, work) -> None:
    """Run ``work(turn_context)`` in a proactive turn started by ``start(callback)`` and raise
    what it raised: the adapter would otherwise hand the error to ``on_turn_error`` (which
    swallows it), and the outbox would record a failed delivery as sent."""
    failures: list[BaseException] = []

    async def callback(tc: TurnContext):
        try:
            await work(tc)
        except Exception as e:  # noqa: BLE001 - re-raised below, outside the adapter
            failures.append(e)

    await start(callback)
    if failures:
        raise failures[0]


async def _send_proactive(tc: TurnContext, activity: Activity):
    """Post a new message to the turn's conversation (``POST …/activities``) through the turn's
    connector client. ``TurnContext.send_activity`` would deep-copy the activity (its card
    included) and post it as a reply to the made-up event activity of the proactive turn."""
    TurnContext.apply_conversation_reference(activity, TurnContext.get_conversation_reference(tc.activity))
    activity.reply_to_id = None
    activity.id = None
    client = tc.turn_state.get(tc.adapter.BOT_CONNECTOR_CLIENT_KEY)
    return await client.conversations.send_to_conversation(activity.conversation.id, activity)


def _has_chat(address: dict | None) -> bool:
    """Whether a stored address names a conversation to post into."""
    conversation = address.get("conversation") if isinstance(address, dict) else None
    return isinstance(conversation, dict) and bool(conversation.get("id"))


# ============================================================================ pacing


class ConversationWindows:
    """Moving windows per conversation: the times of the last sends to each conversation
    (at most as many as the largest limit), least recently used first, forgotten once older
    than the longest window.

    Hand-written rather than a ``limits`` storage: its memory storages sweep *every* key to
    expire entries (the asyncio one with a thread hop per key: about 10 s per sweep for 10,000
    conversations × 4 windows, restarted as soon as it ends; the threaded one holds the GIL
    about 0.1 s every 10 ms), and a fan-out touches one new conversation per message. Here a
    send costs O(1) and stale conversations are dropped from the front as new ones come."""

    def __init__(self, limits: Iterable[tuple[int, float]] = CONVERSATION_LIMITS, *, clock=time.time,
                 max_keys: int = 500_000) -> None:
        self.limits = tuple(limits)
        self.horizon = max((w for _, w in self.limits), default=0.0)
        self.depth = max((n for n, _ in self.limits), default=0)
        self.clock = clock
        self.max_keys = max_keys
        self._sent: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sent)

    def delay(self, key: str) -> float:
        """Seconds until one more send to ``key`` fits every window (0: now)."""
        times = self._sent.get(key)
        if not times:
            return 0.0
        now, delay = self.clock(), 0.0
        for count, window in self.limits:
            if len(times) >= count:  # the count-th most recent send must have left the window
                delay = max(delay, times[-count] + window - now)
        return delay

    def hit(self, key: str) -> None:
        if not self.depth:
            return
        now = self.clock()
        times = self._sent.pop(key, None)
        if times is None:
            times = deque(maxlen=self.depth)
        times.append(now)
        self._sent[key] = times
        while self._sent:
            oldest = next(iter(self._sent.values()))
            if oldest[-1] > now - self.horizon and len(self._sent) <= self.max_keys:
                break
            self._sent.popitem(last=False)


class Pacer:
    """Keeps a lane's sends under Teams' limits: the tenant's (``limits``' moving window, async
    memory storage, or a shared one such as ``async+redis://``) and the conversation's
    (:class:`ConversationWindows`).

    :meth:`wait` until a send fits, send, then :meth:`sent`: a send is counted when its answer
    came back, which is after Teams counted it, so however long requests take in transit,
    no window as Teams sees it ever holds more than the limit. Only the lane of a tenant
    sends for it (and its conversations), so nothing comes between the test and the count."""

    def __init__(self, tenant_limits: Iterable[str] = TENANT_LIMITS,
                 conversation_limits: Iterable[tuple[int, float]] = CONVERSATION_LIMITS, *,
                 storage: str = "async+memory://", clock=time.time) -> None:
        self.tenant_items: tuple[RateLimitItem, ...] = tuple(parse(x) for x in tenant_limits)
        self.window = MovingWindowRateLimiter(storage_from_string(storage))
        self.conversations = ConversationWindows(conversation_limits, clock=clock)
        self.clock = clock
        self._paused: dict[str, float] = {}
        self.waited = 0.0  # seconds spent waiting for the limits (figures for the benchmark)

    async def delay(self, tenant: str, conversation: str | None) -> float:
        delay = self.conversations.delay(conversation) if conversation else 0.0
        until = self._paused.get(tenant)
        if until is not None:
            if until <= self.clock():
                del self._paused[tenant]
            else:
                delay = max(delay, until - self.clock())
        for item in self.tenant_items:
            if not await self.window.test(item, tenant):
                stats = await self.window.get_window_stats(item, tenant)
                delay = max(delay, stats.reset_time - self.clock(), 0.001)
        return delay

    async def wait(self, tenant: str, conversation: str | None) -> None:
        while (delay := await self.delay(tenant, conversation)) > 0:
            self.waited += delay
            await asyncio.sleep(delay)

    async def sent(self, tenant: str, conversation: str | None) -> None:
        for item in self.tenant_items:
            await self.window.hit(item, tenant)
        if conversation:
            self.conversations.hit(conversation)

    def pause(self, tenant: str, seconds: float) -> None:
        """Teams answered 429 with Retry-After: nothing more to that tenant until then."""
        until = self.clock() + min(max(seconds, 0.0), MAX_RETRY_AFTER)
        self._paused[tenant] = max(self._paused.get(tenant, 0.0), until)


# ============================================================================ the notifier


class Notifier:
    """``concurrency``: accounts delivered in parallel (one lane each, one request in flight
    per lane); ``lane_depth``: messages claimed ahead per account (about one second of the
    tenant limit); ``batch``: messages per claim of :meth:`run_once`; ``lease``: how long a
    claimed message is ours (renewed while it waits); ``send_timeout``: the longest a POST may
    take (a lease must outlast it)."""

    def __init__(self, adapter, router: Router, lic: Licensing, *, app_id: str = "", concurrency: int = 32,
                 batch: int = 50, lane_depth: int = 30, lease: timedelta = timedelta(seconds=60),
                 send_timeout: float | None = None, pacer: Pacer | None = None):
        self.adapter = adapter
        self.router = router
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
        self.hold = timedelta(seconds=max((i.get_expiry() for i in self.pacer.tenant_items), default=0))
        self.wake = asyncio.Event()
        self.turn_wake_interval = TURN_WAKE_INTERVAL
        self._poked_at: float | None = None
        self._poke_timer: asyncio.TimerHandle | None = None
        self._refill = asyncio.Event()
        self._lanes: dict[int, deque[OutboxItem]] = {}
        self._lane_tasks: dict[int, asyncio.Task] = {}
        self._deadlines: dict[int, float] = {}  # message id -> monotonic time its lease runs out (ours)
        self._sent_queue: list[tuple[int, asyncio.Future]] = []
        self._sent_writer: asyncio.Task | None = None
        # one 1:1 chat creation at a time per user (the lock lives while someone holds or awaits it)
        self._creations: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

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
        heartbeat = asyncio.create_task(self._heartbeat())
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
        started = time.monotonic()
        items = await asyncio.to_thread(
            self.lic.outbox.claim_outbox, self.worker, channels=("chat", "card"), limit=limit, lease=self.lease,
            per_account=self.lane_depth, max_accounts=max(1, self.concurrency - len(full)), skip_accounts=full)
        deadline = started + self.lease.total_seconds()
        fresh = []
        for item in items:
            if item.id not in self._deadlines:  # (re-claimed after its lease ran out while it waited here)
                fresh.append(item)
            self._deadlines[item.id] = deadline
        return fresh

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
                    self._deadlines.pop(item.id, None)
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

    async def _heartbeat(self) -> None:
        """Renew the leases of the messages this worker holds, every third of a lease."""
        every = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            ids = list(self._deadlines)
            if not ids:
                continue
            started = time.monotonic()
            try:
                held = await asyncio.to_thread(self.lic.outbox.outbox_extend, ids, self.worker, self.lease)
            except Exception:
                log.exception("could not renew the leases of %d outbox message(s)", len(ids))
                continue
            for i in ids:
                if i in self._deadlines:
                    # a message we lost is checked again (and dropped) before any POST
                    self._deadlines[i] = started + self.lease.total_seconds() if i in held else 0.0

    async def _stop(self) -> None:
        queued = [item.id for q in self._lanes.values() for item in q]
        for q in self._lanes.values():
            q.clear()
        if queued:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.lic.outbox.outbox_release, queued, self.worker)
            for i in queued:
                self._deadlines.pop(i, None)
        tasks = list(self._lane_tasks.values())
        if tasks:  # requests in flight: let them finish and be recorded
            _, pending = await asyncio.wait(tasks, timeout=self.send_timeout + 1)
            for t in pending:
                t.cancel()

    # ------------------------------------------------------------------ one message

    async def deliver(self, item: OutboxItem) -> None:
        try:
            if item.channel == "card":
                await self._update_card(item)
            else:
                await self._notify(item)
        except LeaseLost:
            log.info("outbox %s: lease lost to another worker; not sent here", item.id)
            return
        except CardBeingAnswered:  # nothing sent: tried again soon, not counted as an attempt
            await asyncio.to_thread(self.lic.outbox.outbox_release, [item.id], self.worker, after=ANSWER_POLL)
            return
        except Exception as exc:  # noqa: BLE001 - every failure is classified and recorded
            failure = exc if isinstance(exc, SendFailure) else classify(exc)
            if failure.blocked:
                log.info("outbox %s: user blocked the bot; marked unreachable", item.id)
                await asyncio.to_thread(self.lic.outbox.outbox_unreachable, item.id, self.worker, failure.detail)
                return
            if not retryable(failure):
                log.warning("outbox %s (%s) failed for good: %s", item.id, item.kind, failure.detail)
                await asyncio.to_thread(self.lic.outbox.outbox_failed, item.id, self.worker, failure.detail)
                return
            if failure.status == 429 and failure.retry_after is not None:
                self.pacer.pause(self._tenant_key(item), failure.retry_after)
            delay = retry_delay(item.attempts, failure.retry_after)
            log.warning("outbox %s (%s) failed: %s; retry in %.1fs", item.id, item.kind, failure.detail,
                        delay.total_seconds())
            await asyncio.to_thread(self.lic.outbox.outbox_retry, item.id, self.worker, delay, failure.detail)
            return
        await self._mark_sent(item.id)

    async def _mark_sent(self, message_id: int) -> None:
        """Record a send before the lane goes on. Lanes' records are written together (group
        commit: whatever queued while the previous write ran), one transaction per round."""
        future = asyncio.get_running_loop().create_future()
        self._sent_queue.append((message_id, future))
        if self._sent_writer is None or self._sent_writer.done():
            self._sent_writer = asyncio.create_task(self._write_sent())
        await future

    async def _write_sent(self) -> None:
        while self._sent_queue:
            batch, self._sent_queue = self._sent_queue, []
            try:
                await asyncio.to_thread(self.lic.outbox.outbox_done_many, [i for i, _ in batch], self.worker,
                                        hold=self.hold)
            except Exception as e:  # noqa: BLE001 - each lane hears of it
                for _, f in batch:
                    if not f.done():
                        f.set_exception(e)
            else:
                for _, f in batch:
                    if not f.done():
                        f.set_result(None)

    @staticmethod
    def _tenant_key(item: OutboxItem) -> str:
        return f"account:{item.account_id}"  # an account's tenants share its budget (one tenant, in practice)

    @staticmethod
    def _channel_data(item: OutboxItem) -> dict:
        data: dict = {"notificationId": str(item.id)}
        if item.tenant_id:
            data["tenant"] = {"id": item.tenant_id}
        return data

    async def _ready(self, item: OutboxItem, conversation: str | None) -> None:
        """Before a POST: the lease must outlast it (renewed if need be), and the limits allow it."""
        await self.pacer.wait(self._tenant_key(item), conversation)
        deadline = self._deadlines.get(item.id)
        if deadline is None:  # delivered outside a claim of this notifier (a direct call)
            return
        if deadline - time.monotonic() >= self.send_timeout + self.lease_margin:
            return
        started = time.monotonic()
        held = await asyncio.to_thread(self.lic.outbox.outbox_extend, [item.id], self.worker, self.lease)
        if item.id not in held:
            raise LeaseLost(item.id)
        self._deadlines[item.id] = started + self.lease.total_seconds()

    async def _post(self, item: OutboxItem, conversation: str | None, request):
        """One paced POST (or PUT), bounded by ``send_timeout``, counted once answered."""
        await self._ready(item, conversation)
        try:
            async with asyncio.timeout(self.send_timeout):
                return await request()
        finally:
            await self.pacer.sent(self._tenant_key(item), conversation)

    async def _notify(self, item: OutboxItem) -> None:
        card = await asyncio.to_thread(self.router.notification, item, reader_of(item.address))
        if card is None:
            return
        activity = MessageFactory.attachment(CardFactory.adaptive_card(card))
        activity.channel_data = self._channel_data(item)
        if _has_chat(item.address):
            await self._send_to(item, activity, item.address)
            return
        # No chat when claimed: it may have been created since for an earlier message of this
        # user (the same batch fans out several to one new user), or be in creation right now.
        lock = self._creations.get(self._user_key(item))
        if lock is None:
            lock = self._creations[self._user_key(item)] = asyncio.Lock()
        async with lock:
            stored = await asyncio.to_thread(self.lic.addresses.user_address, item.account_id, item.aad_object_id)
            if _has_chat(stored):
                await self._send_to(item, activity, stored)
            else:
                await self._create_and_send(item, activity, stored or item.address)

    async def _send_to(self, item: OutboxItem, activity: Activity, address: dict) -> None:
        """Post into the conversation of a stored address."""
        reference = ConversationReference().deserialize(address)
        conversation = (address.get("conversation") or {}).get("id") or self._user_key(item)
        sent = {}

        async def send(tc: TurnContext):
            sent["response"] = await self._post(item, conversation, lambda: _send_proactive(tc, activity))

        await _proactive(lambda cb: self.adapter.continue_conversation(reference, cb, self.app_id), send)
        await self._track(item, sent.get("response"), address)

    @staticmethod
    def _user_key(item: OutboxItem) -> str:
        return f"user:{item.tenant_id}:{item.aad_object_id}"  # their 1:1 chat, before we know its id

    async def _create_and_send(self, item: OutboxItem, activity: Activity, known: dict | None = None) -> None:
        """No stored conversation: create the 1:1 chat from tenant + user, then send. ``known``:
        what is stored about the user without a chat (their channel id, if told)."""
        hint = await asyncio.to_thread(self.lic.addresses.any_address, item.account_id)
        if not hint or not item.aad_object_id or not item.tenant_id:
            raise SendFailure(None, 300.0, False, "no conversation address for this user yet")
        member = chat_member_id(known, item.aad_object_id)
        params = ConversationParameters(
            is_group=False, bot=ChannelAccount(id=f"28:{self.app_id}"), members=[ChannelAccount(id=member)],
            tenant_id=item.tenant_id, channel_data={"tenant": {"id": item.tenant_id}})
        chat, tenant = self._user_key(item), self._tenant_key(item)
        saved = {}
        create_counted = False

        async def send(tc: TurnContext):
            nonlocal create_counted
            create_counted = True
            await self.pacer.sent(tenant, chat)  # the create POST was answered
            saved["response"] = await self._post(item, chat, lambda: _send_proactive(tc, activity))
            saved["address"] = address_of(tc.activity)

        await self._ready(item, chat)
        try:
            async with asyncio.timeout(self.send_timeout) as cm:
                async def paced_send(tc: TurnContext):
                    cm.reschedule(None)  # the send is bounded on its own (its pacing is no part of the create)
                    await send(tc)

                await _proactive(lambda cb: self.adapter.create_conversation(
                    self.app_id, cb, params, hint.get("channelId", "msteams"), hint["serviceUrl"], None), paced_send)
        finally:
            if not create_counted:
                await self.pacer.sent(tenant, chat)
        if saved.get("address"):
            address = dict(saved["address"], locale=hint.get("locale", "en-US"))
            address["user"] = {"id": member, "aadObjectId": item.aad_object_id}
            await asyncio.to_thread(self.lic.addresses.save_address, item.tenant_id, item.aad_object_id, address)
            await self._track(item, saved.get("response"), address)

    # ------------------------------------------------------------------ cards updated in place later

    def _tracked(self, item: OutboxItem) -> tuple[str, str] | None:
        """(subject, id) when the flow rendering this notification wants its card remembered, so
        that the core can queue its update in place later."""
        return self.router.tracked_card(item)

    async def _track(self, item: OutboxItem, response, address: dict | None) -> None:
        message_id = getattr(response, "id", None)
        subject = self._tracked(item)
        if not (message_id and subject and address):
            return
        try:
            await asyncio.to_thread(self.lic.addresses.record_posted_card, item.account_id, subject[0], subject[1],
                                    message_id, address)
        except Exception:  # noqa: BLE001 - the card went out: never send it again for want of this record
            log.exception("outbox %s: sent, but could not remember card %s:%s for later updates", item.id,
                          subject[0], subject[1])

    async def _update_card(self, item: OutboxItem) -> None:
        def render():
            """The posted card and its new content, for its reader as known now: they may have told
            their locale or time zone since it was posted (e.g. by acting on this very card)."""
            posted = self.lic.addresses.posted_card(item.payload.get("posted_card"))
            if posted is None or str(item.payload.get(f"{posted.subject}_id")) != posted.subject_id:
                return None, None  # its reader moved on since: dropped (and its id maybe reused by another card)
            if posted.answering_until is not None and posted.answering_until > self.lic.now():
                raise CardBeingAnswered  # its reader is acting on it: after the answer, if it still shows this
            known = self.lic.addresses.user_address(posted.account_id, person_of(posted.address))
            return posted, self.router.card_update(item, reader_now(posted.address, known))

        posted, card = await asyncio.to_thread(render)
        if card is None:
            return
        reference = ConversationReference().deserialize(posted.address)
        update = MessageFactory.attachment(CardFactory.adaptive_card(card))
        update.id = posted.message_ref
        update.type = ActivityTypes.message
        update.channel_data = self._channel_data(item)
        conversation = (posted.address.get("conversation") or {}).get("id")

        async def send(tc: TurnContext):
            await self._post(item, conversation, lambda: tc.update_activity(update))

        await _proactive(lambda cb: self.adapter.continue_conversation(reference, cb, self.app_id), send)
