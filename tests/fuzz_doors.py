"""The fuzzer of every HTTP door: the cases of tests/fuzz_cases.py (requests made from
carebot/openapi.yaml, most validly signed so that they reach the parsers, the rest unsigned or
signed wrongly), signed as each door's callers sign (tests/every_door.py), sent to the service
with every door open, and checked:

* the answer is not a 5xx;
* nothing was logged at ERROR or above by carebot, aiohttp, slack_bolt or asyncio (a crash:
  an exception that reached the top of a handler or a task);
* after a request without a valid signature (or session), no table a door writes holds one
  row more (tests/every_door.py COUNTED).

Hypothesis draws the cases (seeded: the same cases every run) on a thread of its own; each is
sent on the service's event loop. :func:`fuzz` returns the :class:`Tally`: per door, the cases
by signing mode and by what was broken, the answers' statuses, and the failures of each check.
With ``stop_at_first``, the first failing case is shrunk and raised instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import aiohttp
from hypothesis import HealthCheck, Phase, given, seed, settings
from yarl import URL

from tests.every_door import MIS_SIGNED, OPEN, SIGNED, UNSIGNED, Doors, Request, visitor_token
from tests.fuzz_cases import Case, CaseMaker
from tests.schema_strategies import percent, spec

WATCHED = ("carebot", "aiohttp", "slack_bolt", "asyncio")  # an ERROR from these is a crash
CASE_TIMEOUT = 60.0


@dataclass
class DoorTally:
    cases: int = 0
    modes: Counter[str] = field(default_factory=Counter)
    broken: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: int = 0
    crashes: int = 0
    bad_signature_rows: int = 0
    other_errors: int = 0  # ERROR lines without an exception (not a crash)
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
    """Counts the records at ERROR and above from the watched loggers that carry an exception
    (a crash: aiohttp's "Error handling request", bolt's "Failed to run listener function",
    carebot's own ``log.exception``); those without one (the outbox's "refused for good" when
    a platform stand-in knows no such user) are counted apart, as ``other``."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.other = 0
        self.last: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] not in WATCHED:
            return
        if not record.exc_info or record.exc_info[1] is None:
            self.other += 1
            return
        self.count += 1
        error = record.exc_info[1]
        where = error.__traceback__
        while where is not None and where.tb_next is not None:
            where = where.tb_next
        line = f" at {where.tb_frame.f_code.co_filename}:{where.tb_lineno}" if where else ""
        detail = f"{record.getMessage()} ({error!r}"[:400] + f"{line})"
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
        request = await self._signed(case)
        checks_rows = case.mode in (UNSIGNED, MIS_SIGNED)
        if checks_rows:
            await self.doors.settle()
            rows = await self.doors.rows()
        crashes, other = self.crashes.count, self.crashes.other
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
        tally.other_errors += self.crashes.other - other
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

    async def _signed(self, case: Case) -> Request:
        """The case's request signed; a logout with a session of its own (the one the other
        cases use stays open)."""
        if case.door.operation_id != "logout":
            return self.doors.sign(case.door.scheme, case.request, case.mode, case.how)
        shared, self.doors.agent = self.doors.agent, await self.doors.new_login()
        try:
            return self.doors.sign(case.door.scheme, case.request, case.mode, case.how)
        finally:
            self.doors.agent = shared

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
    if tally.total("other_errors"):
        lines.append(
            f"ERROR lines without an exception (not crashes): {tally.total('other_errors')}"
        )
    undocumented = {n: dict(d.undocumented) for n, d in tally.doors.items() if d.undocumented}
    if undocumented:
        lines.append(f"statuses the spec does not list: {undocumented}")
    return "\n".join(lines)
