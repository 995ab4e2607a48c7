"""What a payment provider package hands the composition root: a :class:`Provider`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.payments import LinkTraits

if TYPE_CHECKING:
    from aiohttp import web

    from core.config import Settings
    from core.licensing import Licensing
    from core.payments import PaymentGateway


class ProviderConfigError(Exception):
    """The settings do not let this provider start (a secret missing...): says which."""


@dataclass(frozen=True)
class Provider:
    """One payment provider. ``gateway`` and ``routes`` import the provider's code when called,
    so that naming a provider (the registry, the link traits) loads no SDK."""

    name: str
    link_traits: LinkTraits
    # The gateway from the settings; ProviderConfigError when they are incomplete.
    gateway: Callable[[Settings], PaymentGateway]
    # Its aiohttp routes (webhook, pages), on the core and the gateway the core was built with.
    routes: Callable[[Licensing, PaymentGateway], list[web.AbstractRouteDef]]
