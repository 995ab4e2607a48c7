"""Who is speaking: tenant from ``channelData.tenant.id`` (botbuilder-schema drops
``conversation.tenantId``), user from ``from.aadObjectId``, locale from the activity, time
zone from ``localTimezone`` or the clientInfo entity."""

from __future__ import annotations

import re

from botbuilder.schema import Activity

from cards.i18n import zone
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


def _client_info(activity: Activity) -> dict:
    """The properties of the activity's clientInfo entity ({} when there is none)."""
    for entity in (activity.entities if isinstance(activity.entities, list) else [])[:16]:
        if isinstance(entity, dict):
            if entity.get("type") == "clientInfo":
                return entity
        elif getattr(entity, "type", None) == "clientInfo":
            props = getattr(entity, "additional_properties", None)
            return props if isinstance(props, dict) else {}
    return {}


def timezone_of(activity: Activity) -> str | None:
    """The user's IANA time zone (e.g. "Europe/Paris"): ``localTimezone``, else the clientInfo
    entity's ``timezone``; None when neither names a known zone."""
    for name in (activity.local_timezone, _client_info(activity).get("timezone")):
        if zone(name) is not None:
            return name
    return None
