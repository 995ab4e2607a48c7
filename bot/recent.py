"""A small bounded memory of recent keys, with an expiry."""

from __future__ import annotations

import time
from collections import OrderedDict


class Recent:
    """A small bounded memory of recent keys (to avoid welcoming a chat twice when Teams
    sends both installationUpdate and conversationUpdate). Only an optimisation: losing it
    on restart costs one extra welcome at most."""

    def __init__(self, size: int = 10_000, ttl: float = 300.0):
        self.size, self.ttl, self._d = size, ttl, OrderedDict()

    def seen(self, key: str) -> bool:
        now = time.monotonic()
        hit = key in self._d and now - self._d[key] < self.ttl
        self._d[key] = now
        self._d.move_to_end(key)
        while len(self._d) > self.size:
            self._d.popitem(last=False)
        return hit

    def forget(self, key: str) -> None:
        self._d.pop(key, None)
