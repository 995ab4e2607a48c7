"""Conversation addresses, the bot's side: a Bot Framework conversation reference serialised
into the opaque ``ref`` of a :class:`~core.views.ChatAddress` and read back from it. Only this
module knows what is inside ``ref`` (the core stores it as given); what the core needs (the
user's channel id, locale, time zone) is handed to it beside the ``ref``."""

from __future__ import annotations

import json
from functools import lru_cache

from botbuilder.core import TurnContext
from botbuilder.schema import Activity, ConversationReference

from bot.identity import timezone_of
from cards.i18n import Reader
from core.views import ChatAddress

# left out of ``ref``: the activity is the one a reference was taken from (never reused), the
# locale and time zone are the address's own fields (given to the core beside the ``ref``)
_NOT_IN_REF = ("activityId", "locale", "timezone")


def _ref(reference: dict) -> str:
    return json.dumps({k: v for k, v in reference.items() if k not in _NOT_IN_REF}, sort_keys=True,
                      separators=(",", ":"))


@lru_cache(maxsize=4096)
def _fields(ref: str) -> dict:
    """The serialised reference inside ``ref`` ({} when it is not one). Read only: cached."""
    try:
        fields = json.loads(ref)
    except (TypeError, ValueError):
        return {}
    return fields if isinstance(fields, dict) else {}


def _chat_user_id(user, aad_object_id) -> str | None:
    """The channel id of the person (Teams: ``29:…``) when it is told, and is not just their
    directory id (an address the notifier made when it created the chat names them by that)."""
    told = user.get("id") if isinstance(user, dict) else None
    return told if isinstance(told, str) and told and told != aad_object_id else None


def stored_address(reference: dict) -> ChatAddress:
    """The address of a serialised conversation reference, with the ``locale`` and ``timezone``
    the bot adds to it (what ``delivery_addresses.address`` held until migration 0010)."""
    user = reference.get("user") if isinstance(reference.get("user"), dict) else {}
    locale, tz = reference.get("locale"), reference.get("timezone")
    return ChatAddress(ref=_ref(reference), chat_user_id=_chat_user_id(user, user.get("aadObjectId")),
                       locale=locale[:20] if isinstance(locale, str) and locale else None,
                       timezone=tz if isinstance(tz, str) and tz else None)


def address_of(activity: Activity) -> ChatAddress:
    """The address to reach this conversation later (proactive messages), with the user's
    locale and time zone when the activity tells them (conversationUpdate does not: the core
    keeps the known ones)."""
    reference = TurnContext.get_conversation_reference(activity).serialize()
    reference["locale"], reference["timezone"] = activity.locale, timezone_of(activity)
    return stored_address(reference)


def created_address(activity: Activity, member: str, aad_object_id: str, locale: str | None) -> ChatAddress:
    """The address of a 1:1 chat the notifier created for ``member`` (the id it named them by
    in ``members``): the chat's reference, naming the person by ``member`` and object id."""
    return stored_address(dict(TurnContext.get_conversation_reference(activity).serialize(),
                               user={"id": member, "aadObjectId": aad_object_id}, locale=locale or "en-US",
                               timezone=None))


def reference_of(address: ChatAddress) -> ConversationReference:
    """The conversation reference to continue the conversation of a stored address."""
    reference = ConversationReference().deserialize(_fields(address.ref))
    if isinstance(address.locale, str):
        reference.locale = address.locale
    return reference


def conversation_of(address: ChatAddress | None) -> str | None:
    """The id of the conversation a stored address names, if any."""
    conversation = _fields(address.ref).get("conversation") if address is not None else None
    cid = conversation.get("id") if isinstance(conversation, dict) else None
    return cid if isinstance(cid, str) and cid else None


def has_chat(address: ChatAddress | None) -> bool:
    """Whether a stored address names a conversation to post into."""
    return conversation_of(address) is not None


def service_of(address: ChatAddress) -> tuple[str, str | None]:
    """(channel id, service URL) of a stored address: where to create a conversation."""
    fields = _fields(address.ref)
    channel, url = fields.get("channelId"), fields.get("serviceUrl")
    return (channel if isinstance(channel, str) and channel else "msteams"), (url if isinstance(url, str) else None)


def person_of(address: ChatAddress | None) -> str | None:
    """The Entra object id of the person of a stored address (its ``user``), if it names one."""
    user = _fields(address.ref).get("user") if address is not None else None
    aad = user.get("aadObjectId") if isinstance(user, dict) else None
    return aad if isinstance(aad, str) and aad else None


def chat_member_id(address: ChatAddress | None, aad_object_id: str) -> str:
    """Whom to name in a createConversation's ``members``: the person's channel id (Teams:
    ``29:…``, what their activities carry in ``from.id``) when a stored address tells it, else
    their Entra object id (Teams accepts it too)."""
    told = address.chat_user_id if address is not None else None
    return told if isinstance(told, str) and told and told != aad_object_id else aad_object_id


def reader_of(address: ChatAddress | None) -> Reader:
    """Who reads what is sent to a stored address: its locale and time zone."""
    locale, tz = (address.locale, address.timezone) if address is not None else (None, None)
    return Reader(locale if isinstance(locale, str) else None, tz if isinstance(tz, str) else None)


def reader_now(posted: ChatAddress | None, known: ChatAddress | None) -> Reader:
    """Who reads, now, a card posted earlier at the address ``posted``: in the locale and time
    zone its person has told since (``known``: their address as stored now, see
    :func:`person_of`), else in those known when it was posted."""
    then, now = reader_of(posted), reader_of(known)
    return Reader(now.locale or then.locale, now.timezone or then.timezone)


def _frozen(value):
    if isinstance(value, dict | list):  # (properties, additional_properties: rarely anything in them)
        return json.dumps(value, sort_keys=True, default=repr) if value else type(value).__name__
    return value


def address_key(activity: Activity) -> tuple:
    """A cheap key that changes whenever :func:`address_of` would: everything the conversation
    reference is built from (channel, service URL, locale, time zone, the user, the bot, the
    conversation), read as attributes. ~5 µs, against ~130 µs for the msrest serialisation of
    the address."""
    parts: list = [activity.channel_id, activity.service_url, activity.locale, timezone_of(activity)]
    for account in (activity.from_property, activity.recipient, activity.conversation):
        parts.append(None if account is None else
                     (type(account).__name__, tuple(sorted((k, _frozen(v)) for k, v in vars(account).items()))))
    return tuple(parts)
