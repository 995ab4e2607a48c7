"""Which connector answers are tried again, which mean the user is unreachable, which fail
for good; and when to try again (Retry-After honoured, else exponential backoff with jitter)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parsedate_to_datetime

from tenacity import RetryCallState, wait_random, wait_random_exponential

RETRYABLE = {408, 412, 429, 500, 502, 503, 504}
BLOCKED_MARKERS = ("MessageWritesBlocked", "ConversationBlockedByUser", "BotDisabledByAdmin")
MAX_RETRY_AFTER = 3600.0  # a Retry-After beyond an hour is taken as an hour

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
