"""The composition root: the one place that builds License Desk, in this order.

    settings → Database → Catalog → payment gateway (``PAYMENTS``: sandbox or stripe)
    → Licensing (the core) → directory (Microsoft Graph, when ``GRAPH_ENABLED``)
    → audit export links → router and flows (their dependencies by constructor)
    → bot transport (adapter, activity handler, notifier) → the aiohttp app (routes: bot,
    Stripe webhook, pay pages, audit export; background jobs when serving)

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
from core.payments import PaymentGateway, SandboxGateway
from dialogs.flows import default_flows
from dialogs.router import Router

if TYPE_CHECKING:  # (built on demand: `app.py migrate` and the other commands never load botbuilder)
    from bot.transport import BotTransport
    from web.audit_export import ExportLinks

_DEFAULT = object()  # "build it from the settings" (None is a value: no directory)


def load_settings() -> Settings:
    """The settings from the environment; a configuration error ends the process, saying what."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise SystemExit(f"Configuration error: {problems}") from None


def build_gateway(settings: Settings) -> PaymentGateway:
    """The payment gateway ``PAYMENTS`` names: the sandbox (pay pages on this server) or Stripe."""
    if settings.payments == "stripe":
        from gateways.stripe_gateway import StripeGateway

        if not settings.stripe_api_key or not settings.stripe_webhook_secret:
            raise SystemExit("PAYMENTS=stripe needs STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET in the environment.")
        return StripeGateway(settings.stripe_api_key.get_secret_value(),
                             settings.stripe_webhook_secret.get_secret_value(), api_base=settings.stripe_api_base)
    return SandboxGateway(settings.public_base_url)


def build_licensing(settings: Settings, *, db: Database | None = None, gateway: PaymentGateway | None = None,
                    with_gateway: bool = True, clock: Callable[[], datetime] | None = None,
                    quote_ttl: timedelta | None = None) -> Licensing:
    """The core on the settings' database (or ``db``); commands that take no payment skip the gateway."""
    if gateway is None and with_gateway:
        gateway = build_gateway(settings)
    kw = {"clock": clock} if clock is not None else {}
    return Licensing(db or Database(settings.database_url), Catalog.load(), gateway,
                     quote_ttl=quote_ttl or timedelta(minutes=settings.quote_ttl_minutes), **kw)


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
    from web.app import MAX_BODY, Health, PayPages, StripeWebhook, bounded_body
    from web.audit_export import ROUTE, AuditExport
    from web.workers import billing_loop, rollover_loop

    lic = lic or build_licensing(settings)
    links = build_export_links(settings, lic)
    flows = default_flows(lic, directory=build_directory(settings) if directory is _DEFAULT else directory,
                          links=links)
    router = Router(lic, flows)
    transport = BotTransport(settings, lic, router)

    app = web.Application(client_max_size=MAX_BODY, middlewares=[bounded_body])
    pay = PayPages(lic)
    stripe = lic.gateway if getattr(lic.gateway, "name", "") == "stripe" else None
    app.router.add_get("/healthz", Health(lic, settings.payments).handle)
    app.router.add_get("/pay/{token}", pay.get)
    app.router.add_post("/pay/{token}", pay.post)
    app.router.add_post("/api/stripe/webhook", StripeWebhook(lic, stripe).handle)
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
