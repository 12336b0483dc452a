"""The far end of carebot's generic signed webhook channel, and a signer for inbound requests.

The format, implemented here independently of carebot so the tests check it from the outside:
`X-Carebot-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]` where each hex is
HMAC-SHA256(key=secret, msg=f"{t}.".encode() + raw_body). A request more than 300 s off the
clock is refused; during a key rotation the header carries several v1= entries and any one
matching is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterable
from typing import Any

import aiohttp
from aiohttp import web

from tests.loopback import Json, StandIn

SIGNATURE_HEADER = "X-Carebot-Signature"
TOLERANCE = 300  # seconds a signed request may be off the receiver's clock


def _digest(secret: str, timestamp: int, raw: bytes) -> str:
    message = f"{timestamp}.".encode() + raw
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_body(secret: str | Iterable[str], raw: bytes, *, timestamp: int | None = None) -> str:
    """The `X-Carebot-Signature` value for `raw`; several secrets give several v1= entries."""
    secrets = [secret] if isinstance(secret, str) else list(secret)
    t = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={t}", *(f"v1={_digest(s, t, raw)}" for s in secrets)])


def check_signature(
    header: str | None,
    raw: bytes,
    secrets: Iterable[str],
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE,
) -> str | None:
    """None when `header` signs `raw` with one of `secrets`, else why not: "missing",
    "malformed", "stale" or "mismatch"."""
    if not header:
        return "missing"
    parts = [part.strip().partition("=") for part in header.split(",")]
    stamps = [value for key, _, value in parts if key == "t"]
    given = [value for key, _, value in parts if key == "v1"]
    if len(stamps) != 1 or not stamps[0].lstrip("-").isdigit() or not given:
        return "malformed"
    t = int(stamps[0])
    if abs((time.time() if now is None else now) - t) > tolerance:
        return "stale"
    wanted = [_digest(secret, t, raw) for secret in secrets]
    if any(hmac.compare_digest(w, g) for w in wanted for g in given):
        return None
    return "mismatch"


class ReplyReceiver(StandIn):
    """Where carebot delivers its replies: `POST /replies`, signed with `secret`.

    Good requests land in `received` (200 `{"ok": true}`); bad or stale signatures get 401 and
    are counted in `rejected_signatures` (reasons in `rejections`); bodies answered with an
    injected failure land in `refused` instead.
    """

    def __init__(self, secret: str | Iterable[str] = "whsec-test") -> None:
        super().__init__()
        self.secrets = [secret] if isinstance(secret, str) else list(secret)
        self.received: list[Json] = []
        self.refused: list[Json] = []
        self.rejected_signatures = 0
        self.rejections: list[str] = []
        self.headers: list[dict[str, str]] = []  # headers of the received requests
        self._failures: list[tuple[int, dict[str, str]]] = []

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/replies", self._on_reply)

    @property
    def url(self) -> str:
        """The delivery URL to configure in carebot."""
        return f"{self.root}/replies"

    def fail_next(self, status: int, times: int = 1, headers: dict[str, str] | None = None) -> None:
        """Answer the next `times` requests with `status` (and `headers`, e.g. Retry-After)."""
        self._failures.extend([(status, dict(headers or {}))] * times)

    async def next_received(self, count: int = 1, timeout: float = 10.0) -> list[Json]:
        """Wait until `count` bodies were received; return the first `count`."""
        return await self._wait_count(self.received, count, timeout)

    def _describe(self) -> str:
        return (
            f"received {len(self.received)}, refused {len(self.refused)}, "
            f"rejected signatures: {self.rejections}"
        )

    async def _on_reply(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            return self._answer(request, raw)
        finally:
            await self._notify()

    def _answer(self, request: web.Request, raw: bytes) -> web.Response:
        if self._failures:
            status, headers = self._failures.pop(0)
            self.refused.append(_parse(raw))
            body = {"ok": False, "error": f"injected {status}"}
            return web.json_response(body, status=status, headers=headers)
        reason = check_signature(request.headers.get(SIGNATURE_HEADER), raw, self.secrets)
        if reason is not None:
            self.rejected_signatures += 1
            self.rejections.append(reason)
            return web.json_response({"ok": False, "error": f"signature {reason}"}, status=401)
        try:
            body = json.loads(raw)
        except ValueError:
            return web.json_response({"ok": False, "error": "invalid JSON"}, status=400)
        self.received.append(body)
        self.headers.append(dict(request.headers))
        return web.json_response({"ok": True})


def _parse(raw: bytes) -> Json:
    try:
        body = json.loads(raw)
    except ValueError:
        return {"raw": raw.decode(errors="replace")}
    return body if isinstance(body, dict) else {"raw": body}


async def post_inbound(
    url: str,
    body: Json,
    *,
    secret: str | Iterable[str] | None,
    timestamp: int | None = None,
    signature: str | None = None,
) -> tuple[int, Any]:
    """POST `body` as JSON to carebot's inbound endpoint, signed with `secret` (None: unsigned)
    unless `signature` gives the header value; returns the status and the JSON (or text)."""
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    elif secret is not None:
        headers[SIGNATURE_HEADER] = sign_body(secret, raw, timestamp=timestamp)
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=raw, headers=headers) as response,
    ):
        text = await response.text()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, text
