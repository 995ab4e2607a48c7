"""Who is speaking: tenant from ``channelData.tenant.id`` (botbuilder-schema drops
``conversation.tenantId``), user from ``from.aadObjectId``, locale from the activity."""

from __future__ import annotations

import re

from botbuilder.core import TurnContext
from botbuilder.schema import Activity

from core.views import Actor

_GUIDISH = re.compile(r"^[0-9A-Za-z-]{1,64}$")


def tenant_of(activity: Activity) -> str | None:
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    tenant = data.get("tenant") if isinstance(data.get("tenant"), dict) else {}
    tid = tenant.get("id")
    if not tid and activity.conversation is not None:
        tid = getattr(activity.conversation, "tenant_id", None)
    return tid.lower() if isinstance(tid, str) and _GUIDISH.match(tid) else None


def actor_of(activity: Activity) -> Actor:
    frm = activity.from_property
    aad = getattr(frm, "aad_object_id", None) if frm else None
    name = getattr(frm, "name", None) if frm else None
    aad = aad if isinstance(aad, str) and _GUIDISH.match(aad) else ""
    return Actor(tenant_id=tenant_of(activity) or "", aad_object_id=aad, name=name)


def locale_of(activity: Activity) -> str:
    loc = activity.locale if isinstance(activity.locale, str) else None
    return loc[:20] if loc else "en-US"


def address_of(activity: Activity) -> dict:
    """An opaque, JSON-able address to reach this conversation later (proactive messages)."""
    ref = TurnContext.get_conversation_reference(activity).serialize()
    ref.pop("activityId", None)
    if isinstance(activity.locale, str) and activity.locale:  # conversationUpdate has none: keep the known one
        ref["locale"] = activity.locale[:20]
    return ref
