"""Sending through the Bot Connector: a notice to a user's 1:1 chat (proactively, from a
stored conversation address, or by creating the chat from tenant + user) and a card updated in
place (``update_activity``). Each POST is paced (:mod:`bot.notifier.pacing`), bounded by
``send_timeout`` and only started while its lease has time left for it
(:meth:`bot.notifier.claims.Claims.ensure`); every activity carries its outbox id
(``channelData.notificationId``), so that a duplicate can at least be identified."""

from __future__ import annotations

import asyncio
import logging
import weakref

from botbuilder.core import CardFactory, MessageFactory, TurnContext
from botbuilder.schema import Activity, ActivityTypes, ChannelAccount, ConversationParameters

from bot.addresses import (
    chat_member_id,
    conversation_of,
    created_address,
    has_chat,
    person_of,
    reader_now,
    reader_of,
    reference_of,
    service_of,
)
from bot.notifier.claims import Claims
from bot.notifier.failures import CardBeingAnswered, SendFailure
from bot.notifier.pacing import Pacer
from core.licensing import Licensing
from core.views import ChatAddress, OutboxItem
from dialogs.router import Router

log = logging.getLogger(__name__)


async def proactive(start, work) -> None:
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


async def send_proactive(tc: TurnContext, activity: Activity):
    """Post a new message to the turn's conversation (``POST …/activities``) through the turn's
    connector client. ``TurnContext.send_activity`` would deep-copy the activity (its card
    included) and post it as a reply to the made-up event activity of the proactive turn."""
    TurnContext.apply_conversation_reference(activity, TurnContext.get_conversation_reference(tc.activity))
    activity.reply_to_id = None
    activity.id = None
    client = tc.turn_state.get(tc.adapter.BOT_CONNECTOR_CLIENT_KEY)
    return await client.conversations.send_to_conversation(activity.conversation.id, activity)


