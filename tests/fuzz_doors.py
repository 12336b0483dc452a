"""The fuzzer of every HTTP door: requests made from carebot/openapi.yaml, most of them validly
signed so that they reach the parsers, the rest unsigned or signed wrongly, sent to the
service with every door open (tests/every_door.py).

Each case picks a door (an operation of the spec, weighted toward the platforms' webhooks),
draws its path and query parameters and its body from the spec's schemas
(tests/schema_strategies.py), aims part of them at what the service knows (its accounts, its
conversations, its Slack agent) so that they get past "not ours", breaks some of them, signs
the request (or not) as the door's callers do, sends it and checks:

* the answer is not a 5xx;
* nothing was logged at ERROR or above by carebot, aiohttp, slack_bolt or asyncio (a crash:
  an exception that reached the top of a handler or a task);
* after a request without a valid signature (or session), no table a door writes holds one
  row more (tests/every_door.py COUNTED).

Hypothesis draws the cases (derandomized: the same cases every run) on a thread of its own;
each is sent on the service's event loop. :func:`fuzz` returns the :class:`Tally`: per door,
the cases by signing mode and by what was broken, the answers' statuses, and the failures of
each check. With ``stop_at_first``, the first failing case is shrunk and raised instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from yarl import URL

from tests.every_door import (
    ACCOUNTS,
    GARBAGE,
    MIS_SIGNED,
    OPEN,
    SIGNED,
    SLACK_AGENT,
    SLACK_CHANNEL,
    STALE,
    TAMPERED,
    UNSIGNED,
    WRONG_SECRET,
    X_BRAND,
    Doors,
    Request,
    visitor_token,
)
from tests.schema_strategies import (
    Draw,
    Json,
    Schemas,
    broken_form,
    broken_json,
    broken_query,
    form_body,
    percent,
    spec,
    words,
)

# How each door's callers prove who they are (operationId -> tests/every_door.py SCHEMES);
# operations with `security: session` use the inbox's session, the rest are open.
SCHEMES = {
    "webhookInbound": "webhook",
    "metaVerify": "meta",
    "metaEvents": "meta",
    "whatsappMedia": "wa-media",
    "xEvents": "x",
    "telegramWebhook": "telegram",
    "telegramFile": "telegram-file",
    "slackEvents": "slack",
    "webchatSocket": "webchat",
    "login": "login",
    "metrics": "bearer",
}
# How many times more often than another door each is fuzzed (the platforms' webhooks, the
# web chat and the inbox's actions most; pages that compute reports least).
WEIGHTS = {
    "webhookInbound": 12,
    "metaEvents": 14,
    "xEvents": 9,
    "telegramWebhook": 12,
    "slackEvents": 12,
    "webchatSocket": 10,
    "act": 6,
    "note": 2,
    "addLabel": 2,
    "assign": 2,
    "transfer": 2,
    "saveIntent": 2,
    "tryIntent": 2,
}
MODES = (SIGNED,) * 8 + (UNSIGNED, MIS_SIGNED)
WRONGS = (WRONG_SECRET, TAMPERED, STALE, GARBAGE)
WATCHED = ("carebot", "aiohttp", "slack_bolt", "asyncio")  # an ERROR from these is a crash
STATIC = ("inbox.js", "inbox.css", "console.js", "chart.umd.min.js", "../secret_key", "nope.js")
CASE_TIMEOUT = 60.0


@dataclass(frozen=True)
class Door:
    """One operation of the spec."""

    operation_id: str
    method: str
    path: str
    operation: Mapping[str, Any]
    scheme: str

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def websocket(self) -> bool:
        return "101" in self.operation.get("responses", {})


def doors_of(document: Mapping[str, Any]) -> list[Door]:
    """Every operation of the spec, with how its callers sign."""
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post"):
                continue
            op_id = operation["operationId"]
            secured = any("session" in need for need in operation.get("security", ()))
            scheme = SCHEMES.get(op_id, "session" if secured else OPEN)
            found.append(Door(op_id, method.upper(), path, operation, scheme))
    return found


@dataclass
class Case:
    door: Door
    mode: str  # signed, unsigned, mis-signed, open
    how: str  # the way a mis-signed request is wrong
    request: Request
    broken: str  # what was broken ("valid": nothing)
    frames: list[str] = field(default_factory=list)  # web chat: frames after the hello
    hello: dict[str, Any] | None = None  # web chat: the hello frame (its token set on sending)
    visitor: int = 0  # web chat: which known visitor a signed hello resumes (0: a new one)
    query_suffix: str = ""


# --- drawing a case ------------------------------------------------------------------------------


class CaseMaker:
    def __init__(self, document: Mapping[str, Any]) -> None:
        self.schemas = Schemas(document)
        self.doors = doors_of(document)
        self.weighted = [d for d in self.doors for _ in range(WEIGHTS.get(d.operation_id, 1))]

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: Draw) -> Case:
            return self.draw(draw)

        return cases()

    def draw(self, draw: Draw) -> Case:
        door = draw(st.sampled_from(self.weighted))
        mode = OPEN if door.scheme == OPEN else draw(st.sampled_from(MODES))
        if door.scheme == "webchat" and mode == UNSIGNED:
            mode = SIGNED  # a hello without a token is a new visitor's: nothing to sign
        how = draw(st.sampled_from(WRONGS))
        request = Request(door.method, self._path(draw, door))
        params = [
            (p["name"], str(draw(self.schemas.of(p["schema"]))))
            for p in self._parameters(door, "query")
            if draw(st.booleans())
        ]
        request.query, suffix = broken_query(draw, params)
        broken = "valid"
        if door.websocket:
            case = Case(door, mode, how, request, broken, query_suffix=suffix)
            if door.operation_id == "webchatSocket":
                self._frames(draw, case)
            return case
        body = door.operation.get("requestBody")
        if body is not None:
            broken = self._body(draw, door, body["content"], request)
        return Case(door, mode, how, request, broken, query_suffix=suffix)

    def _parameters(self, door: Door, where: str) -> list[Mapping[str, Any]]:
        found = [self.schemas.resolve(p) for p in door.operation.get("parameters", ())]
        return [p for p in found if p["in"] == where]

    def _path(self, draw: Draw, door: Door) -> str:
        path = door.path
        for param in self._parameters(door, "path"):
            name = param["name"]
            value: str
            if name == "id" and param["schema"].get("pattern"):  # a conversation, a revision
                value = draw(
                    st.one_of(st.integers(1, 40).map(str), self.schemas.of(param["schema"]))
                )
            elif name == "filename":
                value = draw(st.one_of(st.sampled_from(STATIC), words(1, 30)))
            else:
                value = str(draw(self.schemas.of(param["schema"])))
            path = path.replace("{" + name + "}", percent(value) if value else "x")
        return path

    def _body(self, draw: Draw, door: Door, content: Mapping[str, Any], request: Request) -> str:
        kind = draw(st.sampled_from(sorted(content)))
        value = draw(self.schemas.of(content[kind]["schema"]))
        value = aim(draw, door.operation_id, value)
        if kind == "application/json":
            request.body, broken = broken_json(draw, value)
            request.headers["Content-Type"] = draw(
                st.sampled_from(("application/json",) * 12 + OTHER_CONTENT_TYPES)
            )
            return broken
        as_json = set(content[kind].get("encoding", {}))  # fields sent as JSON text
        fields = {k: json.dumps(v) if k in as_json else v for k, v in value.items()}
        request.body, broken, request.headers["Content-Type"] = broken_form(draw, form_body(fields))
        return broken

    def _frames(self, draw: Draw, case: Case) -> None:
        frame = self.schemas.of({"$ref": "#/components/schemas/WebChatClientFrame"})
        hello = draw(self.schemas.of(WEBCHAT_HELLO))
        case.hello = hello if draw(st.integers(0, 9)) else {"type": "message", "id": "1"}
        case.visitor = draw(st.integers(0, 3))
        for _ in range(draw(st.integers(0, 3))):
            value = draw(frame)
            if value.get("type") == "message" and draw(st.booleans()):
                value["id"] = uuid.UUID(int=draw(st.integers(0, 2**64))).hex
            raw, broken = broken_json(draw, value)
            case.broken = broken if broken != "valid" else case.broken
            case.frames.append(raw.decode("utf-8", errors="replace"))


WEBCHAT_HELLO = {"$ref": "#/components/schemas/WebChatClientFrame/oneOf/0"}
OTHER_CONTENT_TYPES = (
    "application/json; charset=utf-8",
    "text/plain",
    "application/x-www-form-urlencoded",
)


def aim(draw: Draw, operation_id: str, value: Json) -> Json:
    """Most bodies addressed to what the service knows (its accounts, its conversations,
    its Slack agent), so that they are read and not ignored as someone else's."""
    if not isinstance(value, dict) or not draw(st.integers(0, 9)):
        return value
    if operation_id == "metaEvents":
        for entry in value.get("entry", ()):
            if value.get("object") in ("page", "instagram"):
                entry["id"] = ACCOUNTS["messenger" if value["object"] == "page" else "instagram"]
            for change in entry.get("changes", ()):
                if isinstance(change.get("value"), dict) and "metadata" in change["value"]:
                    change["value"]["metadata"]["phone_number_id"] = ACCOUNTS["whatsapp"]
    elif operation_id == "xEvents":
        value["for_user_id"] = X_BRAND
    elif operation_id == "telegramWebhook":
        for key in ("message", "edited_message"):
            if key in value:
                value[key]["chat"]["type"] = "private"
                value[key].setdefault("from", {"id": 7, "is_bot": False, "first_name": "Ann"})
                value[key]["from"]["is_bot"] = False
    elif operation_id == "slackEvents":
        _aim_slack(draw, value)
    return value


