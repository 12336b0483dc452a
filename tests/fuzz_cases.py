"""The fuzzer's cases: requests to every door of carebot/openapi.yaml, drawn by hypothesis.

Each case picks a door (an operation of the spec, weighted toward the platforms' webhooks),
a signing mode (mostly signed, so that it reaches the parsers; else unsigned or signed wrongly,
in one of four ways), its path and query parameters and its body from the spec's schemas
(tests/schema_strategies.py), aimed in part at what the service knows (its accounts, its
conversations, its Slack agent) so that it gets past "not ours", and broken in one of the ways
tests/schema_strategies.py knows (or not: ``valid``). The web chat's cases are a hello and a
few frames. tests/fuzz_doors.py signs, sends and checks them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

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
    Request,
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
STATIC = ("inbox.js", "inbox.css", "console.js", "chart.umd.min.js", "../secret_key", "nope.js")


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
