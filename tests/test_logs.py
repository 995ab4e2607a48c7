"""No secret, token or card payload in the logs.

A whole production-mode journey (signed inbound JWTs, the bot's outbound token from the fake
login endpoint, a Stripe Checkout link and a signed Stripe webhook, notifications, a turn that
fails with a token in its exception, a refused token) runs with every logger at DEBUG, msrest's
HTTP logger switched on (it dumps request and response bodies), and a MicrosoftAppPassword,
Stripe keys and a LINK_SECRET set. Then the captured log, records and formatted text with
tracebacks, is searched for each of those strings and for any Adaptive Card JSON.
"""

from __future__ import annotations

import json
import logging

import msrest.pipeline.universal
import pytest

from bot.auth import install_log_redaction, redact
from payments.stripe.gateway import StripeGateway
from tests import harness
from tests.fakes.fake_stripe import TEST_API_KEY, event_payload, sign_webhook
from tests.fakes.openid import APP_ID, APP_PASSWORD, FakeOpenId, production_desk
from tests.harness import choice_value, heading_of, pool_button, tick

WEBHOOK_SECRET = "whsec_license_desk_log_test_0123456789"
LINK_SECRET = "link-secret-for-the-log-test-0123456789"
LOGGERS = ("", "botbuilder", "botframework", "msrest", "msrest.http_logger", "aiohttp", "aiohttp.access",
           "aiohttp.client", "aiohttp.server", "aiohttp.web", "stripe", "msal", "urllib3", "requests", "asyncio",
           "bot", "web", "core", "dialogs", "gateways", "payments", "sqlalchemy.engine")
CARD_MARKERS = ('"type": "AdaptiveCard"', '"type":"AdaptiveCard"', "'type': 'AdaptiveCard'",
                "application/vnd.microsoft.card.adaptive", "adaptivecards.io/schemas")


def _http_logger_on(monkeypatch):
    """What an operator debugging the connector would do: msrest's HTTP logger dumps every
    request and response (headers and bodies) at DEBUG."""
    original = msrest.pipeline.universal.HTTPLogger.__init__

    def init(self, enable_http_logger=True):
        original(self, True)

    monkeypatch.setattr(msrest.pipeline.universal.HTTPLogger, "__init__", init)


async def test_a_journey_at_debug_logs_no_secret_token_or_card(monkeypatch, db, caplog, fake_stripe):
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    _http_logger_on(monkeypatch)
    gateway = StripeGateway(TEST_API_KEY, WEBHOOK_SECRET, api_base=fake_stripe.base_url, timeout_seconds=3,
                            max_network_retries=0)
    monkeypatch.setattr(harness, "SandboxGateway", lambda url: gateway)  # real clock: Stripe checks expiries
    tokens: list[str] = []
    shown: list[dict] = []

    with FakeOpenId(APP_ID, APP_PASSWORD) as idp:
        sign = idp.token

        def signing(*args, **kw):
            tokens.append(sign(*args, **kw))
            return tokens[-1]

        idp.token = signing
        async with production_desk(idp, monkeypatch, db=db, PAYMENTS="stripe", STRIPE_API_KEY=TEST_API_KEY,
                                   STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, LINK_SECRET=LINK_SECRET) as desk:
            alex = desk.admin()
            shown += await alex.install()
            [pools] = await alex.say("licenses")
            users = (await alex.act(pools, pool_button(pools, "Eco", "monthly"))).expect_card()
            found = await alex.search(users, "pick", "ade")
            assert found.value["results"]
            tiers = (await alex.act(users, "Choose tier", users=tick(users, "users", "Adele Vance"))).expect_card()
            quote = (await alex.act(tiers, "Upgrade", plan=choice_value(tiers, "plan", "Pro"))).expect_card()
            assert alex.open_url(quote, "Pay …").startswith("https://checkout.stripe.com/")
            shown += [pools, users, tiers, quote]

            # Stripe says it is paid (a signed webhook); the notifier tells everyone concerned
            (session_id,) = fake_stripe.sessions
            payload = event_payload("checkout.session.completed", fake_stripe.complete_session(session_id))
            res = await desk.post_raw("/api/stripe/webhook", payload,
                                      headers={"Stripe-Signature": sign_webhook(payload, WEBHOOK_SECRET)})
            assert res.status == 200 and res.json()["result"] == "settled"
            assert await desk.notify() > 0
            shown += desk.client_named("Adele Vance").proactive_cards() + [alex.card_in(quote.message_id)]

            # a turn that fails with a secret in the exception (logged with its traceback)
            router = desk.root.router

            def boom(*args, **kwargs):
                raise RuntimeError(f"upstream said no to Bearer {tokens[-1]} with key {TEST_API_KEY}")

            monkeypatch.setattr(router, "on_text", boom)
            [apology] = await alex.say("licenses")
            assert heading_of(apology) == "That didn't work"

            # a refused request (the token is for another bot)
            activity = alex.activity("message", text="hi")
            forged = signing(activity["serviceUrl"], aud="another-bot")
            res = await desk.post_raw("/api/messages", json.dumps(activity),
                                      headers={"Authorization": f"Bearer {forged}"})
            assert res.status == 401
        outbound = list(idp.issued)

    text = caplog.text
    messages = [r.getMessage() for r in caplog.records]
    # the journey did log at DEBUG, through the loggers that could leak
    names = {r.name for r in caplog.records}
    assert {"msrest.http_logger", "msal.token_cache", "urllib3.connectionpool", "stripe", "bot.handler",
            "bot.guards"} <= names, sorted(names)
    assert any("[redacted]" in m or "Adaptive Card payload" in m for m in messages)  # something needed it

    secrets = {"app password": APP_PASSWORD, "stripe key": TEST_API_KEY, "webhook secret": WEBHOOK_SECRET,
               "link secret": LINK_SECRET}
    secrets.update({f"inbound token {i}": t for i, t in enumerate(tokens)})
    secrets.update({f"outbound token {i}": t for i, t in enumerate(outbound)})
    assert tokens and outbound
    for what, value in secrets.items():
        assert value not in text, f"{what} is in the log"
        assert not any(value in m for m in messages), f"{what} is in a log record"
    for marker in CARD_MARKERS:
        assert marker not in text, f"a card payload is in the log ({marker})"
    for card in shown:
        body = json.dumps(card)
        assert body[:120] not in text and json.dumps(card.get("body"))[:120] not in text
    assert "Bearer ey" not in text