def _aim_slack(draw: Draw, value: dict[str, Any]) -> None:
    conversation = str(draw(st.integers(1, 40)))
    event = value.get("event")
    if isinstance(event, dict):
        event["channel"], event["user"] = SLACK_CHANNEL, SLACK_AGENT
    if "user_id" in value:  # the slash command
        value["user_id"] = SLACK_AGENT
    payload = value.get("payload")
    if isinstance(payload, dict):
        payload["user"] = {**payload.get("user", {}), "id": SLACK_AGENT}
        for action in payload.get("actions", ()):
            action["value"] = conversation
        if isinstance(payload.get("view"), dict):
            payload["view"]["private_metadata"] = conversation


# --- sending it and checking ----------------------------------------------------------------------


@dataclass
class DoorTally:
    cases: int = 0
    modes: Counter[str] = field(default_factory=Counter)
    broken: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: int = 0
    crashes: int = 0
    bad_signature_rows: int = 0
    undocumented: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0


@dataclass
class Tally:
    doors: dict[str, DoorTally] = field(default_factory=lambda: defaultdict(DoorTally))
    failures: list[str] = field(default_factory=list)  # the first few, described
    seconds: float = 0.0

    @property
    def cases(self) -> int:
        return sum(d.cases for d in self.doors.values())

    def total(self, name: str) -> int:
        return sum(int(getattr(d, name)) for d in self.doors.values())

    def modes(self) -> Counter[str]:
        return sum((d.modes for d in self.doors.values()), Counter())


