"""Teams' limits, kept by the notifier itself: per app per tenant (about 30 / s) and per
conversation (7 / 1 s, 8 / 2 s, 60 / 30 s, 1,800 / hour). A fan-out runs at the rate they allow
instead of provoking 429s and backing off."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Iterable

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from bot.notifier.failures import MAX_RETRY_AFTER

# Teams' limits (per bot): per tenant, in ``limits`` notation; per conversation, (count, seconds).
TENANT_LIMITS = ("30/second",)
CONVERSATION_LIMITS = ((7, 1.0), (8, 2.0), (60, 30.0), (1800, 3600.0))


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
