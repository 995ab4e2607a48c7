"""The payment providers' registry: ``PAYMENTS`` picks one provider, an unknown name is refused at
start, and only the configured provider's routes (webhook, pages) are mounted."""

from __future__ import annotations

import ast
import pathlib
from datetime import timedelta

import pytest

import bootstrap
from core.catalog import Catalog
from core.config import Settings
from core.licensing import Licensing
from core.payments import LinkTraits
from payments import registry
from payments.sandbox.gateway import SandboxGateway
from payments.stripe.gateway import StripeGateway
from tests.fakes.fake_stripe import TEST_API_KEY, event_payload, sign_webhook

ROOT = pathlib.Path(__file__).resolve().parent.parent
WEBHOOK_SECRET = "whsec_test_registry"
STRIPE_WEBHOOKS = ("/api/payments/stripe/webhook", "/api/stripe/webhook")  # the new one; the one in the README
TOKEN = "t" * 32  # a token as the sandbox makes them (no such link: its page says so)


def routes(app) -> set[tuple[str, str]]:
    return {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}


def stripe_settings(db_url: str, **kw) -> Settings:
    return Settings(DATABASE_URL=db_url, PAYMENTS="stripe", STRIPE_API_KEY=TEST_API_KEY,
                    STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, **kw)


def test_the_registry_refuses_an_unknown_provider_saying_which_exist():
    with pytest.raises(registry.UnknownProvider) as refused:
        registry.provider("bitcoin")
    assert "bitcoin" in str(refused.value) and "sandbox" in str(refused.value) and "stripe" in str(refused.value)
    for name in registry.PROVIDERS:
        assert registry.provider(name).name == name


def test_an_unknown_provider_is_a_configuration_error_at_start(monkeypatch, db_url):
    monkeypatch.setenv("PAYMENTS", "Bitcoin")
    with pytest.raises(SystemExit) as stopped:
        bootstrap.load_settings()
    assert str(stopped.value).startswith("Configuration error: PAYMENTS='bitcoin' is not a payment provider")
    with pytest.raises(SystemExit, match="PAYMENTS='bitcoin'"):
        bootstrap.build_gateway(Settings(DATABASE_URL=db_url, PAYMENTS="bitcoin"))
    monkeypatch.setenv("PAYMENTS", " Stripe ")
    assert bootstrap.load_settings().payments == "stripe"


def test_a_provider_missing_its_secrets_stops_the_start_saying_which(db_url):
    with pytest.raises(SystemExit, match="PAYMENTS=stripe needs STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET"):
        bootstrap.build_gateway(Settings(DATABASE_URL=db_url, PAYMENTS="stripe", STRIPE_API_KEY=TEST_API_KEY))
    gateway = bootstrap.build_gateway(stripe_settings(db_url))
    assert isinstance(gateway, StripeGateway) and gateway.name == "stripe"
    assert isinstance(bootstrap.build_gateway(Settings(DATABASE_URL=db_url)), SandboxGateway)


def test_each_gateway_declares_the_link_traits_its_provider_registers():
    assert registry.link_traits() == {"sandbox": SandboxGateway.link_traits, "stripe": StripeGateway.link_traits}
    assert SandboxGateway.link_traits == LinkTraits(secret_id=True, closes_with_quote=True)
    assert StripeGateway.link_traits == LinkTraits()


async def test_only_the_sandbox_pages_are_mounted_with_the_sandbox(demo, db_url, aiohttp_client):
    app = bootstrap.build_server(Settings(DATABASE_URL=db_url, PUBLIC_BASE_URL="http://127.0.0.1"), demo).app
    mounted = routes(app)
    assert {("GET", "/pay/{token}"), ("POST", "/pay/{token}")} <= mounted
    assert not any("stripe" in path for _, path in mounted), mounted
    client = await aiohttp_client(app)
    assert (await client.get(f"/pay/{TOKEN}")).status == 404  # (the sandbox's page: no such link)
    assert "Link not found" in await (await client.get(f"/pay/{TOKEN}")).text()
    payload = event_payload("checkout.session.completed", {"id": "cs_test_1", "metadata": {}})
    for path in STRIPE_WEBHOOKS:  # a signed Stripe event: no route for it, nothing read
        resp = await client.post(path, data=payload, headers={"Stripe-Signature": sign_webhook(payload,
                                                                                               WEBHOOK_SECRET)})
        assert resp.status == 404, path


async def test_only_the_stripe_webhook_is_mounted_with_stripe(db, clock, db_url, aiohttp_client):
    gateway = StripeGateway(TEST_API_KEY, WEBHOOK_SECRET, api_base="http://127.0.0.1:9", max_network_retries=0)
    lic = Licensing(db, Catalog.load(), gateway, clock=clock, quote_ttl=timedelta(minutes=30))
    app = bootstrap.build_server(stripe_settings(db_url), lic).app
    mounted = routes(app)
    assert {("POST", path) for path in STRIPE_WEBHOOKS} <= mounted
    assert not any(path.startswith("/pay/") for _, path in mounted), mounted
    client = await aiohttp_client(app)
    assert (await client.get(f"/pay/{TOKEN}")).status == 404
    assert (await client.post(f"/pay/{TOKEN}", data={"action": "pay"})).status == 404
    for i, path in enumerate(STRIPE_WEBHOOKS):
        payload = event_payload("checkout.session.completed",
                                {"id": f"cs_test_{i}", "object": "checkout.session", "metadata": {},
                                 "client_reference_id": None}, event_id=f"evt_registry_{i}")
        unsigned = await client.post(path, data=payload, headers={"Stripe-Signature": "t=1,v1=00"})
        assert unsigned.status == 400, path
        signed = await client.post(path, data=payload,
                                   headers={"Stripe-Signature": sign_webhook(payload, WEBHOOK_SECRET)})
        assert signed.status == 200 and (await signed.json())["received"] is True, path


def test_the_server_refuses_a_core_built_with_another_providers_gateway(demo, db_url):
    with pytest.raises(SystemExit, match="PAYMENTS=stripe but the core was built with sandbox"):
        bootstrap.build_server(stripe_settings(db_url), demo)


def test_the_core_names_no_provider():
    """core/ holds the port only: no provider's module, name or SDK (its settings' defaults aside)."""
    for path in (ROOT / "core").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not {m for m in imported if m.split(".")[0] in ("payments", "gateways", "stripe")}, path
        if path.name in ("config.py", "payments.py"):  # (PAYMENTS' default and the STRIPE_* settings; docs)
            continue
        strings = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
                   and isinstance(node.value, str)]
        assert not [s for s in strings if "sandbox" in s.lower() or "stripe" in s.lower()], path
