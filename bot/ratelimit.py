"""Per-user rate limits (the ``limits`` library, moving window).

Each user (tenant + aadObjectId) has two budgets: card actions, messages and other invokes
together (``RATE_LIMIT_ACTIONS``), and typeahead searches (``RATE_LIMIT_SEARCHES``: Teams sends
one per pause in typing). Unset, they are 20 and 60 per 10 seconds in production mode and off
in local mode (loopback callers only: the developer, the Playground, the test harness); "off"
turns one off. A refused request does not use the budget, so a user who waits gets it back.

Over the limit, the handler answers without doing anything: the first refusal of a window (for
each kind of activity) is audited and answered in words; later ones in the same window are
answered quietly (an invoke must be answered; a message gets no reply) and not audited again,
so a flood writes a few audit rows, not thousands.

The storage is the process's memory by default (each instance counts its own requests);
``RATE_LIMIT_STORAGE`` can name a shared one (``async+redis://host:6379``). If the storage
fails, requests are let through (logged): the limit protects the service, it is not a right.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from cards.i18n import T
from core.config import Settings
from core.errors import DomainError

log = logging.getLogger(__name__)

ACTION = "action"  # card actions (Action.Execute / Action.Submit), messages, other invokes
SEARCH = "search"  # typeahead (application/search)
MAX_KEYS = 10_000
DEFAULT_ACTIONS = "20/10 seconds"
DEFAULT_SEARCHES = "60/10 seconds"


def slow_down_text(locale: str | None) -> tuple[str, str]:
    """(heading, message) in the user's language."""
    t = T(locale)
    return t("ratelimit.title"), t("ratelimit.body")


def _item(limit: str | None) -> RateLimitItem | None:
    return None if limit is None or limit.strip().lower() == "off" else parse(limit)


class RateLimited(DomainError):
    code = "rate_limited"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    first: bool = False  # the first refusal of this window for this user: audit it and say so


ALLOWED = Verdict(True)


class RateLimiter:
    def __init__(self, actions: str | None = DEFAULT_ACTIONS, searches: str | None = DEFAULT_SEARCHES,
                 storage: str = "async+memory://"):
        self.items: dict[str, RateLimitItem | None] = {ACTION: _item(actions), SEARCH: _item(searches)}
        self.storage = storage_from_string(storage)
        self.strategy = MovingWindowRateLimiter(self.storage)
        self._noted: OrderedDict[str, float] = OrderedDict()  # key -> when its last refusal was audited

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter | None:
        """The limiter the settings ask for (None: no limit at all)."""
        production = bool(settings.app_id)
        actions = settings.rate_limit_actions or (DEFAULT_ACTIONS if production else None)
        searches = settings.rate_limit_searches or (DEFAULT_SEARCHES if production else None)
        if _item(actions) is None and _item(searches) is None:
            return None
        return cls(actions, searches, settings.rate_limit_storage)

    async def check(self, kind: str, tenant_id: str, user: str, *, answer: str = "") -> Verdict:
        """Count one request of ``kind`` for this user; whether it may go on. ``first`` is per
        ``answer`` too (how the refusal is shown: a message reply, an invoke answer...), so the
        user is told once in each place they look."""
        item = self.items[kind]
        if item is None:
            return ALLOWED
        try:
            if await self.strategy.hit(item, kind, tenant_id or "-", user or "-"):
                return ALLOWED
        except Exception:
            log.warning("rate limit storage failed; the request is let through", exc_info=True)
            return ALLOWED
        key = f"{kind}|{answer}|{tenant_id}|{user}"
        now = time.monotonic()
        last = self._noted.get(key)
        first = last is None or now - last >= item.get_expiry()
        if first:
            self._noted[key] = now
            self._noted.move_to_end(key)
            while len(self._noted) > MAX_KEYS:
                self._noted.popitem(last=False)
        return Verdict(False, first)

    async def reset(self) -> None:
        """Forget every count (tests)."""
        await self.storage.reset()
        self._noted.clear()
