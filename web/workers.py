"""Background jobs of a serving process: the period roll-over, the expiry of quotes and the billing
outbox.

Every instance may run them: the roll-over locks the rows it changes, and the outbox is
leased row by row, so two processes never do the same work twice."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta

from background import worker_name
from core.kinds import Channel, OutboxKind
from core.licensing import Licensing
from core.payments import PaymentProviderError

log = logging.getLogger(__name__)

# the outbox kinds of the billing channel, each a call to the payment provider made below
BILLING_KINDS = frozenset({OutboxKind.CARRY_FORWARD, OutboxKind.CLOSE_LINK, OutboxKind.SYNC_SUBSCRIPTION})


def backoff(attempt: int, *, base: float = 1.0, cap: float = 300.0) -> timedelta:
    """Exponential backoff with full jitter."""
    return timedelta(seconds=random.uniform(0, min(cap, base * 2 ** min(attempt, 20))))


async def rollover_loop(lic: Licensing, every: float = 60.0) -> None:
    while True:
        try:
            n = await asyncio.to_thread(lic.periods.roll_over)
            if n:
                log.info("rolled over %d billing period(s)", n)
            closed = await asyncio.to_thread(lic.quotes.expire_quotes)  # (their payment links closed too)
            if closed:
                log.info("closed %d expired quote(s)", closed)
        except Exception:
            log.exception("period roll-over failed; will try again")
        await asyncio.sleep(every)


async def billing_sync_once(lic: Licensing, worker: str) -> int:
    items = await asyncio.to_thread(lic.outbox.claim, worker, channels=(Channel.BILLING,), limit=10)
    for item in items:
        carry = None
        try:
            if item.kind == OutboxKind.CARRY_FORWARD:  # an amount under the payment minimum, to the next invoice
                carry = await asyncio.to_thread(lic.links.carry_request, item.payload)
                if carry is not None:
                    await asyncio.to_thread(lic.gateway.carry_forward, carry)
            elif item.kind == OutboxKind.CLOSE_LINK:  # a closed quote's payment link, made unpayable
                external_id = await asyncio.to_thread(lic.links.link_to_close, item.payload)
                if external_id is not None:
                    closed = await asyncio.to_thread(lic.gateway.close_link, external_id)
                    await asyncio.to_thread(lic.links.link_closed, item.payload, closed)
            elif item.kind == OutboxKind.SYNC_SUBSCRIPTION:
                sync = await asyncio.to_thread(lic.periods.subscription_sync, item.payload)
                if sync is not None:
                    await asyncio.to_thread(lic.gateway.sync_subscription, sync)
            else:  # a kind this version does not know: kept as failed, with why, never marked sent
                log.error("billing message %s has an unknown kind %s", item.id, item.kind)
                await asyncio.to_thread(lic.outbox.failed, item.id, worker, f"unknown kind {item.kind}")
                continue
        except PaymentProviderError as e:
            if carry is not None and e.answered:  # that key's answer is kept: the next attempt gets a new key
                await asyncio.to_thread(lic.links.carry_answered, carry)
            if e.permanent:  # retrying as it is cannot help: kept as failed, with why, for an operator
                log.error("billing message %s (%s) refused by the payment provider: %s", item.id, item.kind, e)
                await asyncio.to_thread(lic.outbox.failed, item.id, worker, str(e))
                continue
            await asyncio.to_thread(lic.outbox.retry, item.id, worker, backoff(item.attempts), str(e))
        except Exception as e:
            log.exception("billing sync %s failed", item.id)
            await asyncio.to_thread(lic.outbox.retry, item.id, worker, backoff(item.attempts), type(e).__name__)
        else:
            await asyncio.to_thread(lic.outbox.done, item.id, worker)
    return len(items)


async def billing_loop(lic: Licensing, every: float = 2.0) -> None:
    worker = worker_name("billing")
    while True:
        try:
            if await billing_sync_once(lic, worker):
                continue
        except Exception:
            log.exception("billing outbox failed; will try again")
        await asyncio.sleep(every)
