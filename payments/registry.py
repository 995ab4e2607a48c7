"""The payment providers this server knows, by the name ``PAYMENTS`` gives.

Adding a provider is one package under ``payments/`` exposing ``PROVIDER`` (a
:class:`~payments.provider.Provider`) and one line below.
"""

from __future__ import annotations

import importlib

from core.payments import LinkTraits
from payments.provider import Provider

PROVIDERS = {  # PAYMENTS name -> the package that provides it
    "sandbox": "payments.sandbox",
    "stripe": "payments.stripe",
}


class UnknownProvider(ValueError):
    """``PAYMENTS`` names no provider of this server: a configuration error."""


def provider(name: str) -> Provider:
    """The provider called ``name``; UnknownProvider (saying which exist) for any other name."""
    package = PROVIDERS.get(name)
    if package is None:
        raise UnknownProvider(f"PAYMENTS={name!r} is not a payment provider of this server "
                              f"(known: {', '.join(PROVIDERS)})")
    found = importlib.import_module(package).PROVIDER
    assert found.name == name, f"{package} provides {found.name!r}, registered as {name!r}"
    return found


def link_traits() -> dict[str, LinkTraits]:
    """How the core treats each provider's links: every provider's, since a stored payment may
    name one that ``PAYMENTS`` no longer does."""
    return {name: provider(name).link_traits for name in PROVIDERS}
