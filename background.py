"""What the serving process's background work shares, whichever folder it lives in (bot/'s
notifier, web/'s billing jobs): worker names for outbox leases, and running coroutines for an
aiohttp app's life."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket


def worker_name(kind: str) -> str:
    """A name for this process's leases of ``kind``, unique across hosts, processes and restarts."""
    return f"{kind}@{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"


def run_for_app_life(*factories):
    """An aiohttp cleanup context running the given coroutine factories for the app's life."""

    async def ctx(app):
        tasks = [asyncio.create_task(f()) for f in factories]
        yield
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    return ctx
