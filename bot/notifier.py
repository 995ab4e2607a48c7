"""Delivers the core's outbox to Teams: notices to users' 1:1 chats (proactively, from a
stored conversation address, or by creating the 1:1 conversation from tenant + user), and
card updates in place (``update_activity``) where everyone must see a new state.

Each message is leased from the outbox, sent, then marked done; a failure is retried with
exponential backoff and jitter (honouring Retry-After); a user who blocked the bot is marked
unreachable and the record is kept."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from botbuilder.core import CardFactory, MessageFactory, TurnContext
from botbuilder.schema import Activity, ActivityTypes, ChannelAccount, ConversationParameters, ConversationReference

from bot.identity import address_of
from core.service import Licensing
from core.views import OutboxItem
from dialogs.router import Router
from web.workers import backoff, worker_name

log = logging.getLogger(__name__)

RETRYABLE = {408, 412, 429, 500, 502, 503, 504}
BLOCKED_MARKERS = ("MessageWritesBlocked", "ConversationBlockedByUser", "BotDisabledByAdmin")


@dataclass(frozen=True)
class SendFailure(Exception):
    status: int | None
    retry_after: float | None
    blocked: bool
    detail: str


def classify(exc: Exception) -> SendFailure:
    """Turn a connector error into what the outbox needs to know."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    headers = getattr(response, "headers", None) or {}
    body = ""
    with contextlib.suppress(Exception):
        body = response.text if isinstance(getattr(response, "text", None), str) else ""
    retry_after = None
    with contextlib.suppress(TypeError, ValueError):
        retry_after = float(headers.get("Retry-After")) if headers.get("Retry-After") else None
    blocked = status == 403 and any(m in body for m in BLOCKED_MARKERS)
    return SendFailure(status, retry_after, blocked, f"{type(exc).__name__} {status or ''}".strip())


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


class Notifier:
    def __init__(self, adapter, router: Router, lic: Licensing, *, app_id: str = "", concurrency: int = 8,
                 batch: int = 50):
        self.adapter = adapter
        self.router = router
        self.lic = lic
        self.app_id = app_id or ""
        self.worker = worker_name("notifier")
        self.concurrency = concurrency
        self.batch = batch
        self.wake = asyncio.Event()

    # ------------------------------------------------------------------ loop

    async def run_once(self) -> int:
        items = await asyncio.to_thread(self.lic.claim_outbox, self.worker, channels=("chat", "card"),
                                        limit=self.batch)
        if not items:
            return 0
        sem = asyncio.Semaphore(self.concurrency)

        async def one(item: OutboxItem):
            async with sem:
                await self.deliver(item)

        await asyncio.gather(*(one(i) for i in items))
        return len(items)

    async def run_forever(self, idle: float = 1.0) -> None:
        while True:
            try:
                if await self.run_once():
                    continue
            except Exception:
                log.exception("notifier loop failed; will try again")
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), idle)

    # ------------------------------------------------------------------ one message

    async def deliver(self, item: OutboxItem) -> None:
        try:
            if item.channel == "card":
                await self._update_card(item)
            else:
                await self._notify(item)
        except Exception as exc:  # noqa: BLE001 - every failure is classified and recorded
            failure = exc if isinstance(exc, SendFailure) else classify(exc)
            if failure.blocked:
                log.info("outbox %s: user blocked the bot; marked unreachable", item.id)
                await asyncio.to_thread(self.lic.outbox_unreachable, item.id, self.worker, failure.detail)
                return
            if failure.retry_after is not None:
                delay = timedelta(seconds=failure.retry_after + random.uniform(0, 1))
            else:
                delay = backoff(item.attempts)
            log.warning("outbox %s (%s) failed: %s; retry in %.1fs", item.id, item.kind, failure.detail,
                        delay.total_seconds())
            await asyncio.to_thread(self.lic.outbox_retry, item.id, self.worker, delay, failure.detail)
            return
        await asyncio.to_thread(self.lic.outbox_done, item.id, self.worker)

    async def _notify(self, item: OutboxItem) -> None:
        locale = (item.address or {}).get("locale")
        card = await asyncio.to_thread(self.router.notification, item, locale)
        if card is None:
            return
        activity = MessageFactory.attachment(CardFactory.adaptive_card(card))
        if item.address:
            reference = ConversationReference().deserialize(item.address)
            sent = {}

            async def send(tc: TurnContext):
                sent["response"] = await tc.send_activity(activity)

            await _proactive(lambda cb: self.adapter.continue_conversation(reference, cb, self.app_id), send)
            await self._track(item, sent.get("response"), item.address)
            return
        await self._create_and_send(item, activity)

    async def _create_and_send(self, item: OutboxItem, activity: Activity) -> None:
        """No stored conversation: create the 1:1 chat from tenant + user, then send."""
        hint = await asyncio.to_thread(self.lic.any_address, item.account_id)
        if not hint or not item.aad_object_id or not item.tenant_id:
            raise SendFailure(None, 300.0, False, "no conversation address for this user yet")
        params = ConversationParameters(
            is_group=False, bot=ChannelAccount(id=f"28:{self.app_id}"), members=[ChannelAccount(id=item.aad_object_id)],
            tenant_id=item.tenant_id, channel_data={"tenant": {"id": item.tenant_id}})
        saved = {}

        async def send(tc: TurnContext):
            saved["response"] = await tc.send_activity(activity)
            saved["address"] = address_of(tc.activity)

        await _proactive(lambda cb: self.adapter.create_conversation(
            self.app_id, cb, params, hint.get("channelId", "msteams"), hint["serviceUrl"], None), send)
        if saved.get("address"):
            address = dict(saved["address"], locale=hint.get("locale", "en-US"))
            address["user"] = {"id": item.aad_object_id, "aadObjectId": item.aad_object_id}
            await asyncio.to_thread(self.lic.save_address, item.tenant_id, item.aad_object_id, address)
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
            await asyncio.to_thread(self.lic.record_posted_card, item.account_id, subject[0], subject[1],
                                    message_id, address)
        except Exception:  # noqa: BLE001 - the card went out: never send it again for want of this record
            log.exception("outbox %s: sent, but could not remember card %s:%s for later updates", item.id,
                          subject[0], subject[1])

    async def _update_card(self, item: OutboxItem) -> None:
        posted = await asyncio.to_thread(self.lic.posted_card, item.payload.get("posted_card"))
        if posted is None:
            return
        card = await asyncio.to_thread(self.router.card_update, item, posted.address.get("locale"))
        if card is None:
            return
        reference = ConversationReference().deserialize(posted.address)
        update = MessageFactory.attachment(CardFactory.adaptive_card(card))
        update.id = posted.message_ref
        update.type = ActivityTypes.message

        async def send(tc: TurnContext):
            await tc.update_activity(update)

        await _proactive(lambda cb: self.adapter.continue_conversation(reference, cb, self.app_id), send)
