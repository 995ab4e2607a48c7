"""The whole app (``bootstrap.build_server``: bot endpoint, pay pages) in a process of its own, for
the tests where two server instances share one database (races that only two processes show).

    python -m tests.desk_server DATABASE_URL

serves on a free loopback port in local mode (no app id: the Bot Connector is whatever
``serviceUrl`` the activity names, the test's fake), with the sandbox gateway whose pay links
point at this process, and prints ``ready <base url>`` once it listens. No background workers
(the test drives what it needs). SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Serve License Desk on a free port against a database until killed.")
    ap.add_argument("database_url")
    ap.add_argument("--log", default="WARNING")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log.upper(), format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")

    from aiohttp import web

    from bootstrap import build_licensing, build_server
    from core.config import Settings

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(MicrosoftAppId="", DATABASE_URL=args.database_url, PUBLIC_BASE_URL=url)
    lic = build_licensing(settings)

    async def run() -> None:
        runner = web.AppRunner(build_server(settings, lic).app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print(f"ready {url}", flush=True)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(run())
    lic.db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
