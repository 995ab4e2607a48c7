"""The sandbox payment provider (the default): links to this server's own pay pages, whose Pay
button settles the quote as a provider's webhook would; no money moves."""

from __future__ import annotations

from payments.provider import Provider
from payments.sandbox.gateway import SandboxGateway


def _gateway(settings) -> SandboxGateway:
    return SandboxGateway(settings.public_base_url)


def _routes(lic, gateway):
    from payments.sandbox.routes import routes

    return routes(lic, gateway)


PROVIDER = Provider(name=SandboxGateway.name, link_traits=SandboxGateway.link_traits, gateway=_gateway,
                    routes=_routes)