# ============================================================================ the redaction itself


@pytest.mark.parametrize("raw, leaked", [
    ("    'Authorization': 'Bearer abc.def.ghi'", "abc.def.ghi"),
    ("headers={'authorization': 'Basic dXNlcjpwYXNz'}", "dXNlcjpwYXNz"),
    ("Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl", "eyJhbGciOiJSUzI1NiJ9"),
    ("token eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl in the middle", "eyJpc3MiOiJ4In0"),
    ("grant_type=client_credentials&client_secret=s3cr3t-value&scope=x", "s3cr3t-value"),
    ('{"access_token": "opaque-token-value", "expires_in": 3599}', "opaque-token-value"),
    ("stripe key sk_live_51HxYzAbCdEfGh", "sk_live_51HxYzAbCdEfGh"),
    ("signing secret whsec_abcdefghijklmnop", "whsec_abcdefghijklmnop"),
    ('{"type": "AdaptiveCard", "body": [{"type": "TextBlock", "text": "Adele Vance"}]}', "Adele Vance"),
    ('{"contentType": "application/vnd.microsoft.card.adaptive", "content": {"x": "Quote Q-1"}}', "Quote Q-1"),
])
def test_redact(raw, leaked):
    assert leaked not in redact(raw)


def test_configured_secrets_are_redacted_in_messages_arguments_and_tracebacks(caplog):
    uninstall = install_log_redaction(["configured-secret-0042"])
    log = logging.getLogger("tests.redaction")
    caplog.set_level(logging.DEBUG, logger="tests.redaction")
    try:
        log.debug("password is %s", "configured-secret-0042")
        log.info("dict %r", {"nested": ["configured-secret-0042"]})
        try:
            raise ValueError("failed with configured-secret-0042")
        except ValueError:
            log.exception("it failed")
    finally:
        uninstall()
    log.info("after: configured-secret-0042")  # undone: the process's logging is as it was
    assert caplog.records[-1].getMessage() == "after: configured-secret-0042"
    assert "configured-secret-0042" not in "".join(caplog.text.splitlines(keepends=True)[:-1])
    assert caplog.text.count("[redacted]") >= 3
    assert "ValueError" in caplog.text and "Traceback" in caplog.text  # the traceback is kept
    assert len(caplog.records) == 4


async def _abort_post(port: int, path: str, content_type: str, *, total: int = 4000, sent: int = 100) -> None:
    """A POST whose client goes away after ``sent`` of the ``total`` bytes it announced."""
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
                 f"Content-Length: {total}\r\n\r\n".encode() + b"a" * sent)
    await writer.drain()
    await asyncio.sleep(0.02)
    writer.close()


async def test_an_upload_aborted_by_the_client_is_one_log_line(desk, caplog):
    """100 POSTs whose clients go away in the middle of the body (to a pay page, the messages
    endpoint, the webhook): one short line each, no traceback, nothing done."""
    import asyncio

    from tests.harness import Watch

    caplog.set_level(logging.DEBUG)
    alex = desk.admin()
    [pools] = await alex.say("licenses")
    port = int(desk.url.rsplit(":", 1)[1])
    watch, mark = Watch(desk), len(caplog.records)
    targets = [("/pay/" + "t" * 32, "application/x-www-form-urlencoded"), ("/api/messages", "application/json"),
               ("/pay/" + "t" * 32, "multipart/form-data; boundary=zz")]
    for i in range(100):
        path, ctype = targets[i % len(targets)]
        await _abort_post(port, path, ctype)
    for _ in range(100):  # the server has seen every disconnect
        if sum("went away" in r.getMessage() for r in caplog.records[mark:]) >= 100:
            break
        await asyncio.sleep(0.05)
    records = caplog.records[mark:]
    aborted = [r for r in records if "went away" in r.getMessage()]
    assert len(aborted) == 100, [r.getMessage() for r in records][:5]
    assert all(r.levelno == logging.INFO and r.name == "web.app" for r in aborted)
    assert "t" * 32 not in " ".join(r.getMessage() for r in aborted)  # the route, not the path (a pay token)
    assert not [r for r in records if r.exc_info or r.levelno >= logging.ERROR], \
        [(r.name, r.getMessage()) for r in records if r.exc_info or r.levelno >= logging.ERROR][:3]
    assert sum(len(r.getMessage()) for r in records) < 100 * 200
    watch.unchanged()
    assert heading_of((await alex.say("licenses"))[0]).startswith("License pools")  # still serving
