"""The composition root: the one place that builds License Desk, in this order.

    settings → Database → Catalog → payment gateway (``PAYMENTS``: a provider of payments.registry)
    → Licensing (the core) → directory (Microsoft Graph, when ``GRAPH_ENABLED``)
    → audit export links → router and flows (their dependencies by constructor)
    → bot transport (adapter, activity handler, notifier) → the aiohttp app (routes: bot, the
    payment provider's own (webhook, pages), audit export; background jobs when serving)

Nothing here is kept in a module global: every part is made by a call and handed to whoever
uses it. bot/ and web/ never import each other; both are assembled here. ``app.py`` commands,
the test harness and the benchmarks build through these functions (with their own fakes:
clock, gateway, database, connector URLs in the settings).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aiohttp import web

from background import run_for_app_life
from core.catalog import Catalog
from core.config import Settings
from core.db import Database
from core.licensing import Licensing
from core.payments import PaymentGateway
from dialogs.flows import default_flows
from dialogs.router import Router
from payments import registry
from payments.provider import Provider, ProviderConfigError

if TYPE_CHECKING:  # (built on demand: `app.py migrate` and the other commands never load botbuilder)
    from bot.transport import BotTransport
    from web.audit_export import ExportLinks

_DEFAULT = object()  # "build it from the settings" (None is a value: no directory)


def load_settings() -> Settings:
    """The settings from the environment; a configuration error (an unknown ``PAYMENTS``
    provider included) ends the process, saying what."""
    from pydantic import ValidationError

    try:
        settings = Settings()
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise SystemExit(f"Configuration error: {problems}") from None
    payment_provider(settings)
    return settings


def payment_provider(settings: Settings) -> Provider:
    """The payment provider ``PAYMENTS`` names; a name the registry does not know ends the process."""
    try:
        return registry.provider(settings.payments)
    except registry.UnknownProvider as e:
        raise SystemExit(f"Configuration error: {e}") from None


def build_gateway(settings: Settings) -> PaymentGateway:
    """The gateway of the payment provider ``PAYMENTS`` names (settings it lacks end the process)."""
    try:
        return payment_provider(settings).gateway(settings)
    except ProviderConfigError as e:
        raise SystemExit(str(e)) from None


def build_licensing(settings: Settings, *, db: Database | None = None, gateway: PaymentGateway | None = None,
                    with_gateway: bool = True, clock: Callable[[], datetime] | None = None,
                    quote_ttl: timedelta | None = None) -> Licensing:
    """The core on the settings' database (or ``db``); commands that take no payment skip the gateway."""
    if gateway is None and with_gateway:
        gateway = build_gateway(settings)
    kw = {"clock": clock} if clock is not None else {}
    return Licensing(db or Database(settings.database_url), Catalog.load(), gateway,
                     quote_ttl=quote_ttl or timedelta(minutes=settings.quote_ttl_minutes),
                     link_traits=registry.link_traits(), **kw)


def build_directory(settings: Settings):
    """The tenant's directory through Microsoft Graph when GRAPH_ENABLED, else None."""
    if not settings.graph_enabled:
        return None
    if not settings.app_id or not settings.app_password.get_secret_value():
        raise SystemExit("GRAPH_ENABLED needs MicrosoftAppId and MicrosoftAppPassword (the app's Graph credentials).")
    from gateways.graph_directory import GraphDirectory

    return GraphDirectory.from_settings(settings)


def build_export_links(settings: Settings, lic: Licensing) -> ExportLinks:
    """The signed audit download links: made by the audit card, read by the download route."""
    from web.audit_export import ExportLinks, link_secret

    return ExportLinks(settings.public_base_url, link_secret(settings), lic.now)


@dataclass(frozen=True)
class Server:
    """Everything a serving process is made of, as built (tests reach the parts through it)."""

    settings: Settings
    lic: Licensing
    router: Router
    links: ExportLinks
    transport: BotTransport
    app: web.Application


def build_server(settings: Settings, lic: Licensing | None = None, *, background: bool = False,
                 directory=_DEFAULT) -> Server:
    """The whole app on top of the core (built from the settings unless given); ``background``:
    run the notifier, the roll-over and the billing outbox for the app's life."""
    from bot.transport import BotTransport
    from web.app import MAX_BODY, Health, bounded_body
    from web.audit_export import ROUTE, AuditExport
    from web.workers import billing_loop, rollover_loop

    lic = lic or build_licensing(settings)
    provider = payment_provider(settings)
    if lic.gateway is None or lic.gateway.name != provider.name:
        raise SystemExit(f"Configuration error: PAYMENTS={provider.name} but the core was built with "
                         f"{getattr(lic.gateway, 'name', 'no')} payment gateway")
    links = build_export_links(settings, lic)
    flows = default_flows(lic, directory=build_directory(settings) if directory is _DEFAULT else directory,
                          links=links)
    router = Router(lic, flows)
    transport = BotTransport(settings, lic, router)

    app = web.Application(client_max_size=MAX_BODY, middlewares=[bounded_body])
    app.router.add_get("/healthz", Health(lic, settings.payments).handle)
    app.add_routes(provider.routes(lic, lic.gateway))  # only the configured provider's webhook and pages
    app.router.add_post("/api/messages", transport.messages)
    # GET only: a HEAD would audit a download never made
    app.router.add_get(ROUTE, AuditExport(lic, links).handle, allow_head=False)

    async def close_transport(_app) -> None:
        await transport.close()

    app.on_cleanup.append(close_transport)
    if background:
        app.cleanup_ctx.append(run_for_app_life(lambda: transport.notifier.run_forever()))
        app.cleanup_ctx.append(run_for_app_life(lambda: rollover_loop(lic), lambda: billing_loop(lic)))
    return Server(settings, lic, router, links, transport, app)
