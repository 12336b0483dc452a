"""What Slack POSTs to ``/slack/events``, checked before slack-bolt reads it.

slack-bolt and the desk's listeners read what Slack's requests always carry (a button's user
and action, a modal's state, a slash command's ``response_url``) without checking it. A signed
request of another shape (a leaked signing secret, or Slack changing a format) made them fail
after bolt had answered, or made bolt wait 3 s for an acknowledgement that never came and
answer 404; a body bolt cannot parse made the handler fail with 500. So the desk reads the
body the way bolt does (:func:`slack_bolt.request.internals.parse_body`) and checks the parts
that are read: :func:`readable` says what is wrong with a request, field by field, without
quoting its values (an agent's reply, a customer's words), or gives its body for bolt, its text
made storable (a NUL in a thread's ts failed the desk's query on PostgreSQL).

Read and checked: an Events API body (``url_verification``, ``event_callback`` with its
``event``); an interaction (``payload=<JSON>``): ``block_actions`` (the user, the actions and,
for the desk's buttons, the conversation or message number each carries),
``view_submission`` (the view, its state and, for the desk's modals, the conversation number
in ``private_metadata``), ``message_action`` (the "Add to FAQ" shortcut); a slash command (its
user and ``response_url``). Fields carebot does not read are ignored; other event and
interaction types are left to bolt (which answers 404 when nothing listens).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from carebot.desk.slack import card as cards
from carebot.desk.slack import public_card
from carebot.store import storable
from carebot.store.tables import LARGEST_ID

TOLERANCE = 300  # seconds a request's timestamp may be off (older: a replay)
# The desk's buttons whose value is a conversation's number, and those with a message's.
CONVERSATION_BUTTONS = (
    cards.SEND_DRAFT,
    cards.EDIT_DRAFT,
    cards.TAKE_OVER,
    cards.RESOLVE,
    cards.CLOSE,
    cards.TRANSFER,
)
MESSAGE_BUTTONS = (cards.LABEL_UPSET, cards.LABEL_NOT_UPSET)
JSON_BUTTONS = (cards.TAKE_FROM_COLLEAGUE, public_card.HIDE, public_card.UNHIDE)
DESK_VIEWS = (cards.EDIT_VIEW, cards.TRANSFER_VIEW)


def _http_url(value: str) -> str:
    if not value:  # none given (a button in a modal; the desk's own tests)
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http(s) address")
    return value


def _number(value: str) -> str:
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= LARGEST_ID:
        raise ValueError(f"must be a number from 1 to {LARGEST_ID}")
    return value


Id = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Url = Annotated[str, AfterValidator(_http_url)]
Number = Annotated[str, AfterValidator(_number)]
NUMBER = TypeAdapter(Number)


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Person(_Part):
    id: Id


class Ref(_Part):
    id: str


class Action(_Part):
    action_id: str
    block_id: str = ""
    value: str = ""

    @model_validator(mode="after")
    def _value_fits_the_button(self) -> Action:
        if self.action_id in (*CONVERSATION_BUTTONS, *MESSAGE_BUTTONS):
            NUMBER.validate_python(self.value)
        elif self.action_id in JSON_BUTTONS:
            _ASKED.validate_json(self.value)
        return self


class Asked(_Part):
    """The value of the desk's buttons that carry more than a number."""

    conversation: int | Number
    message: int | Number | None = None
    do: str = ""
    text: str | None = None

    @model_validator(mode="after")
    def _numbers_in_range(self) -> Asked:
        for value in (self.conversation, self.message):
            if value is not None:
                NUMBER.validate_python(str(value))
        return self


_ASKED = TypeAdapter(Asked)


class BlockActions(_Part):
    type: Literal["block_actions"]
    user: Person
    actions: Annotated[tuple[Action, ...], Field(min_length=1)]
    trigger_id: Id  # what a modal is opened with (Edit, Transfer)
    response_url: Url | None = None
    channel: Ref | None = None
    container: dict[str, Any] | None = None
    message: dict[str, Any] | None = None


class State(_Part):
    values: dict[str, dict[str, dict[str, Any]]]


class View(_Part):
    type: str  # modal, home, workflow_step
    callback_id: str
    private_metadata: str = ""
    state: State

    @model_validator(mode="after")
    def _desk_views_name_their_conversation(self) -> View:
        if self.callback_id in DESK_VIEWS:
            NUMBER.validate_python(self.private_metadata)
        return self


class ViewSubmission(_Part):
    type: Literal["view_submission"]
    user: Person
    view: View


