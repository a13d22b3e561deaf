"""One placement leader per database: every API process hands its orders to the leader's batcher.

Each process batches the orders it receives into one transaction (``orders.placement``).
With several processes, batches of different processes that touch one product (or one
owner's holds) conflict, and the loser runs again: more processes, fewer orders per
second on a hot product. Here the processes elect one leader with a lease in MongoDB
(``core.leases``); the others send each validated order to the leader's internal
endpoint, so every order of the cluster joins the same batches.

The lease is only a hint. Every order carries its ``_id`` from the process that
received it: when the leader cannot be reached or fails, that process places the
order itself under the same ``_id``, and a duplicate ``_id`` means the order was
already placed. So a leader dying, two leaders at once (clock skew, a paused
process) or a lost answer never place an order twice or lose one; they only cost
the conflicts this design otherwise avoids. Design and failure cases:
docs/architecture.md (Orders and stock) ("One placement leader").
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvicorn
from bson import ObjectId
from fastapi.encoders import jsonable_encoder
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from backend_app.core import leases
from backend_app.core.db import MongoDatabase
from backend_app.core.errors import DomainError
from backend_app.idempotency import service as idempotency
from backend_app.orders.allocation import Line
from backend_app.orders.batch_checks import Limits, OrderToPlace

logger = logging.getLogger(__name__)

#: The lease of group ``g`` is ``order-placement:g``.
LEASE_PREFIX = "order-placement:"
#: Seconds a leader's lease lasts unless renewed; it is renewed every :data:`RENEW_EVERY_S`.
LEASE_TTL_S = 3.0
RENEW_EVERY_S = 1.0
PLACE_PATH = "/internal/orders/place"
#: Most orders one request to the leader carries (the leader's batches take 64).
MAX_FORWARDED = 64
#: What the shared signing key is bound to, so the forwarding token is useless as anything else.
TOKEN_CONTEXT = b"storefront: forwarded order placement"

#: ``(db, order)`` → the placed order's ``_id``: this process's batcher (``orders.placement.place_here``).
PlaceLocally = Callable[[MongoDatabase, OrderToPlace], Awaitable[ObjectId]]


class ForwardingFailed(Exception):
    """The process stopped while an order waited to be forwarded."""


@dataclass(slots=True)
class _Waiting:
    """An order queued for the next request to the leader, and the future its caller awaits."""

    order: OrderToPlace
    future: asyncio.Future[ObjectId]


def _wire_request(order: OrderToPlace) -> dict[str, Any]:
    claim, limits = order.claim, order.limits
    return {
        "order_id": str(order.order_id),
        "user_id": order.user_id,
        "placed_by": order.placed_by,
        "lines": [{"product_id": str(line.product_id), "size": line.size, "qty": line.qty} for line in order.lines],
        "claim": None if claim is None else {"record_id": str(claim.record_id), "token": claim.token},
        "limits": asdict(limits),
    }


def _order_from_wire(body: dict[str, Any]) -> OrderToPlace:
    claim = body.get("claim")
    return OrderToPlace(
        order_id=ObjectId(body["order_id"]),
        user_id=str(body["user_id"]),
        placed_by=str(body["placed_by"]),
        lines=[Line(ObjectId(x["product_id"]), x["size"], int(x["qty"])) for x in body["lines"]],
        claim=None
        if claim is None
        else idempotency.Claim(record_id=ObjectId(claim["record_id"]), token=str(claim["token"])),
        limits=Limits(**body["limits"]),
    )


def _is_loopback(address: str) -> bool:
    """Whether an ``http://host:port`` address names a loopback host (127.0.0.0/8, ``::1``, ``localhost``)."""
    host = (urlsplit(address).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _domain_error_classes() -> dict[str, type[DomainError]]:
    found: dict[str, type[DomainError]] = {}
    stack: list[type[DomainError]] = [DomainError]
    while stack:
        cls = stack.pop()
        found.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return found


def _refusal(payload: dict[str, Any]) -> DomainError:
    """The leader's refusal as the same domain error, so the client gets the same problem+json."""
    cls = _domain_error_classes().get(str(payload.get("code")), DomainError)
    error = cls.__new__(cls)
    DomainError.__init__(
        error, str(payload.get("detail", "")), headers=payload.get("headers"), **payload.get("extra", {})
    )
    return error


class PlacementLeader:
    """This process's part in the election, its internal endpoint, and the route each order takes.

    Args:
        db: the database whose orders are placed (one lease per database and ``group``).
        signing_key: the shared secret (``JWT_SECRET``); the internal endpoint accepts only its token.
        host: the address the internal endpoint listens on and advertises (``ORDER_FORWARD_HOST``);
            other hosts must reach it.
        timeout_s: how long a forwarded order may take before it is placed here instead.
        place_locally: this process's batcher.
        group: processes with the same ``db`` and ``group`` elect one leader (``ORDER_FORWARD_GROUP``).
    """

    def __init__(
        self,
        db: MongoDatabase,
        *,
        signing_key: str,
        host: str,
        timeout_s: float,
        place_locally: PlaceLocally,
        group: str = "default",
    ) -> None:
        self.db = db
        self.lease_name = LEASE_PREFIX + group
        self.holder = uuid.uuid4().hex
        self.host = host
        self.address = ""
        self._token = hmac.new(signing_key.encode("utf-8"), TOKEN_CONTEXT, hashlib.sha256).hexdigest()
        self._place_locally = place_locally
        self._lease: leases.Lease | None = None
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=0.5))
        self._server: uvicorn.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._outbox: list[_Waiting] = []
        self._flush_scheduled = False
        self._in_flight: set[asyncio.Task[None]] = set()

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on an ephemeral port of :attr:`host`, then take part in the election (every second)."""
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        port = sock.getsockname()[1]
        self.address = f"http://[{self.host}]:{port}" if ":" in self.host else f"http://{self.host}:{port}"
        config = uvicorn.Config(self._app(), lifespan="off", log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        # ``_serve`` is ``serve`` without taking over the process's signal handlers, which
        # belong to the main server of this process.
        self._tasks.append(asyncio.create_task(self._server._serve(sockets=[sock])))
        self._tasks.append(asyncio.create_task(self._elect()))

    async def stop_answering(self) -> None:
        """Close the internal endpoint but keep electing (and the lease, if held): to the other processes
        this leader now looks hung. They place their orders themselves until its lease lapses. For drills."""
        if self._server is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._tasks[0]), timeout=2.0)

    async def stop(self) -> None:
        """Stop listening and electing, and give the lease up if held (another process takes it at once)."""
        if self._server is not None:
            self._server.should_exit = True
        self._tasks.extend(self._in_flight)
        for task in self._tasks:
            if not task.done() and task is not self._tasks[0]:
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=2.0)
        with contextlib.suppress(Exception):
            await leases.release(self.db, name=self.lease_name, holder=self.holder)
        await self._http.aclose()

    async def _elect(self) -> None:
        while True:
            try:
                self._lease = await leases.refresh(
                    self.db,
                    name=self.lease_name,
                    holder=self.holder,
                    address=self.address,
                    ttl_s=LEASE_TTL_S,
                    known=self._lease,
                )
            except Exception:  # the database is down: place locally until it answers again
                self._lease = None
                logger.debug("placement lease not readable", exc_info=True)
            await asyncio.sleep(RENEW_EVERY_S)

    @property
    def lease(self) -> leases.Lease | None:
        """The placement lease as this process last read it (``None`` before the first read)."""
        return self._lease

    # --- placing -----------------------------------------------------------------------------------

    def leader_address(self) -> str | None:
        """The internal address to send orders to, or ``None`` to place them here.

        ``None`` when this process leads, when no lease is held, and when the leader advertises a
        loopback address from another host (``ORDER_FORWARD_HOST`` left at its default on several
        hosts): that address would name this host, not the leader.
        """
        lease = self._lease
        if lease is None or lease.holder == self.holder or not lease.address:
            return None
        if datetime.now(UTC) >= lease.expires_at:
            return None
        if lease.host and lease.host != socket.gethostname() and _is_loopback(lease.address):
            return None
        return lease.address

    async def place(self, order: OrderToPlace) -> ObjectId:
        """Place ``order`` through the leader (or here), and return its ``_id``.

        The orders a follower receives in one turn of its event loop go to the
        leader in one request (up to :data:`MAX_FORWARDED` each), sent at once
        without waiting for earlier requests: the leader's batcher groups them
        with everyone else's, so a forwarded order waits for the same batches
        as one the leader received itself, plus one round trip.

        Raises:
            the order's refusal, as the batcher raises it (whichever process placed it).
        """
        if self.leader_address() is None:
            return await self._here(order)
        loop = asyncio.get_running_loop()
        waiting = _Waiting(order, loop.create_future())
        self._outbox.append(waiting)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await asyncio.shield(waiting.future)

    def _flush(self) -> None:
        """Send what this turn of the event loop queued, :data:`MAX_FORWARDED` orders per request."""
        self._flush_scheduled = False
        queued, self._outbox = self._outbox, []
        for start in range(0, len(queued), MAX_FORWARDED):
            task = asyncio.get_running_loop().create_task(self._send(queued[start : start + MAX_FORWARDED]))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _here(self, order: OrderToPlace) -> ObjectId:
        return await self._place_locally(self.db, order)

    async def _send(self, batch: list[_Waiting]) -> None:
        """Forward ``batch`` in one request; whatever the leader did not settle is placed here."""
        try:
            outcomes = await self._forward_batch(batch)
            rest = []
            for waiting, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, ObjectId):
                    waiting.future.set_result(outcome)
                elif isinstance(outcome, DomainError):
                    waiting.future.set_exception(outcome)
                else:
                    rest.append(waiting)
            if rest:
                await asyncio.gather(*[self._settle_here(w) for w in rest])
        except BaseException as exc:
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_exception(exc if isinstance(exc, Exception) else ForwardingFailed())
            raise

    async def _settle_here(self, waiting: _Waiting) -> None:
        try:
            waiting.future.set_result(await self._here(waiting.order))
        except Exception as exc:
            waiting.future.set_exception(exc)

    async def _forward_batch(self, batch: list[_Waiting]) -> list[ObjectId | DomainError | None]:
        """Each order's outcome at the leader: its ``_id``, its refusal, or ``None`` (not settled: place it here)."""
        address = self.leader_address()
        if address is None:
            return [None] * len(batch)
        try:
            response = await self._http.post(
                address + PLACE_PATH,
                json={"orders": [_wire_request(w.order) for w in batch]},
                headers={"Authorization": f"Bearer {self._token}"},
            )
            results = response.json()["results"] if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, KeyError):
            results = None
        if results is None or len(results) != len(batch):
            logger.warning("placement leader %s did not answer; placing %d orders here", address, len(batch))
            return [None] * len(batch)
        outcomes: list[ObjectId | DomainError | None] = []
        for result in results:
            if "order_id" in result:
                outcomes.append(ObjectId(result["order_id"]))
            elif "error" in result:
                outcomes.append(_refusal(result["error"]))
            else:
                outcomes.append(None)
        return outcomes

    # --- the internal endpoint ----------------------------------------------------------------------

    def _app(self) -> Starlette:
        return Starlette(routes=[Route(PLACE_PATH, self._endpoint, methods=["POST"])])

    async def _endpoint(self, request: Request) -> JSONResponse:
        """``POST /internal/orders/place`` ``{"orders": [...]}`` → ``{"results": [...]}``, one per order, in order."""
        sent = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(sent.encode("utf-8"), self._token.encode("utf-8")):
            return JSONResponse({"code": "unauthorized"}, status_code=401)
        body = await request.json()
        results = await asyncio.gather(*[self._place_sent(_order_from_wire(o)) for o in body["orders"]])
        return JSONResponse(jsonable_encoder({"results": results}))

    async def _place_sent(self, order: OrderToPlace) -> dict[str, Any]:
        try:
            return {"order_id": str(await self._here(order))}
        except DomainError as exc:
            return {"error": {"code": exc.code, "detail": exc.detail, "extra": exc.extra, "headers": exc.headers}}
        except Exception:  # the sender places it itself, under the same _id
            logger.exception("forwarded order %s failed here", order.order_id)
            return {"failed": True}


#: The started leaders of this process, one per database.
_LEADERS: dict[tuple[int, str], PlacementLeader] = {}


def leader_for(db: MongoDatabase) -> PlacementLeader | None:
    """This process's :class:`PlacementLeader` of ``db``, or ``None`` (forwarding off: place here)."""
    return _LEADERS.get((id(db.client), db.name))


async def start_leader(leader: PlacementLeader) -> PlacementLeader:
    """Start ``leader`` (this process's part in the placement election of its database) and route orders through it."""
    await leader.start()
    _LEADERS[(id(leader.db.client), leader.db.name)] = leader
    return leader


async def stop_leader(leader: PlacementLeader) -> None:
    """Stop ``leader`` (see :meth:`PlacementLeader.stop`); its process then places orders itself."""
    _LEADERS.pop((id(leader.db.client), leader.db.name), None)
    await leader.stop()