class Crashes(logging.Handler):
    """Counts the records at ERROR and above from the watched loggers."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.last: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] not in WATCHED:
            return
        self.count += 1
        detail = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            where = error.__traceback__
            while where is not None and where.tb_next is not None:
                where = where.tb_next
            line = f" at {where.tb_frame.f_code.co_filename}:{where.tb_lineno}" if where else ""
            detail += f" ({error!r}"[:300] + f"{line})"
        self.last = [*self.last[-4:], f"{record.name}: {detail}"]


class Fuzzer:
    def __init__(self, doors: Doors, http: aiohttp.ClientSession, crashes: Crashes) -> None:
        self.doors = doors
        self.http = http
        self.crashes = crashes
        self.tally = Tally()
        self.visitors: list[str] = []  # web chat visitors the service gave a token
        self.root = str(doors.server.make_url("/")).rstrip("/")

    async def run(self, case: Case) -> str | None:
        """Send ``case`` and check what it did; what went wrong, or None."""
        started = time.perf_counter()
        checks_rows = case.mode in (UNSIGNED, MIS_SIGNED)
        if checks_rows:
            await self.doors.settle()
            rows = await self.doors.rows()
        crashes = self.crashes.count
        request = self.doors.sign(case.door.scheme, case.request, case.mode, case.how)
        try:
            async with asyncio.timeout(CASE_TIMEOUT):
                status = await (self._socket(case) if case.door.websocket else self._send(case))
        except TimeoutError:
            status = 599  # no answer: counted with the 5xx
        await self.doors.settle()
        problems = []
        tally = self.tally.doors[case.door.name]
        tally.cases += 1
        tally.modes[case.mode] += 1
        tally.broken[case.broken] += 1
        tally.statuses[status] += 1
        if str(status) not in case.door.operation.get("responses", {}):
            tally.undocumented[status] += 1
        if status >= 500:
            tally.server_errors += 1
            problems.append(f"answered {status}")
        if self.crashes.count != crashes:
            tally.crashes += 1
            new = self.crashes.last[-min(self.crashes.count - crashes, len(self.crashes.last)) :]
            problems.append("logged " + " | ".join(new))
        if checks_rows and await self.doors.rows() != rows:
            tally.bad_signature_rows += 1
            problems.append("stored rows although it was " + case.mode)
        tally.seconds += time.perf_counter() - started
        if not problems:
            return None
        found = f"{case.door.name} ({case.mode}, {case.broken}): {'; '.join(problems)}; " + (
            f"request {request.method} {self._url(case)} {request.headers} "
            f"{(request.body or b'')[:300]!r} frames {case.frames[:3]}"
        )
        if len(self.tally.failures) < 20:
            self.tally.failures.append(found)
        return found

    def _url(self, case: Case) -> URL:
        query = "&".join(f"{percent(k)}={percent(v)}" for k, v in case.request.query)
        query += case.query_suffix
        return URL(self.root + case.request.path + (f"?{query}" if query else ""), encoded=True)

    def _headers(self, request: Request) -> dict[str, str]:
        headers = dict(request.headers)
        if request.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in request.cookies.items())
        return headers

    async def _send(self, case: Case) -> int:
        request = case.request
        async with self.http.request(
            request.method,
            self._url(case),
            data=request.body,
            headers=self._headers(request),
            skip_auto_headers=("Content-Type",),
            allow_redirects=False,
        ) as answer:
            await answer.read()
            return answer.status

    async def _socket(self, case: Case) -> int:
        try:
            ws = await self.http.ws_connect(self._url(case), headers=self._headers(case.request))
        except aiohttp.WSServerHandshakeError as refused:
            return refused.status
        try:
            if case.hello is not None:
                await self._hello(ws, case)
            for frame in case.frames:
                if ws.closed:  # a forged token: the service closed the socket
                    break
                await ws.send_str(frame)
        finally:
            await ws.close()  # answered once the server has handled every frame before it
        return 101

    async def _hello(self, ws: aiohttp.ClientWebSocketResponse, case: Case) -> None:
        hello = dict(case.hello or {})
        if hello.get("type") == "hello":
            known = self.visitors[case.visitor % len(self.visitors)] if self.visitors else None
            if case.mode == MIS_SIGNED:
                hello["token"] = visitor_token(self.doors, known or "v-forged", MIS_SIGNED)
            elif case.visitor and known:
                hello["token"] = visitor_token(self.doors, known, SIGNED)
            else:
                hello["token"] = None
        await ws.send_str(json.dumps(hello))
        with contextlib.suppress(TimeoutError, TypeError, ValueError):
            answer = await ws.receive_json(timeout=10.0)
            if answer.get("type") == "welcome" and len(self.visitors) < 50:
                visitor = self.doors.signer("webchat-visitor").verify(answer["token"])
                if visitor:
                    self.visitors.append(visitor)


async def fuzz(
    doors: Doors, *, cases: int, seed_value: int = 0, stop_at_first: bool = False
) -> Tally:
    """Send ``cases`` cases to ``doors`` (the same ones for the same ``seed_value``)."""
    loop = asyncio.get_running_loop()
    crashes = Crashes()
    logging.getLogger().addHandler(crashes)
    maker = CaseMaker(spec())
    jar = aiohttp.DummyCookieJar()  # every case sends the cookies it means to, no others
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        fuzzer = Fuzzer(doors, http, crashes)
        phases = (Phase.generate, Phase.shrink) if stop_at_first else (Phase.generate,)

        @seed(seed_value)
        @settings(
            max_examples=cases,
            database=None,
            deadline=None,
            phases=phases,
            suppress_health_check=list(HealthCheck),
            derandomize=False,
            report_multiple_bugs=False,
        )
        @given(maker.strategy())
        def one(case: Case) -> None:
            found = asyncio.run_coroutine_threadsafe(fuzzer.run(case), loop).result()
            if found is not None and stop_at_first:
                raise AssertionError(found)

        started = time.perf_counter()
        try:
            await asyncio.to_thread(one)
        finally:
            fuzzer.tally.seconds = time.perf_counter() - started
            logging.getLogger().removeHandler(crashes)
    return fuzzer.tally


def report(tally: Tally) -> str:
    """The tally as a table, a line per door."""
    lines = [
        f"{'door':42} {'cases':>6} {'signed':>6} {'unsig':>6} {'mis':>5} {'5xx':>4} "
        f"{'crash':>5} {'rows':>4} {'secs':>6}  statuses",
    ]
    for name in sorted(tally.doors, key=lambda n: -tally.doors[n].cases):
        door = tally.doors[name]
        signed = door.modes[SIGNED] + door.modes[OPEN]
        statuses = " ".join(f"{s}:{n}" for s, n in sorted(door.statuses.items()))
        lines.append(
            f"{name[:42]:42} {door.cases:6} {signed:6} {door.modes[UNSIGNED]:6} "
            f"{door.modes[MIS_SIGNED]:5} {door.server_errors:4} {door.crashes:5} "
            f"{door.bad_signature_rows:4} {door.seconds:6.1f}  {statuses}"
        )
    modes = tally.modes()
    lines.append(
        f"{'all':42} {tally.cases:6} {modes[SIGNED] + modes[OPEN]:6} {modes[UNSIGNED]:6} "
        f"{modes[MIS_SIGNED]:5} {tally.total('server_errors'):4} {tally.total('crashes'):5} "
        f"{tally.total('bad_signature_rows'):4} {tally.seconds:6.1f}"
    )
    undocumented = {n: dict(d.undocumented) for n, d in tally.doors.items() if d.undocumented}
    if undocumented:
        lines.append(f"statuses the spec does not list: {undocumented}")
    return "\n".join(lines)
