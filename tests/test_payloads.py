"""The typed inbound payloads on their own: what they accept, keep and refuse, and how a refusal
is described (end to end, refusals are tested in test_meta and test_webhook_channel)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from carebot.adapters import meta_payloads, webhook_payloads
from carebot.adapters.payloads import problems
from tests.graph_standin import messenger_text, whatsapp_text

SECRET_WORDS = "my card number is 4111 1111 1111 1111"


def test_the_raw_object_is_kept_with_the_fields_carebot_does_not_read() -> None:
    payload = whatsapp_text("1111", "4915112345678", "hello", message_id="wamid.1")
    [message] = payload["entry"][0]["changes"][0]["value"]["messages"]
    message["new_field"] = {"added": "later"}
    parsed = meta_payloads.parse(json.dumps(payload).encode())
    assert isinstance(parsed, meta_payloads.WhatsAppPayload)
    value = parsed.entry[0].changes[0].value
    assert value is not None
    assert value.messages[0].raw == message
    event = {"id": "e1", "user": {"id": "42"}, "text": "hi", "extra": [1]}
    assert webhook_payloads.parse(json.dumps(event).encode()).raw == event


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-11-18T09:59:30Z", datetime(2026, 11, 18, 9, 59, 30, tzinfo=UTC)),
        ("2026-11-18T09:59:30", datetime(2026, 11, 18, 9, 59, 30, tzinfo=UTC)),  # no offset
        (
            "2026-11-18T10:59:30+01:00",
            datetime(2026, 11, 18, 10, 59, 30, tzinfo=timezone(timedelta(hours=1))),
        ),
    ],
)
def test_a_webhook_time_without_an_offset_is_utc(given: str, expected: datetime) -> None:
    event = {"id": "e1", "user": {"id": "42"}, "text": "hi", "sent_at": given}
    sent_at = webhook_payloads.parse(json.dumps(event).encode()).sent_at
    assert sent_at == expected and sent_at.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "timestamp", ["soon", True, 1.5, -1, 10**20, "\uff11\uff12", "\u00b2", " 12"]
)
def test_a_time_is_a_whole_number_of_seconds_a_datetime_can_hold(timestamp: object) -> None:
    payload = messenger_text("2222", "61000001", "hello")
    payload["entry"][0]["messaging"][0]["timestamp"] = timestamp
    with pytest.raises(ValidationError) as refused:
        meta_payloads.parse(json.dumps(payload).encode())
    assert problems(refused.value).startswith("entry.0.messaging.0.timestamp: ")


@pytest.mark.parametrize(
    "body",
    [
        {"id": "e1", "user": {"id": "42"}, "text": [SECRET_WORDS]},
        {"id": "e1", "user": {"id": {"said": SECRET_WORDS}}, "text": "hi"},
        {"id": SECRET_WORDS * 10, "user": {"id": "42"}, "text": "hi"},
    ],
)
def test_a_refusal_names_the_field_and_never_quotes_the_payload(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as refused:
        webhook_payloads.parse(json.dumps(body).encode())
    described = problems(refused.value)
    assert described.split(":")[0] in ("text", "user.id", "id")
    assert "4111" not in described
    assert "4111" in str(refused.value)  # what pydantic's own text would have leaked
