"""Benchmark: CPU time per webhook attempt of the two HTTP clients at hand, aiohttp and httpx.

Each client sends ``--requests`` small ``POST``s (a 300-byte body, 8 at a time,
kept-alive connections, the first 1 KiB of each answer read, as
``webhooks.sender`` does) to a loopback receiver running in a process of its
own, so the CPU time measured (``time.process_time``) is the client's alone.
The clients alternate, twice each, in one run.

Run from the repository root::

    .venv/bin/python benchmarks/webhook_http_client.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.webhook_delivery import ReceiverProcess

BODY = b"x" * 300
CONCURRENCY = 8


async def with_httpx(url: str, n: int) -> None:
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
        slots = asyncio.Semaphore(CONCURRENCY)

        async def one() -> None:
            async with slots:
                request = client.build_request("POST", url, content=BODY, headers={"content-type": "application/json"})
                response = await client.send(request, stream=True)
                try:
                    async for _chunk in response.aiter_bytes():
                        break
                finally:
                    await response.aclose()

        await asyncio.gather(*[one() for _ in range(n)])


async def with_aiohttp(url: str, n: int) -> None:
    async with aiohttp.ClientSession(trust_env=False) as session:
        slots = asyncio.Semaphore(CONCURRENCY)

        async def one() -> None:
            async with (
                slots,
                session.post(
                    url, data=BODY, headers={"content-type": "application/json"}, allow_redirects=False
                ) as response,
            ):
                await response.content.read(1024)

        await asyncio.gather(*[one() for _ in range(n)])


def measure(send: Callable[[str, int], Awaitable[None]], url: str, n: int) -> tuple[float, float]:
    """(CPU ms per request, requests per second of wall time)."""
    cpu, wall = time.process_time(), time.perf_counter()
    asyncio.run(send(url, n))
    return (time.process_time() - cpu) / n * 1000, n / (time.perf_counter() - wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per client and round")
    args = parser.parse_args()
    print(f"{platform.machine()} {os.cpu_count()} cores (shared), {args.requests} requests per round")
    with ReceiverProcess() as receiver:
        measure(with_aiohttp, receiver.url, 100)  # warm-up: the receiver's first connections
        rows = []
        for name, send in (("aiohttp", with_aiohttp), ("httpx", with_httpx)) * 2:
            cpu_ms, rate = measure(send, receiver.url, args.requests)
            rows.append((name, cpu_ms, rate))
            print(f"  {name}: {cpu_ms:.2f} ms CPU per request, {rate:.0f} requests/s", flush=True)
        received = len(receiver.accepted())
    print(f"\nreceiver accepted {received} requests")
    for name in ("aiohttp", "httpx"):
        cpu = [c for n, c, _r in rows if n == name]
        print(f"| {name} | {sum(cpu) / len(cpu):.2f} ms CPU per request |")


if __name__ == "__main__":
    main()