class Delivery:
    """Sends one outbox message (:meth:`notify` a chat message, :meth:`update_card` a card in
    place); raises what went wrong for the caller to classify and record."""

    def __init__(self, adapter, router: Router, lic: Licensing, pacer: Pacer, claims: Claims, *, app_id: str,
                 send_timeout: float, lease_margin: float):
        self.adapter = adapter
        self.router = router
        self.lic = lic
        self.pacer = pacer
        self.claims = claims
        self.app_id = app_id
        self.send_timeout = send_timeout
        self.lease_margin = lease_margin
        # one 1:1 chat creation at a time per user (the lock lives while someone holds or awaits it)
        self._creations: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @staticmethod
    def tenant_key(item: OutboxItem) -> str:
        return f"account:{item.account_id}"  # an account's tenants share its budget (one tenant, in practice)

    @staticmethod
    def _channel_data(item: OutboxItem) -> dict:
        data: dict = {"notificationId": str(item.id)}
        if item.tenant_id:
            data["tenant"] = {"id": item.tenant_id}
        return data

    async def _ready(self, item: OutboxItem, conversation: str | None) -> None:
        """Before a POST: the limits allow it, and the lease outlasts it (renewed if need be)."""
        await self.pacer.wait(self.tenant_key(item), conversation)
        await self.claims.ensure(item.id, self.send_timeout + self.lease_margin)

    async def _post(self, item: OutboxItem, conversation: str | None, request):
        """One paced POST (or PUT), bounded by ``send_timeout``, counted once answered."""
        await self._ready(item, conversation)
        try:
            async with asyncio.timeout(self.send_timeout):
                return await request()
        finally:
            await self.pacer.sent(self.tenant_key(item), conversation)

    async def notify(self, item: OutboxItem) -> None:
        card = await asyncio.to_thread(self.router.notification, item, reader_of(item.address))
        if card is None:
            return
        activity = MessageFactory.attachment(CardFactory.adaptive_card(card))
        activity.channel_data = self._channel_data(item)
        if has_chat(item.address):
            await self._send_to(item, activity, item.address)
            return
        # No chat when claimed: it may have been created since for an earlier message of this
        # user (the same batch fans out several to one new user), or be in creation right now.
        lock = self._creations.get(self._user_key(item))
        if lock is None:
            lock = self._creations[self._user_key(item)] = asyncio.Lock()
        async with lock:
            stored = await asyncio.to_thread(self.lic.addresses.user_address, item.account_id, item.aad_object_id)
            if has_chat(stored):
                await self._send_to(item, activity, stored)
            else:
                await self._create_and_send(item, activity, stored or item.address)

    async def _send_to(self, item: OutboxItem, activity: Activity, address: ChatAddress) -> None:
        """Post into the conversation of a stored address."""
        reference = reference_of(address)
        conversation = conversation_of(address) or self._user_key(item)
        sent = {}

        async def send(tc: TurnContext):
            sent["response"] = await self._post(item, conversation, lambda: send_proactive(tc, activity))

        await proactive(lambda cb: self.adapter.continue_conversation(reference, cb, self.app_id), send)
        await self._track(item, sent.get("response"), address)

    @staticmethod
    def _user_key(item: OutboxItem) -> str:
        return f"user:{item.tenant_id}:{item.aad_object_id}"  # their 1:1 chat, before we know its id

    async def _create_and_send(self, item: OutboxItem, activity: Activity, known: ChatAddress | None = None) -> None:
        """No stored conversation: create the 1:1 chat from tenant + user, then send. ``known``:
        what is stored about the user without a chat (their channel id, if told)."""
        hint = await asyncio.to_thread(self.lic.addresses.any_address, item.account_id)
        channel, service_url = service_of(hint) if hint is not None else (None, None)
        if not service_url or not item.aad_object_id or not item.tenant_id:
            raise SendFailure(None, 300.0, False, "no conversation address for this user yet")
        member = chat_member_id(known, item.aad_object_id)
        params = ConversationParameters(
            is_group=False, bot=ChannelAccount(id=f"28:{self.app_id}"), members=[ChannelAccount(id=member)],
            tenant_id=item.tenant_id, channel_data={"tenant": {"id": item.tenant_id}})
        chat, tenant = self._user_key(item), self.tenant_key(item)
        saved = {}
        create_counted = False

        async def send(tc: TurnContext):
            nonlocal create_counted
            create_counted = True
            await self.pacer.sent(tenant, chat)  # the create POST was answered
            saved["response"] = await self._post(item, chat, lambda: send_proactive(tc, activity))
            saved["address"] = created_address(tc.activity, member, item.aad_object_id, hint.locale)

        await self._ready(item, chat)
        try:
            async with asyncio.timeout(self.send_timeout) as cm:
                async def paced_send(tc: TurnContext):
                    cm.reschedule(None)  # the send is bounded on its own (its pacing is no part of the create)
                    await send(tc)

                await proactive(lambda cb: self.adapter.create_conversation(
                    self.app_id, cb, params, channel, service_url, None), paced_send)
        finally:
            if not create_counted:
                await self.pacer.sent(tenant, chat)
        if saved.get("address"):
            address = saved["address"]
            await asyncio.to_thread(self.lic.addresses.save_address, item.tenant_id, item.aad_object_id, address)
            await self._track(item, saved.get("response"), address)

    # ------------------------------------------------------------------ cards updated in place later

    def _tracked(self, item: OutboxItem) -> tuple[str, str] | None:
        """(subject, id) when the flow rendering this notification wants its card remembered, so
        that the core can queue its update in place later."""
        return self.router.tracked_card(item)

    async def _track(self, item: OutboxItem, response, address: ChatAddress | None) -> None:
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

    async def update_card(self, item: OutboxItem) -> None:
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
        reference = reference_of(posted.address)
        update = MessageFactory.attachment(CardFactory.adaptive_card(card))
        update.id = posted.message_ref
        update.type = ActivityTypes.message
        update.channel_data = self._channel_data(item)
        conversation = conversation_of(posted.address)

        async def send(tc: TurnContext):
            await self._post(item, conversation, lambda: tc.update_activity(update))

        await proactive(lambda cb: self.adapter.continue_conversation(reference, cb, self.app_id), send)
