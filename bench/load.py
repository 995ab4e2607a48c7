"""The load generator, run in its own process: ``python -m bench.load PLAN.json OUT.json``.

The plan is a list of scenarios ``{name, url, bodies: [activity...], concurrency, warmup,
expect_status, expect_text, seconds}``. For each: ``concurrency`` clients on one pooled aiohttp
session send the first ``warmup`` bodies (not measured), then the rest; each client sends its
next request as soon as its previous answer is read. A phase also ends after ``seconds`` (the
warm-up after half of that): no request is started after it, those in flight finish.
Latency is from the request to the last byte of the answer; throughput is measured turns over
the wall time of the measured phase.
An answer with another status, or without ``expect_text`` in its body, is counted as an error."""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import sys
import time

import aiohttp


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))  # nearest rank
    return s[k]


async def run_phase(session: aiohttp.ClientSession, url: str, bodies: list[bytes], concurrency: int,
                    expect_status: int, expect_text: bytes | None,
                    seconds: float) -> tuple[list[float], int, float, list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    it = iter(bodies)
    headers = {"Content-Type": "application/json"}
    deadline = time.perf_counter() + seconds

    async def client():
        for body in it:
            if time.perf_counter() > deadline:
                break
            t0 = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as r:
                payload = await r.read()
                status = r.status
            latencies.append(time.perf_counter() - t0)
            if status != expect_status or (expect_text and expect_text not in payload):
                errors.append(f"{status}: {payload[:200]!r}")

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, len(errors), time.perf_counter() - t0, errors[:3]


async def run(plan: list[dict]) -> list[dict]:
    out = []
    for sc in plan:
        bodies = [json.dumps(b, separators=(",", ":")).encode() for b in sc["bodies"]]
        warm, measured = bodies[:sc["warmup"]], bodies[sc["warmup"]:]
        conn = aiohttp.TCPConnector(limit=sc["concurrency"], force_close=False)
        expect = sc.get("expect_text")
        expect = expect.encode() if expect else None
        async with aiohttp.ClientSession(connector=conn) as session:
            seconds = sc.get("seconds", 3600.0)
            warm_lat, *_ = await run_phase(session, sc["url"], warm, sc["concurrency"], sc["expect_status"], expect,
                                           seconds / 2)
            lat, errors, wall, samples = await run_phase(session, sc["url"], measured, sc["concurrency"],
                                                         sc["expect_status"], expect, seconds)
        out.append({"name": sc["name"], "n": len(lat), "sent": len(warm_lat) + len(lat), "errors": errors,
                    "error_samples": samples,
                    "median_ms": statistics.median(lat) * 1000, "p99_ms": percentile(lat, 99) * 1000,
                    "rate": len(lat) / wall, "wall_s": wall})
    return out


def main(argv: list[str]) -> None:
    with open(argv[0], encoding="utf-8") as fh:
        plan = json.load(fh)
    results = asyncio.run(run(plan))
    with open(argv[1], "w", encoding="utf-8") as fh:
        json.dump(results, fh)


if __name__ == "__main__":
    main(sys.argv[1:])
