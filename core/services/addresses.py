"""Delivery addresses and posted cards: where to reach a user proactively, and which message
shows which quote or request card (so that it can be updated in place)."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from core.db import conflict_insert
from core.models import AccountTenant, DeliveryAddress, PostedCard, User, address_columns
from core.services.shared import execute_core, table_of
from core.views import Actor, ChatAddress

if TYPE_CHECKING:
    from core.unit_of_work import Unit, Units

ANSWERING = timedelta(seconds=30)  # longer than Teams waits for an invoke's answer (~10-15 s)

_POSTED_CARD_INSERT = insert(table_of(PostedCard))
# the posted cards a message shows, of the actor's account (read on every card action: built once)
_TENANT_ACCOUNT = select(AccountTenant.account_id).where(AccountTenant.tenant_id == bindparam("tenant"))
_MESSAGE_CARDS = (select(PostedCard.id, PostedCard.subject, PostedCard.subject_id, PostedCard.answering_until)
                  .where(PostedCard.message_ref == bindparam("message"),
                         PostedCard.account_id == _TENANT_ACCOUNT.scalar_subquery()))


class Addresses:
    def __init__(self, units: Units):
        self.units = units

    def save_address(self, tenant_id: str, aad_object_id: str, address: ChatAddress) -> bool:
        """Remember where to reach a user proactively; False when the user is not known. An
        address without a locale (conversationUpdate tells none) keeps the known one (none:
        en-US); the same for the time zone (none: UTC)."""

        def work(u: Unit) -> bool:
            s = u.s
            uid = s.scalar(select(User.id).join(AccountTenant, AccountTenant.account_id == User.account_id)
                           .where(AccountTenant.tenant_id == (tenant_id or "").lower(),
                                  User.aad_object_id == aad_object_id))
            if uid is None:
                return False
            row = s.get(DeliveryAddress, uid)
            new = replace(address, locale=address.locale or (row.locale if row is not None else None) or "en-US",
                          timezone=address.timezone or (row.timezone if row is not None else None))
            if row is None:  # an upsert: the user's first activities may reach two instances at once
                stmt = conflict_insert(s, DeliveryAddress).values(user_id=uid, updated_at=u.now,
                                                                   **address_columns(new))
                s.execute(stmt.on_conflict_do_update(index_elements=[DeliveryAddress.user_id], set_={
                    name: getattr(stmt.excluded, name) for name in (*address_columns(new), "updated_at")}))
            elif row.address != new:
                for name, value in address_columns(new).items():
                    setattr(row, name, value)
                row.updated_at = u.now
            s.execute(update(User).where(User.id == uid, User.unreachable.is_(True)).values(unreachable=False))
            return True

        return self.units.system_write(work)

    @staticmethod
    def posted_card_in(u: Unit, account_id: int, subject: str, subject_id: str, message_ref: str,
                       address: ChatAddress) -> None:
        """Remember, in the unit's transaction, that a message shows a subject's card (once)."""
        exists_ = u.s.scalar(select(PostedCard.id).where(PostedCard.subject == subject,
                                                         PostedCard.subject_id == str(subject_id),
                                                         PostedCard.message_ref == message_ref))
        if exists_ is None:  # (a row of columns: no ORM object to flush)
            execute_core(u.s, _POSTED_CARD_INSERT, {"account_id": account_id, "subject": subject,
                                                    "subject_id": str(subject_id), "message_ref": message_ref,
                                                    "created_at": u.now, **address_columns(address)})

    def record_posted_card(self, account_id: int, subject: str, subject_id: str, message_ref: str,
                           address: ChatAddress) -> None:
        self.units.system_write(lambda u: self.posted_card_in(u, account_id, subject, subject_id, message_ref,
                                                              address))

    @staticmethod
    def _message_cards(u: Unit, actor: Actor, message_ref: str) -> tuple[Sequence, str]:
        """(the posted cards the message shows, the actor's tenant): a prebuilt statement, run
        on every card action."""
        tenant = actor.tenant_id.lower() if isinstance(actor, Actor) and actor.tenant_id else ""
        rows = execute_core(u.s, _MESSAGE_CARDS, {"message": message_ref, "tenant": tenant}).all() if tenant else []
        return rows, tenant

    def message_answering(self, actor: Actor, message_ref: str | None) -> bool:
        """Its reader acts on a message: until the action has answered (:meth:`message_shows`), or
        :data:`ANSWERING` has passed (a process that died meanwhile), in-place updates of the cards
        that message shows wait, so that none lands after the answer that replaced it (Back on a
        quote closes the quote, whose update would otherwise overwrite the step shown by Back).
        Whether the message shows posted cards; one indexed read when it shows none (most actions)."""
        if not message_ref:
            return False
        with self.units.system_read() as u:
            rows, _ = self._message_cards(u, actor, message_ref)
        if rows:
            self.units.system_write(lambda u: u.s.execute(
                update(PostedCard).where(PostedCard.id.in_([r.id for r in rows]))
                .values(answering_until=u.now + ANSWERING)))
        return bool(rows)

    def message_shows(self, actor: Actor, message_ref: str, address: ChatAddress | None,
                      shown: Collection[tuple[str, str]] | None) -> None:
        """A message of the actor's account now shows ``shown`` ((subject, id) pairs) and nothing
        else: its reader acted on it and the answer replaced its card. The posted cards tying it
        to any other subject are dropped, so that a later in-place update of that subject (a
        quote closed or paid, a request decided) never replaces the step its reader has moved
        to; those shown are remembered (with ``address``) if they were not, and their updates
        wait no more. ``shown`` None: the action failed and its card stays as it was (nothing
        dropped). One indexed read when nothing changes."""
        if not message_ref:
            return
        with self.units.system_read() as u:
            rows, tenant = self._message_cards(u, actor, message_ref)
        wanted = {(r.subject, r.subject_id) for r in rows} if shown is None else {
            (subject, str(subject_id)) for subject, subject_id in shown}
        stale = [r.id for r in rows if (r.subject, r.subject_id) not in wanted]
        waiting = [r.id for r in rows if r.id not in stale and r.answering_until is not None]
        missing = wanted - {(r.subject, r.subject_id) for r in rows} if address else set()
        if not stale and not missing and not waiting:
            return

        def work(u: Unit) -> None:
            s = u.s
            if stale:
                s.execute(delete(PostedCard).where(PostedCard.id.in_(stale)))
            if waiting:
                s.execute(update(PostedCard).where(PostedCard.id.in_(waiting)).values(answering_until=None))
            account_id = s.scalar(_TENANT_ACCOUNT, {"tenant": tenant}) if missing else None
            if account_id is None or address is None:  # nothing to remember (or the message's account is gone)
                return
            for subject, subject_id in sorted(missing):
                with contextlib.suppress(IntegrityError), s.begin_nested():  # (recorded at once elsewhere: fine)
                    self.posted_card_in(u, account_id, subject, subject_id, message_ref, address)
                    s.flush()

        self.units.system_write(work)

    def posted_card(self, posted_card_id: object) -> PostedCard | None:
        if not isinstance(posted_card_id, int) or isinstance(posted_card_id, bool):
            return None  # e.g. the "request paid" card item, which names no posted card
        with self.units.system_read() as u:
            return u.s.get(PostedCard, posted_card_id)

    def posted_card_shows(self, subject: str, subject_id: str, message_ref: str) -> bool:
        """Whether a message was recorded as showing that subject's card (e.g. a request card
        that became the quote card when its admin approved it)."""
        with self.units.system_read() as u:
            return u.s.scalar(select(PostedCard.id).where(
                PostedCard.subject == subject, PostedCard.subject_id == str(subject_id),
                PostedCard.message_ref == message_ref).limit(1)) is not None

    def any_address(self, account_id: int) -> ChatAddress | None:
        """Some stored address in the account (its service URL serves the whole tenant)."""
        with self.units.system_read() as u:
            row = u.s.scalar(select(DeliveryAddress).join(User, User.id == DeliveryAddress.user_id)
                             .where(User.account_id == account_id).order_by(DeliveryAddress.updated_at.desc())
                             .limit(1))
            return row.address if row is not None else None

    def user_address(self, account_id: int, aad_object_id: str | None) -> ChatAddress | None:
        """The stored address of a user of the account, as it is now (None: not a user of the
        account, or never reached): with the locale and time zone they told last."""
        if not isinstance(aad_object_id, str) or not aad_object_id:
            return None
        with self.units.system_read() as u:
            row = u.s.scalar(select(DeliveryAddress).join(User, User.id == DeliveryAddress.user_id)
                             .where(User.account_id == account_id, User.aad_object_id == aad_object_id[:64]))
            return row.address if row is not None else None

    def account_admin_chat_ids(self, account_id: int, limit: int = 60) -> list[str]:
        """The ids the chat layer knows the account's administrators by (``chat_user_id`` of
        their stored delivery addresses), most recently seen first, at most ``limit``: whom a
        card that only administrators may act on is kept live for."""
        with self.units.system_read() as u:
            ids = u.s.scalars(select(DeliveryAddress.chat_user_id).join(User, User.id == DeliveryAddress.user_id)
                              .where(User.account_id == account_id, User.role == "admin",
                                     DeliveryAddress.chat_user_id.is_not(None))
                              .order_by(DeliveryAddress.updated_at.desc(), User.id))
            return list(dict.fromkeys(i for i in ids if i))[:max(0, limit)]
