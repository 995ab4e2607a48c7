"""The fan-out row of the benchmark: 10,000 notifications through the throttling connector.

    python -m bench.fanout [--tenants 5] [--users 2000]

5 tenants of 2,000 users each, one ``license_upgraded`` notice per user, every user with a
stored 1:1 address (one POST per notice). The throttling fake Bot Connector
(``tests/fakes/throttling_connector.py``: Teams' limits, 429 beyond) runs in this process;
the notifier runs in its own (``tests/outbox_worker.py``, the real notifier, SQLite file).

Why 5 tenants: the tenants run in parallel at 30 messages/s each, so the fan-out needs
30 x tenants messages/s from one notifier process. A message costs it about 3.5 ms of CPU
(botbuilder's turn, msrest's (de)serialisation, aiohttp; the notifier's own part is small),
so one process sends at most about 250-280 messages/s on this 2-CPU machine, with the fake
connector on the other CPU: 20 tenants (600/s) would measure the CPU, not the pacing. 5
tenants (150/s) leave headroom; the minimum is then 66 s.

The minimum the limits allow: a tenant takes 30 messages per moving second, so its n messages
need ``ceil(n / 30) - 1`` seconds from its first POST to its last; the fan-out's minimum is
the largest over the tenants (each user gets one message: the per-chat limits never bind).
Wall time: from the first POST the fake accepted to the last one. Lost: notifications never
delivered; duplicated: deliveries beyond one per notification (by ``notificationId``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TENANT_RATE = 30  # per second (Teams, per app per tenant)


async def _run(tenants: int, users: int, workdir: Path, timeout: float) -> dict:
    from core.catalog import Catalog
    from core.db import Database
    from core.licensing import Licensing
    from core.migrate import upgrade
    from tests.fakes.throttling_connector import ThrottlingConnector
    from tests.outbox_worker import seed_outbox

    url = f"sqlite:///{workdir / 'fanout.db'}"
    upgrade(url)
    lic = Licensing(Database(url), Catalog.load(), None)
    fake = await ThrottlingConnector().start()
    proc = None
    log = open(workdir / "worker.log", "w")  # noqa: SIM115 - closed below
    try:
        seeded = seed_outbox(lic, fake.service_url, tenants=tenants, users=users)
        total = len(seeded.outbox_ids)
        proc = subprocess.Popen([sys.executable, "-m", "tests.outbox_worker", url, "--idle", "0.2"], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=log, text=True)
        line = await asyncio.to_thread(proc.stdout.readline)
        if not line.startswith("ready"):
            raise RuntimeError(f"the notifier did not start: {line!r}")
        ready = time.monotonic()
        deadline = ready + timeout
        while time.monotonic() < deadline:
            counts = await asyncio.to_thread(lic.outbox.counts)
            if counts.get("pending", 0) == 0:
                break
            await asyncio.sleep(0.05)
        done = time.monotonic()
        counts = lic.outbox.counts()
        delivered = fake.deliveries()
        sends = [a for a in fake.accepted if a.kind in ("send", "reply")]
        wall = (sends[-1].at - sends[0].at) if sends else float("nan")
        minimum = max(math.ceil(len(ids) / TENANT_RATE) - 1 for ids in seeded.by_tenant.values())
        expected = {str(i) for i in seeded.outbox_ids}
        return {
            "notifications": total, "tenants": tenants, "users_per_tenant": users,
            "wall_s": wall, "minimum_s": float(minimum), "ready_to_drained_s": done - ready,
            "lost": len(expected - set(delivered)), "duplicated": sum(n - 1 for n in delivered.values() if n > 1),
            "unexpected": len(set(delivered) - expected), "throttled_429": fake.throttled(),
            "violations": len(fake.violations), "outbox": counts,
            "max_in_flight_per_tenant": max(fake.max_in_flight.values(), default=0),
        }
    finally:
        if proc is not None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
        log.close()
        await fake.close()
        lic.db.dispose()


def measure(tenants: int = 5, users: int = 2000, timeout: float = 300.0) -> dict:
    """The figures of the row (``bench/run.py``): wall_s, minimum_s, lost, duplicated, ..."""
    try:
        with tempfile.TemporaryDirectory(prefix="fanout-") as tmp:
            return asyncio.run(_run(tenants, users, Path(tmp), timeout))
    except Exception as e:  # noqa: BLE001 - reported in the table
        return {"error": f"{type(e).__name__}: {e}"[:200]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tenants", type=int, default=5)
    ap.add_argument("--users", type=int, default=2000)
    args = ap.parse_args(argv)
    r = measure(args.tenants, args.users)
    print(json.dumps(r, indent=1))
    if "error" in r:
        return 1
    ok = r["wall_s"] <= r["minimum_s"] * 1.10 and r["lost"] == 0 and r["duplicated"] == 0
    print(f"fan-out of {r['notifications']:,}: {r['wall_s']:.1f} s against a minimum of {r['minimum_s']:.1f} s "
          f"({r['wall_s'] / r['minimum_s']:.2f}x), {r['lost']} lost, {r['duplicated']} duplicated, "
          f"{r['throttled_429']} throttled (load avg {os.getloadavg()[0]:.1f}) -> {'ok' if ok else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
