"""The benchmark's helper servers, each run in its own process:

    python -m bench.servers connector STATS_PORT        the fake Bot Connector (tests.fakes.connector, on a
                                                        free port) and /stats (calls by kind) on STATS_PORT
    python -m bench.servers floor PORT                  the floors: a bare aiohttp handler that parses
                                                        the same JSON and returns 200 (POST /floor), and
                                                        the same plus one reply POST to the activity's
                                                        serviceUrl through one pooled session
                                                        (POST /floor-reply)

    python -m bench.servers stub-bot [app.py serve options]
                                                        ``python app.py serve`` with the router
                                                        stubbed: each (verb or text) is answered
                                                        with the card the real router built the
                                                        first time, so only the transport is
                                                        measured (botbuilder, bot/, aiohttp)

Each prints ``ready`` (the connector: ``ready PORT``) on stdout once listening."""

from __future__ import annotations

import asyncio
import sys

import aiohttp
from aiohttp import web

REPLY = {"type": "message", "text": "ok", "from": {"id": "28:bot"}}


async def floor(request: web.Request) -> web.Response:
    await request.json()
    return web.Response(status=200)


async def floor_reply(request: web.Request) -> web.Response:
    activity = await request.json()
    url = (f"{activity['serviceUrl']}v3/conversations/{activity['conversation']['id']}"
           f"/activities/{activity['id']}")
    reply = dict(REPLY, conversation=activity["conversation"], replyToId=activity["id"])
    async with request.app[SESSION].post(url, json=reply) as r:
        await r.read()
        if r.status >= 300:
            return web.Response(status=502)
    return web.Response(status=200)


SESSION = web.AppKey("session", aiohttp.ClientSession)


async def _session(app: web.Application):
    app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
    yield
    await app[SESSION].close()


async def serve_floor(port: int) -> None:
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/floor", floor)
    app.router.add_post("/floor-reply", floor_reply)
    app.cleanup_ctx.append(_session)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


async def serve_connector(stats_port: int) -> None:
    from tests.fakes.connector import FakeConnector

    connector = FakeConnector()
    await connector.start()  # on a random port: tell the caller which

    async def stats(request: web.Request) -> web.Response:
        out: dict[str, int] = {}
        for c in connector.calls:
            key = f"{c.kind}:{c.status}:{c.conversation_id}"
            out[key] = out.get(key, 0) + 1
        return web.json_response({"port": connector.port, "calls": out})

    async def reset(request: web.Request) -> web.Response:
        connector.calls.clear()
        connector.messages.clear()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", stats_port).start()
    print(f"ready {connector.port}", flush=True)
    await asyncio.Event().wait()


def serve_stub_bot(argv: list[str]) -> int:
    import app
    from dialogs.router import Router

    real_action, real_text = Router.on_action, Router.on_text
    cache: dict[tuple, dict] = {}

    def on_action(self, turn, verb, data):
        key = ("action", verb)
        if key not in cache:
            cache[key] = real_action(self, turn, verb, data)
        return cache[key]

    def on_text(self, turn, text):
        key = ("text", text)
        if key not in cache:
            cache[key] = real_text(self, turn, text)
        return cache[key]

    Router.on_action, Router.on_text = on_action, on_text
    return app.main(["serve", *argv])


def main(argv: list[str]) -> None:
    kind = argv[0]
    if kind == "stub-bot":
        raise SystemExit(serve_stub_bot(argv[1:]))
    if kind == "floor":
        asyncio.run(serve_floor(int(argv[1])))
    elif kind == "connector":
        asyncio.run(serve_connector(int(argv[1])))
    else:
        raise SystemExit(f"unknown server {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
