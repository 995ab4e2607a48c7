"""The notifier in a process of its own, for the crash and multi-process tests and the fan-out
benchmark, and the outbox they drain.

    python -m tests.outbox_worker DATABASE_URL [--lease SECONDS] [--idle SECONDS] [--concurrency N]

runs the real notifier (``bot.transport.build_adapter``: the cached connector clients and shared
session; the router; the core) against the database until killed, and prints
``ready <worker name>`` once it runs. SIGTERM stops it gracefully (messages not attempted are
given back). :func:`seed_outbox` writes accounts, users with stored 1:1 addresses pointing at
a (fake) Bot Connector, and one notification per user, with SQLAlchemy Core.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BOT_ID = "28:00000000-0000-0000-0000-00000000f0f0"


@dataclass
class Seeded:
    tenants: list[str]
    account_ids: list[int]
    outbox_ids: list[int]
    by_tenant: dict[str, list[int]] = field(default_factory=dict)  # tenant -> its outbox ids
    users: dict[int, str] = field(default_factory=dict)  # outbox id -> the user's aadObjectId
    chats: dict[int, str] = field(default_factory=dict)  # outbox id -> the 1:1 chat it goes to


def tenant_id(k: int) -> str:
    return f"00000000-0000-0000-0000-0000{k:08x}"


def seed_outbox(lic, service_url: str, *, tenants: int, users: int, first: int = 1, without_address: int = 0,
                messages_per_user: int = 1) -> Seeded:
    """``tenants`` accounts of ``users`` users each, every user with a stored 1:1 address at
    ``service_url`` (except the last ``without_address`` of each account: the notifier creates
    their chat), and ``messages_per_user`` ``license_upgraded`` notifications per user."""
    from sqlalchemy import insert, select

    from bot.addresses import stored_address
    from core.models import Account, AccountTenant, DeliveryAddress, OutboxMessage, User, address_columns
    from core.text import sort_key
    from tests.fakes.connector import personal_chat_id

    now = lic.now()
    out = Seeded([], [], [])

    def work(s):
        for k in range(first, first + tenants):
            tid = tenant_id(k)
            account_id = s.execute(insert(Account).values(name=f"Fan-out {k}", currency="USD", created_at=now)
                                   .returning(Account.id)).scalar_one()
            s.execute(insert(AccountTenant).values(tenant_id=tid, account_id=account_id))
            rows = [{"account_id": account_id, "aad_object_id": f"fan-{k:04d}-{i:06d}", "email": f"u{i}@t{k}.example",
                     "name": f"User {i}", "sort_key": sort_key(f"User {i}"), "role": "member", "unreachable": False,
                     "created_at": now} for i in range(users)]
            s.execute(insert(User), rows)
            ids = dict(s.execute(select(User.aad_object_id, User.id).where(User.account_id == account_id)).all())
            addresses, outbox = [], []
            for i, r in enumerate(rows):
                aad, uid = r["aad_object_id"], ids[r["aad_object_id"]]
                chat = personal_chat_id(aad, tid)
                if i < users - without_address:
                    addresses.append({"user_id": uid, "updated_at": now, **address_columns(stored_address({
                        "channelId": "msteams", "serviceUrl": service_url, "locale": "en-US",
                        "bot": {"id": BOT_ID, "name": "License Desk"},
                        "user": {"id": f"29:{aad}", "aadObjectId": aad},
                        "conversation": {"id": chat, "conversationType": "personal", "tenantId": tid}}))})
                for m in range(messages_per_user):
                    outbox.append({"account_id": account_id, "channel": "chat", "kind": "license_upgraded",
                                   "user_id": uid, "dedupe_key": f"fanout:{tid}:{aad}:{m}", "status": "pending",
                                   "attempts": 0, "available_at": now, "created_at": now,
                                   "payload": {"quote_id": f"q{k}", "from_plan": "eco", "to_plan": "pro",
                                               "effective": now.isoformat()}})
            if addresses:
                s.execute(insert(DeliveryAddress), addresses)
            s.execute(insert(OutboxMessage), outbox)
            got = s.execute(select(OutboxMessage.id, OutboxMessage.user_id).where(
                OutboxMessage.account_id == account_id).order_by(OutboxMessage.id)).all()
            aad_of = {v: a for a, v in ids.items()}
            out.tenants.append(tid)
            out.account_ids.append(account_id)
            out.by_tenant[tid] = [i for i, _ in got]
            for oid, uid in got:
                out.outbox_ids.append(oid)
                out.users[oid] = aad_of[uid]
                out.chats[oid] = personal_chat_id(aad_of[uid], tid)

    lic.db.write(work)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run the notifier against a database until killed.")
    ap.add_argument("database_url")
    ap.add_argument("--lease", type=float, default=60.0, help="outbox lease, seconds")
    ap.add_argument("--idle", type=float, default=1.0, help="poll interval when nothing is due, seconds")
    ap.add_argument("--concurrency", type=int, default=32, help="accounts delivered in parallel")
    ap.add_argument("--log", default="WARNING")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log.upper(), format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")

    from bootstrap import build_licensing
    from bot.notifier import Notifier
    from bot.transport import build_adapter
    from core.config import Settings
    from dialogs.router import Router

    settings = Settings(MicrosoftAppId="", DATABASE_URL=args.database_url)
    lic = build_licensing(settings, with_gateway=False)

    async def run() -> None:
        adapter = build_adapter(settings)
        notifier = Notifier(adapter, Router(lic), lic, app_id=settings.app_id, concurrency=args.concurrency,
                            lease=timedelta(seconds=args.lease))
        task = asyncio.current_task()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        print(f"ready {notifier.worker}", flush=True)
        try:
            await notifier.run_forever(idle=args.idle)
        except asyncio.CancelledError:
            pass
        finally:
            await adapter.bot_framework_authentication.close()

    asyncio.run(run())
    lic.db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
