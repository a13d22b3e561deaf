"""``python -m backend_app webhook-listen``: a development receiver printing each verified delivery as it arrives.

Listens on ``127.0.0.1:PORT/hook``, verifies every request with the
maintained ``standardwebhooks`` package (``Webhook(secret).verify``), prints
one line per delivery (time, type, entity and version, ``webhook-id``) and
answers ``204``; a request that does not verify is printed as refused and
answered ``400`` (so the sender retries it). Register
``http://127.0.0.1:PORT/hook`` as an endpoint with
``WEBHOOK_ALLOW_PRIVATE_URLS=true`` (development only).
"""

from __future__ import annotations

import contextlib
import json
import threading

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from backend_app.devtools.webhook_receiver import Answer, Receiver


def describe(payload: dict) -> str:
    """One line for a verified envelope."""
    entity = payload.get("entity", {})
    line = f"{payload['created_at']}  {payload['type']:<22} {entity.get('type')}/{entity.get('id')} v{entity.get('version')}"
    return line + ("  " + json.dumps(payload["data"]) if payload["type"] == "ping" else "")


def listen(*, secret: str, port: int) -> None:
    """Serve until Ctrl-C, printing verified deliveries."""
    verifier = Webhook(secret)

    def on_request(headers: dict[str, str], body: bytes) -> Answer:
        try:
            payload = verifier.verify(body, headers)
        except WebhookVerificationError as exc:
            print(f"REFUSED webhook-id={headers.get('webhook-id', '?')}: {exc}", flush=True)
            return 400, {}, b"signature does not verify", 0.0
        print(f"{describe(payload)}  webhook-id={headers['webhook-id']}", flush=True)
        return 204, {}, b"", 0.0

    with Receiver(on_request=on_request, port=port) as receiver:
        print(
            f"listening on {receiver.url}; deliveries are verified with standardwebhooks (Ctrl-C to stop)", flush=True
        )
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