class ShortcutMessage(_Part):
    ts: str
    thread_ts: str | None = None
    text: str | None = None
    user: str | None = None


class MessageAction(_Part):
    type: Literal["message_action"]
    callback_id: str
    user: Person
    channel: Ref
    message: ShortcutMessage
    response_url: Url | None = None
    trigger_id: str = ""


class OtherInteraction(_Part):
    """An interaction the desk does not listen to (bolt answers it 404)."""

    type: str


class SlashCommand(_Part):
    command: str
    text: str = ""
    user_id: Id
    response_url: Annotated[Url, StringConstraints(min_length=1)]  # the answer goes there
    trigger_id: str = ""


class Event(_Part):
    type: str
    subtype: str | None = None
    channel: str | None = None
    user: str | None = None
    bot_id: str | None = None
    text: str | None = None
    ts: str | None = None
    thread_ts: str | None = None
    parent_user_id: str | None = None


class EventCallback(_Part):
    type: Literal["event_callback"]
    event_id: str = ""
    team_id: str = ""
    event: Event


class UrlVerification(_Part):
    type: Literal["url_verification"]
    challenge: str


class OtherEnvelope(_Part):
    """An Events API body the desk does not read (``app_rate_limited``...)."""

    type: str


INTERACTIONS: dict[str, type[_Part]] = {
    "block_actions": BlockActions,
    "view_submission": ViewSubmission,
    "message_action": MessageAction,
}
ENVELOPES: dict[str, type[_Part]] = {
    "event_callback": EventCallback,
    "url_verification": UrlVerification,
}


def signed(secret: str, raw: bytes, timestamp: str, signature: str, *, now: float) -> bool:
    """Whether ``signature`` is Slack's for ``raw`` at ``timestamp`` (``v0=`` + hex
    HMAC-SHA256 of ``v0:{timestamp}:{body}``), made within :data:`TOLERANCE` seconds. The raw
    bytes are signed, whatever they hold (slack_sdk's verifier fails on a body that is not
    UTF-8)."""
    if not (timestamp.isascii() and timestamp.isdigit()) or abs(now - int(timestamp)) > TOLERANCE:
        return False
    mac = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + raw, hashlib.sha256)
    return hmac.compare_digest(("v0=" + mac.hexdigest()).encode(), signature.encode())


class Malformed(ValueError):
    """A body that is not what Slack sends; the message says what is wrong, field by field."""


def readable(raw: bytes, content_type: str | None) -> str:
    """The body of a request, checked as bolt will read it, with its text made storable (no
    NUL, no lone surrogate: :mod:`carebot.store.storable`), for bolt to read; raises
    :class:`Malformed` naming what is wrong."""
    try:
        body = raw.decode()
    except UnicodeDecodeError:
        raise Malformed("the body is not UTF-8") from None
    if not body:
        raise Malformed("the body is empty")
    try:
        if content_type == "application/json" or body.startswith("{"):
            envelope = _checked(json.loads(body), ENVELOPES, OtherEnvelope, "")
            return json.dumps(envelope)
        form = dict(parse_qsl(body, keep_blank_values=True))
        if "payload" in body:  # bolt's own test: then the payload field, or nothing
            if "payload" not in form:
                raise Malformed("payload: a form with 'payload' in it needs the field 'payload'")
            payload = _checked(
                json.loads(form["payload"]), INTERACTIONS, OtherInteraction, "payload."
            )
            return urlencode({"payload": json.dumps(payload)})
        return urlencode(_checked(form, {}, SlashCommand, ""))
    except RecursionError:
        raise Malformed("not JSON: nested too deeply") from None
    except Malformed:
        raise
    except ValueError as exc:  # not JSON (json.JSONDecodeError is a ValueError)
        raise Malformed(f"not JSON: {type(exc).__name__}") from None


def _checked(
    data: Any, models: dict[str, type[_Part]], other: type[_Part], where: str
) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise Malformed(f"{where or 'the body'}: must be a JSON object")
    kind = data.get("type")
    model = models.get(kind, other) if isinstance(kind, str) else other
    try:
        model.model_validate(data)
    except ValidationError as exc:
        raise Malformed(_problems(exc, where)) from None
    cleaned: dict[str, Any] = storable.value(data)
    return cleaned


def _problems(exc: ValidationError, where: str) -> str:
    found = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        path = where + ".".join(str(part) for part in error["loc"])
        found.append(f"{path.rstrip('.')}: {error['msg']}")
    return "; ".join(found)
